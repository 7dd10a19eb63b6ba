"""Small synthetic anime episodes with every kind of stream a real fansub release carries.

`remaster demo` gives a newcomer one of these to remaster, and the video pipeline's tests use
them to check that everything except the picture comes through bit-exact. So an episode has
what real files have and what a careless remux loses: H.264 or HEVC with B-frames and several
keyframes (optionally 10-bit, variable frame rate, colour tags, a non-square sample aspect
ratio), several audio tracks in different codecs with languages, titles, dispositions and a
start offset, ASS subtitles styled with an embedded font, SRT subtitles, chapters, global tags
and a cover image. Nothing is stored in the repository; a 3-second episode takes well under a
second to make, and the same spec makes the same bytes (with the same FFmpeg and encoders).

The picture is encoded with PyAV (exact control over frame timestamps); the audio, subtitles,
chapters, tags and attachments are added by one ffmpeg command (PyAV cannot write
subtitles), using the ffmpeg binary of imageio-ffmpeg.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from remaster.errors import RemasterError
from remaster.testcard import anime_frame


class SampleError(RemasterError, RuntimeError):
    """A sample episode could not be made (no font on this machine, ffmpeg failed)."""


@dataclass(frozen=True)
class AudioTrack:
    codec: str = "aac"  # an ffmpeg encoder: "aac", "libopus", "flac", "ac3", ...
    language: str = "jpn"  # ISO 639-2, as Matroska stores it
    title: str = ""  # empty: "AAC 2.0" and the like, as release groups name tracks
    # Seconds the track starts after the video. Real releases have these (audio cut from another
    # source); the pipeline must keep them, so the track really begins late rather than with silence.
    start_offset: float = 0.0
    default: bool = False
    frequency: float = 440.0  # a sine tone, so tracks differ and a swapped track is detectable
    # More dispositions, by ffmpeg's names ("comment", "dub", "original", "visual_impaired", ...):
    # flags a remux drops easily, and the ones that tell players which track is which.
    dispositions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "dispositions", tuple(self.dispositions))
        if self.start_offset < 0:
            raise ValueError(f"start_offset must be >= 0, got {self.start_offset}")


_DEFAULT_AUDIO = (
    AudioTrack("aac", "jpn", "Japanese", default=True),
    AudioTrack("libopus", "eng", "Commentary", start_offset=0.5, frequency=660.0, dispositions=("comment",)),
)
_DEFAULT_TAGS = (("title", "Remaster Sample - 01"), ("comment", "Synthetic episode made by remaster.samples"))


@dataclass(frozen=True)
class EpisodeSpec:
    width: int = 256
    height: int = 144
    seconds: float = 3.0
    rate: Fraction = Fraction(24000, 1001)  # NTSC film, what most TV anime is
    # H.264 (or "libx265") with up to 3 B-frames in every mini-GOP, so pts != dts and a pipeline that
    # confuses decode order with display order shows it.
    video_codec: str = "libx264"
    pix_fmt: str = "yuv420p"  # or "yuv420p10le" (10-bit, with libx265: what many modern encodes use)
    gop_seconds: float = 1.0  # closed GOPs of this length: several keyframes, so seeking is exercised
    # Variable frame rate: spans at `rate`, at half of it (animation on twos, held drawings) and at
    # 30000/1001 (video-rate credits), in a 1 ms time base: real VFR pts, not a rate flag.
    vfr: bool = False
    # Colour tags (matrix/primaries/transfer) on the video stream, and the matrix the picture is
    # really converted with: "bt709" (HD), "smpte170m" or "bt470bg" (SD), "bt2020"; None = untagged.
    colour: str | None = "bt709"
    sar: tuple[int, int] | None = None  # sample aspect ratio, e.g. (8, 9) for 4:3 NTSC DVD at 720x480
    audio: tuple[AudioTrack, ...] = _DEFAULT_AUDIO
    ass_subtitles: bool = True  # styled with the embedded font (an attachment, mimetype font/ttf)
    srt_subtitles: bool = True  # marked hearing_impaired, so a non-default disposition must survive
    chapters: bool = True  # "Opening" / "Part A" / "Part B" (fewer if the episode is very short)
    # Global tags. A dict is accepted and stored as (key, value) pairs, so the spec stays hashable
    # (usable as a cache key or test parameter).
    tags: tuple[tuple[str, str], ...] | Mapping[str, str] = _DEFAULT_TAGS
    video_language: str = "jpn"
    cover_image: bool = False  # cover.jpg: an image attachment in MKV, cover art (attached_pic) in MP4
    # "mkv", or "mp4": then subtitles are mov_text (SRT only; ASS styling cannot be carried) and there
    # is no font attachment.
    container: str = "mkv"

    def __post_init__(self) -> None:
        if isinstance(self.tags, Mapping):
            object.__setattr__(self, "tags", tuple((str(k), str(v)) for k, v in self.tags.items()))
        else:
            object.__setattr__(self, "tags", tuple((str(k), str(v)) for k, v in self.tags))
        rate = self.rate if isinstance(self.rate, Fraction) else Fraction(self.rate).limit_denominator(100_000)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "audio", tuple(self.audio))
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            # 4:2:0 needs even sizes: libx264 refuses odd ones.
            raise ValueError(f"width and height must be positive and even, got {self.width}x{self.height}")
        if self.seconds <= 0 or self.rate <= 0 or self.gop_seconds <= 0:
            raise ValueError("seconds, rate and gop_seconds must be positive")
        if self.container not in _FORMATS:
            raise ValueError(f"container must be one of {sorted(_FORMATS)}, got {self.container!r}")
        if self.colour is not None and self.colour not in _COLOURS:
            raise ValueError(f"colour must be None or one of {sorted(_COLOURS)}, got {self.colour!r}")
        for track in self.audio:
            if track.start_offset >= self.seconds:
                raise ValueError(f"audio start_offset {track.start_offset} is not within the {self.seconds} s episode")

    @property
    def frame_count(self) -> int:
        return len(frame_times(self))


# Container name -> ffmpeg muxer.
_FORMATS = {"mkv": "matroska", "mp4": "mp4"}

# Tag name -> (AVColorSpace matrix, AVColorPrimaries, AVColorTransferCharacteristic, swscale matrix).
# The numbers are FFmpeg's enum values (as PyAV's codec context takes them). SD PAL is usually
# tagged BT.470BG primaries with the BT.601 (smpte170m) transfer, as x264 users set it.
_COLOURS = {
    "bt709": (1, 1, 1, 1),
    "smpte170m": (6, 6, 6, 5),
    "bt470bg": (5, 5, 6, 5),
    "bt2020": (9, 9, 14, 9),
}
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG: TV levels, what every broadcast and disc uses

_CODEC_LABELS = {
    "aac": "AAC",
    "libfdk_aac": "AAC",
    "libopus": "Opus",
    "opus": "Opus",
    "flac": "FLAC",
    "ac3": "AC-3",
    "eac3": "E-AC-3",
    "libmp3lame": "MP3",
    "libvorbis": "Vorbis",
    "libx264": "H.264",
    "libx265": "HEVC",
    "libsvtav1": "AV1",
    "libvpx-vp9": "VP9",
}
# Bit rates for the lossy audio encoders (ffmpeg's defaults are higher than a tone needs).
_AUDIO_BITRATES = {"aac": "96k", "libopus": "64k", "ac3": "192k", "eac3": "128k", "libmp3lame": "128k"}
_AUDIO_RATE = 48000  # what Opus requires and what video audio almost always is


def make_episode(path: Path | str, spec: EpisodeSpec = EpisodeSpec()) -> Path:
    """Write a synthetic episode to `path` (container chosen by `spec.container`) and return it.

    The file appears complete or not at all: it is written under a temporary name beside `path`
    and renamed at the end.
    """
    path = Path(path)
    fmt = _FORMATS[spec.container]
    with tempfile.TemporaryDirectory(prefix="remaster-sample-") as tmp:
        work = Path(tmp)
        # The video goes through a file of the same container as the output, so its timestamps
        # (and MP4's decode timestamps and edit list) pass through the copy unchanged.
        video = work / f"video.{spec.container}"
        _encode_video(video, spec)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            _run_ffmpeg(_mux_command(spec, video, work, partial, fmt))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return path


def find_font() -> Path:
    """A TrueType font on this machine, to embed and to style the ASS subtitles with.

    $REMASTER_FONT wins; then DejaVu Sans (in most Linux installs and in matplotlib), then the
    usual sans-serif fonts of macOS and Windows, then any .ttf in the system font folders.
    """
    if env := os.environ.get("REMASTER_FONT"):
        if Path(env).is_file():
            return Path(env)
        raise SampleError(f"REMASTER_FONT is set to {env}, which is not a file")
    folders = _font_folders()
    for name in ("DejaVuSans.ttf", "Arial.ttf", "arial.ttf", "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf"):
        for folder in folders:
            for candidate in (folder / name, *sorted(folder.glob(f"*/{name}")), *sorted(folder.glob(f"*/*/{name}"))):
                if candidate.is_file():
                    return candidate
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".ttf" and p.is_file())
        if found:
            return found[0]
    raise SampleError(
        "no TrueType font (.ttf) found for the sample subtitles: looked for DejaVuSans.ttf and any *.ttf under "
        + ", ".join(str(f) for f in folders)
        + ". Install one (Debian/Ubuntu: apt install fonts-dejavu-core) or set REMASTER_FONT to a .ttf file."
    )


def _font_folders() -> list[Path]:
    folders = [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        Path.home() / ".local/share/fonts",
        Path.home() / ".fonts",
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
        Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts",
    ]
    try:  # matplotlib ships DejaVu Sans; find it without importing matplotlib (slow)
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec is not None and spec.origin:
            folders.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf")
    except (ImportError, ValueError):
        pass
    return [f for f in folders if f.is_dir()]


# ---------------------------------------------------------------------------------------------
# Video


def frame_times(spec: EpisodeSpec) -> list[Fraction]:
    """Each frame's start time in seconds, exactly.

    CFR: i / rate. VFR: cycles of 0.5 s spans at rate, rate / 2 and 30000/1001 fps, so frame
    durations really vary (41.7, 83.4 and 33.4 ms at the default rate).
    """
    end = Fraction(spec.seconds).limit_denominator(1_000_000)
    if not spec.vfr:
        return [i / spec.rate for i in range(round(end * spec.rate))]
    span_rates = (spec.rate, spec.rate / 2, Fraction(30000, 1001))
    times: list[Fraction] = []
    t = Fraction(0)
    span = 0
    while t < end:
        span_end = min(end, Fraction(span + 1, 2))
        step = 1 / span_rates[span % len(span_rates)]
        while t < span_end:
            times.append(t)
            t += step
        span += 1
    return times


def _encode_video(path: Path, spec: EpisodeSpec) -> None:
    times = frame_times(spec)
    # Timestamps in 1/rate for CFR (every pts an integer), in ms for VFR (Matroska's own unit, so
    # the pts written are the pts read back).
    time_base = Fraction(1, 1000) if spec.vfr else 1 / spec.rate
    gop = max(1, round(spec.gop_seconds * spec.rate))
    colour = _COLOURS[spec.colour] if spec.colour else None
    with av.open(str(path), "w", format=_FORMATS[spec.container]) as out:
        stream = out.add_stream(spec.video_codec, rate=spec.rate)
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = spec.width, spec.height, spec.pix_fmt
        ctx.time_base = time_base
        stream.time_base = time_base
        ctx.gop_size = gop
        ctx.max_b_frames = 3
        if spec.sar:
            ctx.sample_aspect_ratio = Fraction(*spec.sar)
        if colour:
            ctx.colorspace, ctx.color_primaries, ctx.color_trc = colour[:3]
            ctx.color_range = _LIMITED_RANGE
        ctx.options = _encoder_options(spec.video_codec, gop)
        for picture, t in zip(_pictures(spec, len(times)), times, strict=True):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame = frame.reformat(
                format=spec.pix_fmt,
                dst_colorspace=colour[3] if colour else None,
                dst_color_range=_LIMITED_RANGE,
            )
            frame.pts = math.floor(t / time_base + Fraction(1, 2))  # half up, as FFmpeg's rescaling rounds
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _encoder_options(codec: str, gop: int) -> dict[str, str]:
    # Fixed mini-GOPs of 3 B-frames (b-adapt=0: the encoder may not decide a pan needs none) and
    # closed GOPs every `gop` frames with no scene-cut keyframes, so the structure is predictable.
    if codec == "libx264":
        params = f"bframes=3:b-adapt=0:keyint={gop}:min-keyint={gop}:scenecut=0"
        return {"preset": "veryfast", "crf": "20", "x264-params": params}
    if codec == "libx265":
        params = f"bframes=3:b-adapt=0:keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error"
        return {"preset": "ultrafast", "crf": "24", "x265-params": params}
    return {"g": str(gop), "bf": "3"}


def _pictures(spec: EpisodeSpec, count: int):
    """Frames of a looping background pan with a bouncing "character" in front: every frame differs.

    The background is a cel twice as wide as the picture, panned 2 px a frame and wrapped (the
    seam is a hard cut, like a cel loop); the foreground disc moves on its own path. Numpy slicing
    only, so a frame costs well under a millisecond at the default size.
    """
    h, w = spec.height, spec.width
    background = anime_frame(h, 2 * w, seed=7)
    background = np.concatenate([background, background[:, :w]], axis=1)  # so any window of w wraps
    sprite, mask = _sprite(max(8, min(h, w) // 3))
    sh, sw = mask.shape
    for i in range(count):
        x0 = (2 * i) % (2 * w)
        frame = background[:, x0 : x0 + w].copy()
        phase = i / max(1, count - 1)
        x = int(round((w - sw) * (0.5 + 0.45 * math.sin(2 * math.pi * phase))))
        y = int(round((h - sh) * (0.2 + 0.6 * abs(math.cos(3 * math.pi * phase)))))
        region = frame[y : y + sh, x : x + sw]
        region[mask] = sprite[mask]
        yield frame


def _sprite(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A round, outlined, cel-shaded face: RGB pixels and the mask of where it is opaque."""
    img = Image.new("RGB", (size, size))
    alpha = Image.new("L", (size, size))
    draw, cut = ImageDraw.Draw(img), ImageDraw.Draw(alpha)
    box = [1, 1, size - 2, size - 2]
    outline = max(1, size // 16)
    draw.ellipse(box, fill=(250, 214, 180), outline=(30, 20, 25), width=outline)
    cut.ellipse(box, fill=255)
    eye = max(1, size // 10)
    for ex in (size * 0.35, size * 0.65):
        draw.ellipse([ex - eye, size * 0.4 - eye, ex + eye, size * 0.4 + eye], fill=(40, 60, 140))
    draw.arc([size * 0.3, size * 0.45, size * 0.7, size * 0.75], 20, 160, fill=(120, 30, 40), width=outline)
    return np.asarray(img), np.asarray(alpha) > 127


# ---------------------------------------------------------------------------------------------
# Everything else, muxed by ffmpeg


def _mux_command(spec: EpisodeSpec, video: Path, work: Path, out: Path, fmt: str) -> list[str]:
    mkv = spec.container == "mkv"
    # ffmpeg 9 wants global options before the first input.
    inputs: list[str] = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    maps: list[str] = []
    codecs: list[str] = ["-c:v:0", "copy"]
    meta: list[str] = []
    n_inputs = 0

    def add_input(*args: str) -> int:
        nonlocal n_inputs
        inputs.extend(args)
        n_inputs += 1
        return n_inputs - 1

    add_input("-i", str(video))
    maps += ["-map", "0:v:0"]
    meta += _stream_meta("v:0", spec.video_language, _video_title(spec), ["default"])

    for a, track in enumerate(spec.audio):
        duration = spec.seconds - track.start_offset
        # A stereo sine from lavfi, as long as the rest of the episode; -itsoffset delays the input,
        # so the encoded track starts at start_offset (less the encoder's priming).
        source = (
            f"sine=frequency={track.frequency}:sample_rate={_AUDIO_RATE}:duration={duration},"
            "aformat=channel_layouts=stereo"
        )
        offset = ["-itsoffset", f"{track.start_offset}"] if track.start_offset else []
        index = add_input(*offset, "-f", "lavfi", "-i", source)
        maps += ["-map", f"{index}:a:0"]
        codecs += [f"-c:a:{a}", track.codec]
        if track.codec in _AUDIO_BITRATES:
            codecs += [f"-b:a:{a}", _AUDIO_BITRATES[track.codec]]
        title = track.title or f"{_CODEC_LABELS.get(track.codec, track.codec)} 2.0"
        meta += _stream_meta(f"a:{a}", track.language, title, ["default"] * track.default + list(track.dispositions))

    font = find_font() if (mkv and spec.ass_subtitles) else None
    s = 0
    if font is not None:
        ass = work / "subtitles.ass"
        ass.write_text(_ass_script(spec, _font_family(font)), encoding="utf-8")
        index = add_input("-i", str(ass))
        maps += ["-map", f"{index}:s:0"]
        codecs += [f"-c:s:{s}", "copy"]
        meta += _stream_meta(f"s:{s}", "eng", "English (Styled)", ["default"])
        s += 1
    if spec.srt_subtitles:
        srt = work / "subtitles.srt"
        srt.write_text(_srt_script(spec), encoding="utf-8")
        index = add_input("-i", str(srt))
        maps += ["-map", f"{index}:s:0"]
        # Matroska keeps SubRip as is; MP4 can only carry subtitles as mov_text (3GPP timed text).
        codecs += [f"-c:s:{s}", "copy" if mkv else "mov_text"]
        # Hearing_impaired, and default only when it is the only subtitle track: flags a remux must keep.
        meta += _stream_meta(f"s:{s}", "eng", "English (SDH)", ["hearing_impaired"] + ["default"] * (s == 0))
        s += 1

    cover = None
    if spec.cover_image:
        cover = work / "cover.jpg"
        Image.fromarray(anime_frame(300, 212, seed=11)).save(cover, quality=85)  # a small portrait poster
        if not mkv:
            # MP4 cover art is a video stream with the attached_pic disposition (the 'covr' atom).
            index = add_input("-i", str(cover))
            maps += ["-map", f"{index}:v:0"]
            codecs += ["-c:v:1", "copy"]
            meta += ["-disposition:v:1", "attached_pic"]

    if spec.chapters:
        chapters = work / "chapters.txt"
        chapters.write_text(_ffmetadata_chapters(spec), encoding="utf-8")
        index = add_input("-f", "ffmetadata", "-i", str(chapters))
        # Global tags come from this file (it has none) and the -metadata options below, not from
        # the video file, whose only tag is ffmpeg's ENCODER.
        meta += ["-map_metadata", str(index), "-map_chapters", str(index)]
    else:
        meta += ["-map_metadata", "-1", "-map_chapters", "-1"]
    for key, value in spec.tags:
        meta += ["-metadata", f"{key}={value}"]

    attachments: list[str] = []
    if mkv:
        # Matroska attachments need a filename and a mimetype; the demuxer shows image attachments
        # as attached_pic video streams, fonts as attachment streams.
        files = ([(font, font.name, "font/ttf")] if font else []) + (
            [(cover, "cover.jpg", "image/jpeg")] if cover else []
        )
        for t, (file, name, mimetype) in enumerate(files):
            attachments += ["-attach", str(file), f"-metadata:s:t:{t}", f"mimetype={mimetype}"]
            attachments += [f"-metadata:s:t:{t}", f"filename={name}"]
    # bitexact: no random Matroska UIDs or version strings, so the same spec makes the same bytes.
    tail = ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", fmt, str(out)]
    return [_ffmpeg_exe(), *inputs, *maps, *codecs, *meta, *attachments, *tail]


def _stream_meta(spec: str, language: str, title: str, dispositions: list[str]) -> list[str]:
    # "-disposition 0" for streams that have none: when no stream of a kind is given a disposition,
    # ffmpeg marks the first one default by itself, and the file's flags would not be the ones asked for.
    return [
        f"-metadata:s:{spec}",
        f"language={language}",
        f"-metadata:s:{spec}",
        f"title={title}",
        f"-disposition:{spec}",
        "+".join(dispositions) if dispositions else "0",
    ]


def _video_title(spec: EpisodeSpec) -> str:
    depth = "10-bit" if "10" in spec.pix_fmt else "8-bit"
    rate = "VFR" if spec.vfr else f"{float(spec.rate):.3f} fps"
    return f"{_CODEC_LABELS.get(spec.video_codec, spec.video_codec)} {spec.height}p {depth} {rate}"


def _font_family(font: Path) -> str:
    """The family name the ASS renderer matches the embedded font by ("DejaVu Sans")."""
    try:
        return ImageFont.truetype(str(font), 10).getname()[0] or font.stem
    except OSError:
        return font.stem


def _cue_times(spec: EpisodeSpec, count: int = 4) -> list[tuple[float, float]]:
    # `count` cues spread evenly, each shown for 80 % of its slot (a gap between cues, as in real ones).
    slot = spec.seconds / count
    return [(i * slot + 0.05 * slot, i * slot + 0.85 * slot) for i in range(count)]


_LINES = (
    "The wind is different today.",
    "Then we leave at dawn!",
    "Wait for me, Hikari!",
    "...and that was the last summer.",
)
_SDH_LINES = (
    "[wind blowing]",
    "KAITO: Then we leave at dawn!",
    "[footsteps running]",
    "HIKARI: ...and that was the last summer.",
)


def _ass_time(t: float) -> str:
    cs = round(t * 100)
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _srt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _ass_script(spec: EpisodeSpec, family: str) -> str:
    """An ASS script at the video's resolution, both styles in the embedded font's family."""
    size = max(8, spec.height // 9)
    events = [
        f"Dialogue: 0,{_ass_time(a)},{_ass_time(b)},Default,,0,0,0,,{text}"
        for (a, b), text in zip(_cue_times(spec), _LINES, strict=True)
    ]
    # A typeset sign at the top, positioned and faded, as fansub signs are.
    events.append(
        f"Dialogue: 1,{_ass_time(0)},{_ass_time(spec.seconds * 0.4)},Sign,,0,0,0,,"
        f"{{\\pos({spec.width // 2},{spec.height // 8})\\fad(200,200)}}Episode 1: The Last Summer"
    )
    return "\n".join(
        [
            "[Script Info]",
            "; Made by remaster.samples",
            "Title: Remaster Sample - 01",
            "ScriptType: v4.00+",
            "WrapStyle: 0",
            "ScaledBorderAndShadow: yes",
            # The matrix the renderer should assume the video has, so sign colours match (libass's names).
            "YCbCr Matrix: " + {"bt709": "TV.709", "bt2020": "None"}.get(spec.colour or "", "TV.601"),
            f"PlayResX: {spec.width}",
            f"PlayResY: {spec.height}",
            "",
            "[V4+ Styles]",
            "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
            "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
            "Alignment, MarginL, MarginR, MarginV, Encoding",
            f"Style: Default,{family},{size},&H00FFFFFF,&H000000FF,&H00201010,&H80000000,0,0,0,0,100,100,0,0,1,"
            f"{max(1, size // 10)},1,2,{size},{size},{size // 2},1",
            f"Style: Sign,{family},{size},&H00103070,&H000000FF,&H00F0F0F0,&H00000000,1,0,0,0,100,100,0,0,1,"
            f"{max(1, size // 12)},0,8,0,0,0,1",
            "",
            "[Events]",
            "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
            *events,
            "",
        ]
    )


def _srt_script(spec: EpisodeSpec) -> str:
    cues = [
        f"{i}\n{_srt_time(a)} --> {_srt_time(b)}\n{text}\n"
        for i, ((a, b), text) in enumerate(zip(_cue_times(spec), _SDH_LINES, strict=True), start=1)
    ]
    return "\n".join(cues)


def chapter_marks(spec: EpisodeSpec) -> list[tuple[str, float, float]]:
    """The chapters an episode gets: (title, start, end) in seconds (whole ms), covering the episode."""
    s = round(spec.seconds, 3)
    if s < 1.5:  # too short to split usefully
        return [("Part A", 0.0, s)]
    a, b = round(s * 0.2, 3), round(s * 0.6, 3)
    return [("Opening", 0.0, a), ("Part A", a, b), ("Part B", b, s)]


def _ffmetadata_chapters(spec: EpisodeSpec) -> str:
    lines = [";FFMETADATA1"]
    for title, start, end in chapter_marks(spec):
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(start * 1000)}", f"END={round(end * 1000)}"]
        lines.append("title=" + "".join("\\" + c if c in "=;#\\" else c for c in title))
    return "\n".join(lines) + "\n"


def _ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        found = shutil.which("ffmpeg")
        if found:
            return found
        raise SampleError(f"no ffmpeg found (pip install imageio-ffmpeg, or put ffmpeg on PATH): {error}") from error


def _run_ffmpeg(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SampleError(f"ffmpeg failed (exit {result.returncode}) making a sample episode:\n{tail}")
