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

Old sources (issue 4) come from the same spec: DVD VOBs (MPEG-2 in MPEG-PS with AC-3/MP2), broadcast
captures (MPEG-TS whose timeline starts late), XviD AVIs (MPEG-4 ASP with B-frames and no stored
pts), WebM (VP9 + Opus, odd sizes), anamorphic SD, true 29.97i interlace and hard 3:2 telecine,
animation on twos and threes, a 1-pixel slow pan and a narrow 10-bit gradient for banding. A
`marker` stamps each frame's index as big black/white squares that `read_marker` reads back after
upscaling and lossy coding, so a test can check that every frame came through once, in order.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from remaster.core.errors import RemasterError
from remaster.core.outputs import commit_file
from remaster.media.ffmpeg import FFmpegError, run_ffmpeg
from remaster.media.testcard import anime_frame


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
_DEFAULT_TAGS = (("title", "Remaster Sample - 01"), ("comment", "Synthetic episode made by remaster.demo.samples"))


@dataclass(frozen=True)
class EpisodeSpec:
    """What to make. Fields left at None get the value that suits the container and scan.

    After construction every field holds its resolved value, so `EpisodeSpec(**spec.__dict__)`
    makes the same spec again.
    """

    width: int = 256
    height: int = 144
    seconds: float = 3.0
    # Frames per second of the file. None: 24000/1001 (NTSC film, what most TV anime is), or
    # 30000/1001 for interlaced and telecined video (NTSC video: 59.94 fields a second).
    rate: Fraction | None = None
    # None: libx264 in MKV/MP4, libvpx-vp9 in WebM, mpeg2video in VOB/TS, mpeg4 (XviD) in AVI.
    # H.264 (or "libx265") get up to 3 B-frames in every mini-GOP, MPEG-2 and MPEG-4 two, so pts != dts
    # and a pipeline that confuses decode order with display order shows it.
    video_codec: str | None = None
    pix_fmt: str = "yuv420p"  # or "yuv420p10le" (10-bit, with libx265 or libx264: what many modern encodes use)
    gop_seconds: float = 1.0  # closed GOPs of this length: several keyframes, so seeking is exercised
    # Variable frame rate: spans at `rate`, at half of it (animation on twos, held drawings) and at
    # 30000/1001 (video-rate credits), in a 1 ms time base: real VFR pts, not a rate flag.
    vfr: bool = False
    # Colour tags (matrix/primaries/transfer) on the video stream, and the matrix the picture is
    # really converted with: "bt709" (HD), "smpte170m" or "bt470bg" (SD), "bt2020"; None = untagged.
    colour: str | None = "bt709"
    # Sample aspect ratio, e.g. (8, 9) for 4:3 or (32, 27) for 16:9 NTSC DVD at 720x480: written into
    # the bitstream (MPEG-2 stores it as a display aspect ratio) and the container where it has a field.
    sar: tuple[int, int] | None = None
    # None: two tracks in codecs the container takes (MKV/MP4: AAC + Opus commentary; VOB: AC-3 + MP2;
    # TS: AAC + MP2; AVI: MP3 + AC-3; WebM: Opus).
    audio: tuple[AudioTrack, ...] | None = None
    # Subtitles and chapters, None: where the container can carry them. ASS (styled with the embedded
    # font, an attachment of mimetype font/ttf) only in MKV; SRT (marked hearing_impaired, so a
    # non-default disposition must survive) in MKV, MP4 (as mov_text) and WebM (as WebVTT). VOB, TS and
    # AVI carry no text subtitles or chapters: asking for them there is a ValueError.
    ass_subtitles: bool | None = None
    srt_subtitles: bool | None = None
    chapters: bool | None = None  # "Opening" / "Part A" / "Part B" (fewer if the episode is very short)
    # Global tags. A dict is accepted and stored as (key, value) pairs, so the spec stays hashable
    # (usable as a cache key or test parameter).
    tags: tuple[tuple[str, str], ...] | Mapping[str, str] = _DEFAULT_TAGS
    video_language: str = "jpn"
    cover_image: bool = False  # cover.jpg: an image attachment in MKV, cover art (attached_pic) in MP4
    # "mkv"; "mp4" (subtitles are mov_text: SRT only, ASS styling cannot be carried; no font attachment);
    # "webm" (VP9 + Opus, WebVTT); "vob" (DVD: MPEG-PS, MPEG-2 + AC-3/MP2); "ts" (broadcast capture:
    # MPEG-TS whose timeline starts at `start_time`); "avi" (XviD: MPEG-4 ASP with B-frames, MP3/AC-3;
    # AVI stores no pts, only a frame index, see `make_episode`).
    container: str = "mkv"

    # -- Old sources (issue 4) ------------------------------------------------------------------
    # "progressive"; "interlaced": true 29.97i video, motion rendered at 59.94 fields a second and woven
    # top field first; "telecined": 23.976 film with hard 3:2 pulldown to 29.97i (pattern AA BB BC CD DD,
    # as ffmpeg's telecine=first_field=top:pattern=23 makes it). Both are coded as interlaced
    # (MPEG-2 and H.264 field-aware coding, top field first), so players and idet see what they see on
    # DVDs and broadcasts.
    scan: str = "progressive"
    # Stamp each frame's index (telecined: the film frame's index) into the top edge, for `read_marker`.
    marker: bool = False
    # Animation on twos and threes: each drawing is held for these many frames in turn ((2, 3): 2, 3,
    # 2, 3, ...; film frames when telecined). The held frames are the same picture, re-encoded, so they
    # differ by codec noise only. `new_drawings(spec)` lists where drawings change. () = every frame new.
    hold_pattern: tuple[int, ...] = ()
    # "pan": the background pans `pan_px` pixels a picture, a character bounces on its own path.
    # "slow_pan": the whole picture (character included) moves exactly 1 source pixel a frame.
    # "mouth": a still picture on which only a small mouth opens and closes (`mouth_open`, `mouth_box`):
    # local motion that changes one 8x8 block and far less than the whole picture's noise bound.
    motion: str = "pan"
    # Pixels the background moves per picture (a frame, a field of interlaced video, a film frame of
    # telecined video). None: 2, or 4 for interlaced and telecined so fields differ enough to comb.
    pan_px: int | None = None
    # "anime": the cel pan; "gradient": a still, noise-free horizontal luma ramp over a narrow range
    # (10-bit 240..320, i.e. 8-bit 60..80) for banding tests, coded losslessly by libx264/libx265/VP9.
    content: str = "anime"
    # TS only: where the stream's timeline starts (the first decode timestamp), as broadcast captures
    # start late. None: 1.4 s for TS (what ffmpeg's TS muxer gives by default); must be None elsewhere.
    start_time: float | None = None
    crf: int | None = None  # x264/x265 quality; None: CRF 20 (x264) or 24 (x265), what fansubs upload

    def __post_init__(self) -> None:
        # Each step uses the fields the steps before it resolved, and a spec with several problems
        # reports the first one found: the steps run in this order.
        set_ = object.__setattr__
        set_(self, "tags", _tag_pairs(self.tags))
        self._check_choices()
        self._resolve_rate_and_codec()
        set_(self, "audio", _DEFAULT_AUDIO_BY_CONTAINER[self.container] if self.audio is None else tuple(self.audio))
        set_(self, "hold_pattern", tuple(int(n) for n in self.hold_pattern))
        set_(self, "pan_px", self.pan_px if self.pan_px is not None else (2 if self.scan == "progressive" else 4))
        self._resolve_container_features()
        self._check_picture()
        self._check_audio()
        self._check_scan_and_motion()
        if self.marker:
            self._check_marker()

    def _check_choices(self) -> None:
        """The fields that name one of a few choices name one of them."""
        if self.container not in _FORMATS:
            raise ValueError(f"container must be one of {sorted(_FORMATS)}, got {self.container!r}")
        if self.scan not in _SCANS:
            raise ValueError(f"scan must be one of {_SCANS}, got {self.scan!r}")
        if self.motion not in _MOTIONS:
            raise ValueError(f"motion must be one of {_MOTIONS}, got {self.motion!r}")
        if self.content not in _CONTENTS:
            raise ValueError(f"content must be one of {_CONTENTS}, got {self.content!r}")

    def _resolve_rate_and_codec(self) -> None:
        """The frame rate and the video codec, by default the ones of the scan and the container."""
        set_ = object.__setattr__
        if self.rate is None:
            rate = _FILM_RATE if self.scan == "progressive" else _VIDEO_RATE
        else:
            rate = self.rate if isinstance(self.rate, Fraction) else Fraction(self.rate).limit_denominator(100_000)
        set_(self, "rate", rate)
        codec = self.video_codec or _DEFAULT_VIDEO_CODEC[self.container]
        set_(self, "video_codec", codec)
        if codec not in _VIDEO_CODECS[self.container]:
            raise ValueError(
                f"{self.container} takes video codecs {sorted(_VIDEO_CODECS[self.container])}, got {codec!r}"
            )

    def _resolve_container_features(self) -> None:
        """Subtitles, chapters, the cover and the TS start time: by default what the container can
        carry; asked for where it cannot, a ValueError."""
        set_ = object.__setattr__
        for name, allowed in (
            ("ass_subtitles", ("mkv",)),
            ("srt_subtitles", ("mkv", "mp4", "webm")),
            ("chapters", ("mkv", "mp4", "webm")),
        ):
            value = getattr(self, name)
            if value is None:
                set_(self, name, self.container in allowed)
            # MP4 has always accepted ass_subtitles=True and made mov_text from the SRT alone.
            elif value and self.container not in allowed and not (name == "ass_subtitles" and self.container == "mp4"):
                raise ValueError(f"{self.container} cannot carry {name.replace('_', ' ')} (allowed in {allowed})")
        if self.cover_image and self.container not in ("mkv", "mp4"):
            raise ValueError(f"cover_image needs mkv or mp4, not {self.container}")
        if self.start_time is None and self.container == "ts":
            set_(self, "start_time", _TS_START)
        elif self.start_time is not None and (self.container != "ts" or self.start_time < 0):
            raise ValueError(f"start_time is for ts only and must be >= 0, got {self.start_time} for {self.container}")

    def _check_picture(self) -> None:
        """Size, duration, rate, GOP length and colour tag are ones the codec can make."""
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")
        odd = self.width % 2 or self.height % 2
        if odd and (self.video_codec in _EVEN_ONLY_CODECS or self.content == "gradient"):
            # 4:2:0 chroma covers 2x2 pixels: libx264 and libx265 refuse odd sizes (MPEG-2, MPEG-4 ASP,
            # VP9 and AV1 code them, as odd-sized WebM and AVI rips have them).
            raise ValueError(
                f"width and height must be even for {self.video_codec} 4:2:0 (odd sizes only with "
                f"{sorted(set(_ALL_VIDEO_CODECS) - _EVEN_ONLY_CODECS)}), got {self.width}x{self.height}"
            )
        if self.seconds <= 0 or self.rate <= 0 or self.gop_seconds <= 0:
            raise ValueError("seconds, rate and gop_seconds must be positive")
        if self.colour is not None and self.colour not in _COLOURS:
            raise ValueError(f"colour must be None or one of {sorted(_COLOURS)}, got {self.colour!r}")

    def _check_audio(self) -> None:
        """Every track starts within the episode, in a codec the container takes."""
        for track in self.audio:
            if track.start_offset >= self.seconds:
                raise ValueError(f"audio start_offset {track.start_offset} is not within the {self.seconds} s episode")
            allowed_audio = _AUDIO_CODECS.get(self.container)
            if allowed_audio is not None and track.codec not in allowed_audio:
                raise ValueError(f"{self.container} takes audio codecs {allowed_audio}, got {track.codec!r}")

    def _check_scan_and_motion(self) -> None:
        """VFR, interlacing, held drawings, the pan and the gradient go together only where they can."""
        progressive = self.scan == "progressive"
        if self.vfr and (not progressive or self.container in ("avi", "vob")):
            # AVI has one frame duration for the whole stream; DVD video is constant-rate; interlaced
            # and telecined video is 29.97 fields-pairs a second by definition.
            raise ValueError("vfr needs progressive scan and a container other than avi or vob")
        if not progressive:
            if self.video_codec not in _INTERLACED_CODECS:
                raise ValueError(
                    f"{self.scan} video needs one of {sorted(_INTERLACED_CODECS)}, got {self.video_codec!r}"
                )
            if self.height % 2:
                raise ValueError(f"{self.scan} video needs an even height (two fields), got {self.height}")
        if self.hold_pattern:
            if any(n < 1 for n in self.hold_pattern):
                raise ValueError(f"hold_pattern must be frame counts >= 1, got {self.hold_pattern}")
            if self.scan == "interlaced" or self.motion != "pan":
                raise ValueError("hold_pattern needs progressive or telecined scan and motion='pan'")
        if self.motion == "mouth" and (not progressive or min(self.width, self.height) < 2 * _FACE):
            raise ValueError(f"motion='mouth' needs progressive scan and at least {2 * _FACE} pixels a side")
        if self.pan_px < 0:
            raise ValueError(f"pan_px must be >= 0, got {self.pan_px}")
        if self.content == "gradient" and (not progressive or self.hold_pattern or self.motion != "pan"):
            raise ValueError("content='gradient' is a still, progressive picture: no scan, holds or motion")

    def _check_marker(self) -> None:
        """The frame-index marker fits in the picture and counts every frame."""
        cell, cells = _marker_layout(self.width, self.height)
        if cell * cells > self.width or 2 * cell > self.height:
            raise ValueError(
                f"marker needs at least {_MARKER_CELLS * _MARKER_MIN_CELL}x{2 * _MARKER_MIN_CELL} pixels, "
                f"got {self.width}x{self.height}"
            )
        if self.film_frame_count > 1 << _MARKER_BITS:
            raise ValueError(f"marker counts {1 << _MARKER_BITS} frames at most, got {self.film_frame_count}")

    @property
    def frame_count(self) -> int:
        """Frames in the file."""
        return len(frame_times(self))

    @property
    def film_rate(self) -> Fraction:
        """Pictures a second as drawn: telecined video is film at 4/5 of its frame rate."""
        return self.rate * Fraction(4, 5) if self.scan == "telecined" else self.rate

    @property
    def film_frame_count(self) -> int:
        """Film frames that went into a telecined file (a multiple of 4: whole AA BB BC CD DD cycles,
        so each gives exactly 5 video frames); for the other scans, `frame_count`."""
        if self.scan != "telecined":
            return self.frame_count
        end = Fraction(self.seconds).limit_denominator(1_000_000)
        return max(4, 4 * round(end * self.film_rate / 4))


def _tag_pairs(tags: tuple[tuple[str, str], ...] | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Global tags as (key, value) pairs of strings, so the spec stays hashable."""
    items = tags.items() if isinstance(tags, Mapping) else tags
    return tuple((str(k), str(v)) for k, v in items)


# Container name -> ffmpeg muxer.
_FORMATS = {"mkv": "matroska", "mp4": "mp4", "webm": "webm", "vob": "vob", "ts": "mpegts", "avi": "avi"}
_SCANS = ("progressive", "interlaced", "telecined")
_MOTIONS = ("pan", "slow_pan", "mouth")
# motion="mouth": a flat grey face of 3x3 blocks of 8 (remaster.video.reuse.BLOCK), level 200, whose
# mouth (6x4, level 150: about 43 luma codes darker) lies inside one block, so that it changes one
# block by about 16 levels on average while the whole picture's mean squared difference stays under
# 1 from 320x240 up. Lip flaps are drawn on threes: open for 3 frames, closed for 3.
_FACE = 24
_FACE_LEVEL, _MOUTH_LEVEL = 200, 150
MOUTH_FRAMES = 3
_CONTENTS = ("anime", "gradient")
_FILM_RATE = Fraction(24000, 1001)
_VIDEO_RATE = Fraction(30000, 1001)
_TS_START = 1.4

_ALL_VIDEO_CODECS = ("libx264", "libx265", "mpeg2video", "mpeg4", "libvpx-vp9", "libsvtav1")
_VIDEO_CODECS = {
    "mkv": _ALL_VIDEO_CODECS,
    "mp4": _ALL_VIDEO_CODECS,
    "webm": ("libvpx-vp9", "libsvtav1"),
    "vob": ("mpeg2video",),  # DVD-Video: MPEG-2 only (MPEG-1 too, but no anime DVD uses it)
    "ts": ("mpeg2video", "libx264", "libx265"),  # ISDB/ATSC/DVB: MPEG-2, later H.264 and HEVC
    "avi": ("mpeg4", "libx264"),  # XviD/DivX, and the H.264-in-AVI that some groups made
}
_DEFAULT_VIDEO_CODEC = {"mkv": "libx264", "mp4": "libx264", "webm": "libvpx-vp9", "vob": "mpeg2video"}
_DEFAULT_VIDEO_CODEC |= {"ts": "mpeg2video", "avi": "mpeg4"}
# Codecs that refuse odd sizes in 4:2:0 (the rest code them: odd-sized WebM and AVI rips are common).
_EVEN_ONLY_CODECS = {"libx264", "libx265"}
# Field-aware coding (interlaced DCT and motion estimation) with a top-field-first flag: what DVDs and
# broadcasts use. PyAV's libx265 cannot code interlaced frames (x265 wants separate fields).
_INTERLACED_CODECS = {"mpeg2video", "libx264", "mpeg4"}

# Audio the old containers can carry (ffmpeg's muxers refuse the others); MKV and MP4 take anything
# ffmpeg lets them, and a wrong codec there fails in ffmpeg with its own message.
_AUDIO_CODECS = {
    "webm": ("libopus", "libvorbis"),
    "vob": ("ac3", "mp2"),
    "ts": ("aac", "ac3", "eac3", "mp2"),
    "avi": ("libmp3lame", "ac3", "mp2"),
}
_DEFAULT_AUDIO_BY_CONTAINER = {
    "mkv": _DEFAULT_AUDIO,
    "mp4": _DEFAULT_AUDIO,
    "webm": (AudioTrack("libopus", "jpn", "Japanese", default=True),),
    "vob": (AudioTrack("ac3", "jpn", "Japanese", default=True), AudioTrack("mp2", "eng", "English", frequency=660.0)),
    "ts": (AudioTrack("aac", "jpn", "Japanese", default=True), AudioTrack("mp2", "eng", "English", frequency=660.0)),
    "avi": (AudioTrack("libmp3lame", "jpn", "Japanese", default=True), AudioTrack("ac3", "eng", frequency=660.0)),
}

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
    "mpeg2video": "MPEG-2",
    "mpeg4": "XviD",
    "mp2": "MP2",
}
# Bit rates for the lossy audio encoders (ffmpeg's defaults are higher than a tone needs).
_AUDIO_BITRATES = {"aac": "96k", "libopus": "64k", "ac3": "192k", "eac3": "128k", "libmp3lame": "128k", "mp2": "192k"}
_AUDIO_RATE = 48000  # what Opus requires and what video audio almost always is


def make_episode(path: Path | str, spec: EpisodeSpec = EpisodeSpec()) -> Path:
    """Write a synthetic episode to `path` (container chosen by `spec.container`) and return it.

    The file appears complete or not at all: it is written under a temporary name beside `path`
    and renamed at the end.

    Timestamps of the old containers are theirs, not the spec's: VOB and TS count a 90 kHz clock
    from their muxer's start (about 0.5 s for VOB, `spec.start_time` for TS, the first frame shown
    one frame later because of the B-frames), and AVI stores no pts at all, only each packet's
    position (its dts, in frames); FFmpeg's demuxer infers pts from the decoding delay, so the
    first frame of an AVI with B-frames comes out at 1/rate, not 0.
    """
    path = Path(path)
    fmt = _FORMATS[spec.container]
    with tempfile.TemporaryDirectory(prefix="remaster-sample-") as tmp:
        work = Path(tmp)
        # The video goes through a file of the same container as the output, so its timestamps
        # (and MP4's decode timestamps and edit list) pass through the copy unchanged. VOB, TS and AVI
        # make their own timestamps: NUT hands VOB and TS the encoder's exact pts and dts (Matroska
        # would round them to ms and the 90 kHz steps would come out uneven); AVI, which only counts
        # frames, comes from Matroska (from NUT, whose timeline starts a frame late to keep dts >= 0,
        # ffmpeg's AVI muxer leaves an empty chunk before the second frame).
        via = {"vob": "nut", "ts": "nut", "avi": "mkv"}.get(spec.container, spec.container)
        video = work / f"video.{via}"
        _encode_video(video, spec, {"nut": "nut", "mkv": "matroska"}.get(via, fmt))
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            run_ffmpeg(_mux_command(spec, video, work, partial, fmt), path, "making a sample episode")
            commit_file(partial, path)
        except FFmpegError as error:
            raise SampleError(str(error)) from error
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
    durations really vary (41.7, 83.4 and 33.4 ms at the default rate). Telecined: 5 video frames
    for every 4 film frames (`spec.film_frame_count`).
    """
    end = Fraction(spec.seconds).limit_denominator(1_000_000)
    if spec.scan == "telecined":
        return [i / spec.rate for i in range(spec.film_frame_count * 5 // 4)]
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


def field_sources(spec: EpisodeSpec) -> list[tuple[int, int]]:
    """For each frame of the file, the pictures its (top, bottom) field lines come from.

    Progressive: (i, i). Interlaced: (2i, 2i + 1), pictures drawn at twice the frame rate, the top
    field first in time. Telecined: film frame indices in the 3:2 pattern, (0, 0) (1, 1) (1, 2)
    (2, 3) (3, 3) and so on: two frames in five mix two film frames (what inverse telecine undoes).
    """
    n = spec.frame_count
    if spec.scan == "interlaced":
        return [(2 * i, 2 * i + 1) for i in range(n)]
    if spec.scan == "telecined":
        fields: list[int] = []  # the film frame of each field, in display order: top, bottom, top, ...
        for k in range(spec.film_frame_count):
            fields += [k] * (2 if k % 2 == 0 else 3)  # pattern "23": A twice, B three times, ...
        return [(fields[2 * j], fields[2 * j + 1]) for j in range(n)]
    return [(i, i) for i in range(n)]


def new_drawings(spec: EpisodeSpec) -> list[int]:
    """The pictures that show a new drawing: frame indices (film frame indices when telecined).

    Without `hold_pattern` every frame is new. With (2, 3): 0, 2, 5, 7, 10, ...; the frames in
    between repeat the drawing before them (only the codec's noise, and the marker, differ).
    Interlaced video has no drawings to hold: every frame index.
    """
    count = spec.film_frame_count
    if not spec.hold_pattern:
        return list(range(count))
    starts: list[int] = []
    i = k = 0
    while i < count:
        starts.append(i)
        i += spec.hold_pattern[k % len(spec.hold_pattern)]
        k += 1
    return starts


# ---------------------------------------------------------------------------------------------
# Frame markers: the index of each frame, as squares that survive scaling and lossy coding


class MarkerError(ValueError):
    """A frame has no readable marker (no marker, a mixed-up field pair, or a damaged picture)."""


_MARKER_BITS = 12  # 4096 frames: 2:50 of film, more than any test needs
_MARKER_CELLS = _MARKER_BITS + 2  # a white cell, the bits (most significant first), a black cell
_MARKER_MIN_CELL = 8  # source pixels: a 4x4 centre stays clean through 4:2:0, DCT blocks and ringing


def _marker_layout(width: int, height: int) -> tuple[int, int]:
    """(cell size in source pixels, number of cells) of the marker strip at the top-left corner.

    Cells grow with the picture (8, 16 or 24 px) so they stay a small part of it but big enough
    to read after a 4x upscale and a downscale; a multiple of 8, so fields and chroma align.
    """
    return _MARKER_MIN_CELL * max(1, min(width // 128, height // 80, 3)), _MARKER_CELLS


def marker_height(width: int, height: int) -> int:
    """Rows at the top of a `width` x `height` source the marker covers (leave them out when
    comparing held drawings: the marker changes every frame)."""
    return _marker_layout(width, height)[0]


def _marker_bits(value: int) -> list[bool]:
    return [True] + [bool(value >> (_MARKER_BITS - 1 - k) & 1) for k in range(_MARKER_BITS)] + [False]


def _stamp_marker(picture: np.ndarray, value: int, black: int, white: int) -> None:
    """Draw `value` into the top-left corner of a source-sized picture (H x W or H x W x C)."""
    cell, _ = _marker_layout(picture.shape[1], picture.shape[0])
    for k, bit in enumerate(_marker_bits(value)):
        picture[:cell, k * cell : (k + 1) * cell] = white if bit else black


def read_marker(rgb: np.ndarray, source_width: int, source_height: int, field: str | None = None) -> int:
    """The frame index stamped by `marker=True`, read from a decoded frame of any scale.

    `rgb` is H x W x 3 (or H x W grey), uint8, uint16 or float in 0..1, of a frame whose source
    was `source_width` x `source_height` (the cell positions scale with it). The centre half of
    each cell is averaged; every cell must be clearly dark or light and the two guard cells right,
    or MarkerError is raised (so a frame without a marker, or whose two fields carry different
    markers, is never read as a wrong number). `field="top"` or "bottom" reads only that field's
    lines, for a source-sized interlaced or telecined frame whose fields differ.
    """
    picture = np.asarray(rgb)
    full = 255.0 if picture.dtype == np.uint8 else 65535.0 if picture.dtype == np.uint16 else 1.0
    luma = picture[..., :3].mean(axis=2) if picture.ndim == 3 else picture.astype(np.float64)
    height, width = luma.shape
    sy, sx = height / source_height, width / source_width
    if field is not None:
        if field not in ("top", "bottom"):
            raise ValueError(f"field must be None, 'top' or 'bottom', got {field!r}")
        if height != source_height:
            raise ValueError(f"reading one field needs the source-sized frame ({source_height} rows), got {height}")
    cell, cells = _marker_layout(source_width, source_height)
    y0, y1 = round(0.25 * cell * sy), max(round(0.75 * cell * sy), round(0.25 * cell * sy) + 1)
    rows = np.arange(y0, y1)
    if field is not None:
        rows = rows[rows % 2 == (0 if field == "top" else 1)]
    levels = []
    for k in range(cells):
        x0 = round((k + 0.25) * cell * sx)
        x1 = max(round((k + 0.75) * cell * sx), x0 + 1)
        levels.append(float(luma[rows, x0:x1].mean()) / full)
    if levels[0] < 0.65 or levels[-1] > 0.35 or any(0.35 < v < 0.65 for v in levels):
        raise MarkerError("no readable frame marker (cell levels " + " ".join(f"{v:.2f}" for v in levels) + ")")
    value = 0
    for v in levels[1:-1]:
        value = value << 1 | (v >= 0.5)
    return value


# ---------------------------------------------------------------------------------------------
# Pictures


def _encode_video(path: Path, spec: EpisodeSpec, fmt: str) -> None:
    times = frame_times(spec)
    # Timestamps in 1/rate for CFR (every pts an integer), in ms for VFR (Matroska's own unit, so
    # the pts written are the pts read back).
    time_base = Fraction(1, 1000) if spec.vfr else 1 / spec.rate
    gop = max(1, round(spec.gop_seconds * spec.rate))
    colour = _COLOURS[spec.colour] if spec.colour else None
    interlaced = spec.scan != "progressive"
    with av.open(str(path), "w", format=fmt) as out:
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
        if interlaced:
            ctx.field_order = _AV_FIELD_TT  # what the container records (Matroska's FieldOrder)
        ctx.options = _encoder_options(spec, gop)
        # The encoders take the field order of each picture from the frame's flags, which PyAV cannot
        # set: a setfield filter marks them interlaced, top field first.
        mark_fields = _FieldMarker() if interlaced else None
        for frame, t in zip(_video_frames(spec), times, strict=True):
            frame.pts = math.floor(t / time_base + Fraction(1, 2))  # half up, as FFmpeg's rescaling rounds
            frame.time_base = time_base
            if mark_fields is not None:
                frame = mark_fields(frame)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


_AV_FIELD_TT = 2  # AVFieldOrder: top field coded and displayed first
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser in these units


class _FieldMarker:
    """Pass frames through `setfield=tff`, which sets the interlaced and top-field-first flags."""

    def __init__(self) -> None:
        self.graph: av.filter.Graph | None = None

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        if self.graph is None:
            self.graph = av.filter.Graph()
            source = self.graph.add_buffer(
                width=frame.width, height=frame.height, format=frame.format.name, time_base=frame.time_base
            )
            setfield = self.graph.add("setfield", "mode=tff")
            sink = self.graph.add("buffersink")
            source.link_to(setfield)
            setfield.link_to(sink)
            self.graph.configure()
        self.graph.push(frame)
        return self.graph.pull()


def _encoder_options(spec: EpisodeSpec, gop: int) -> dict[str, str]:
    codec = spec.video_codec
    interlaced = spec.scan != "progressive"
    lossless = spec.content == "gradient"
    # Fixed mini-GOPs of 3 B-frames (b-adapt=0: the encoder may not decide a pan needs none) and
    # closed GOPs every `gop` frames with no scene-cut keyframes, so the structure is predictable.
    if codec == "libx264":
        params = f"bframes=3:b-adapt=0:keyint={gop}:min-keyint={gop}:scenecut=0"
        if interlaced:
            params += ":tff=1"  # interlaced (MBAFF) coding comes with +ildct below
        # qp 0 is lossless (High 4:4:4 Predictive profile, 4:2:0 kept).
        crf = str(20 if spec.crf is None else spec.crf)
        return {"preset": "veryfast", "x264-params": params} | ({"qp": "0"} if lossless else {"crf": crf})
    if codec == "libx265":
        params = f"bframes=3:b-adapt=0:keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error"
        if lossless:
            return {"preset": "ultrafast", "x265-params": params + ":lossless=1"}
        return {"preset": "ultrafast", "crf": str(24 if spec.crf is None else spec.crf), "x265-params": params}
    if codec in ("mpeg2video", "mpeg4"):
        # Two B-frames, as DVD authoring and XviD used; a fixed quantiser (ffmpeg's -q:v 3), not the
        # default 200 kb/s that smears SD pictures into blocks.
        options = {
            "g": str(gop),
            "bf": "2",
            "flags": "+qscale",
            "global_quality": str((1 if lossless else 3) * _QP2LAMBDA),
        }
        if interlaced:
            # Interlaced DCT and field motion estimation: MPEG-2 then writes progressive_frame=0 and
            # top_field_first from the frames, as DVD and broadcast encoders do.
            options["flags"] += "+ilme+ildct"
        return options
    if codec == "libvpx-vp9":
        # Realtime speed and no look-ahead (so no hidden alt-ref frames): a clip in well under a second.
        options = {"g": str(gop), "deadline": "realtime", "cpu-used": "8", "row-mt": "1", "lag-in-frames": "0"}
        return options | ({"lossless": "1"} if lossless else {"crf": "32", "b": "0"})
    return {"g": str(gop), "bf": "3"}


def _video_frames(spec: EpisodeSpec):
    """The frames of the file, in display order, as PyAV frames in `spec.pix_fmt`."""
    if spec.content == "gradient":
        yield from _gradient_frames(spec)
        return
    colour = _COLOURS[spec.colour] if spec.colour else None
    for picture in _rgb_frames(spec):
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        yield frame.reformat(
            format=spec.pix_fmt,
            dst_colorspace=colour[3] if colour else None,
            dst_color_range=_LIMITED_RANGE,
        )


def _rgb_frames(spec: EpisodeSpec):
    """RGB frames: the pictures as drawn, woven into interlaced frames where the scan says so."""
    if spec.scan == "progressive":
        yield from _pictures(spec, spec.frame_count)
        return
    if spec.scan == "interlaced":
        fields = _pictures(spec, 2 * spec.frame_count)
        pairs = ((top, next(fields)) for top in fields)
    else:  # telecined: film frames are used two or three fields at a time, out of step with the frames
        film = list(_pictures(spec, spec.film_frame_count))
        pairs = ((film[top], film[bottom]) for top, bottom in field_sources(spec))
    for top, bottom in pairs:
        frame = top.copy()
        frame[1::2] = bottom[1::2]  # even lines from the top field's picture, odd ones from the bottom's
        yield frame


def mouth_open(index: int) -> bool:
    """Whether frame `index` of a motion="mouth" episode shows the mouth open."""
    return (index // MOUTH_FRAMES) % 2 == 1


def mouth_box(spec: EpisodeSpec) -> tuple[int, int, int, int]:
    """The mouth of a motion="mouth" episode: (top, left, height, width) in source pixels,
    inside one 8x8 block (1 pixel from its sides, 2 from its top)."""
    top, left = _face_corner(spec)
    return top + 2 * 8 + 2, left + 8 + 1, 4, 6


def _face_corner(spec: EpisodeSpec) -> tuple[int, int]:
    return spec.height // 2 // 8 * 8, spec.width // 2 // 8 * 8


def _paint_face(frame: np.ndarray, spec: EpisodeSpec, index: int) -> None:
    top, left = _face_corner(spec)
    frame[top : top + _FACE, left : left + _FACE] = _FACE_LEVEL
    if mouth_open(index):
        y, x, h, w = mouth_box(spec)
        frame[y : y + h, x : x + w] = _MOUTH_LEVEL


def _pictures(spec: EpisodeSpec, count: int):
    """Pictures of a looping background pan with a bouncing "character" in front.

    The background is a cel twice as wide as the picture, panned `pan_px` pixels a picture and
    wrapped (the seam is a hard cut, like a cel loop); the foreground disc moves on its own path.
    With `hold_pattern`, a picture repeats the drawing of the first picture of its hold (the
    motion goes on in between, so drawings step further, as on twos and threes). "slow_pan" moves
    the whole picture, character included, exactly 1 pixel a picture; "mouth" holds the first
    picture and opens and closes a mouth on a face painted over it. Numpy slicing only, so a
    picture costs well under a millisecond at the default size.
    """
    h, w = spec.height, spec.width
    cel = anime_frame(h, 2 * w, seed=7)
    sprite, mask = _sprite(max(8, min(h, w) // 3))
    sh, sw = mask.shape
    if spec.motion == "slow_pan":
        # The character is painted on the cel (the camera pans over both): every pixel moves alike.
        region = cel[(h - sh) // 2 : (h - sh) // 2 + sh, w // 2 : w // 2 + sw]
        region[mask] = sprite[mask]
    background = np.concatenate([cel, cel[:, :w]], axis=1)  # so any window of w wraps
    drawings = new_drawings(spec) if spec.hold_pattern else None
    interlaced = spec.scan == "interlaced"
    d = 0
    for i in range(count):
        if drawings is not None:
            while d + 1 < len(drawings) and drawings[d + 1] <= i:
                d += 1
            drawing = drawings[d]
        else:
            drawing = 0 if spec.motion == "mouth" else i
        if spec.motion == "slow_pan":
            frame = background[:, drawing % (2 * w) : drawing % (2 * w) + w].copy()
        else:
            x0 = (spec.pan_px * drawing) % (2 * w)
            frame = background[:, x0 : x0 + w].copy()
            phase = drawing / max(1, count - 1)
            x = int(round((w - sw) * (0.5 + 0.45 * math.sin(2 * math.pi * phase))))
            y = int(round((h - sh) * (0.2 + 0.6 * abs(math.cos(3 * math.pi * phase)))))
            region = frame[y : y + sh, x : x + sw]
            region[mask] = sprite[mask]
        if spec.motion == "mouth":
            _paint_face(frame, spec, i)
        if spec.marker:
            # Both fields of an interlaced frame carry the frame's index, so it reads as one.
            _stamp_marker(frame, i // 2 if interlaced else i, 0, 255)
        yield frame


def _gradient_frames(spec: EpisodeSpec):
    """A still horizontal luma ramp from 10-bit 240 to 320 (8-bit 60 to 80), neutral chroma.

    Made in YUV directly, with no RGB step and no noise, so the file holds exactly 81 luma levels
    in 10-bit (21 in 8-bit): a path that drops to 8 bits anywhere shows as 4x fewer levels.
    """
    w, h = spec.width, spec.height
    ten_bit = "10" in spec.pix_fmt
    levels = 240 + 80 * np.arange(w) / max(1, w - 1)
    luma = np.broadcast_to(np.round(levels if ten_bit else levels / 4), (h, w)).astype(np.uint16)
    neutral = np.full((h // 2, w // 2), 512 if ten_bit else 128, np.uint16)
    black, white = (64, 940) if ten_bit else (16, 235)
    for i in range(spec.frame_count):
        y = luma.copy()
        if spec.marker:
            _stamp_marker(y, i, black, white)
        yield _planar_frame([y, neutral, neutral], spec.pix_fmt)


def _planar_frame(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    """A frame of a planar 4:2:0 format (8 or 16-bit little-endian samples) from its planes."""
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    dtype = np.dtype("<u2") if "10" in pix_fmt else np.dtype(np.uint8)
    for plane, data in zip(frame.planes, planes, strict=True):
        row = data.astype(dtype).view(np.uint8).reshape(plane.height, -1)
        buffer = np.zeros((plane.height, plane.line_size), np.uint8)
        buffer[:, : row.shape[1]] = row
        plane.update(buffer)
    return frame


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


@dataclass
class _MuxArgs:
    """ffmpeg's arguments for the episode as they are gathered, by kind: on the command line each
    kind is one run (inputs, then maps, codecs, metadata)."""

    inputs: list[str] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    codecs: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    n_inputs: int = 0

    def add_input(self, *args: str) -> int:
        """One input, with its own options before its -i; returns its index."""
        self.inputs.extend(args)
        self.n_inputs += 1
        return self.n_inputs - 1


def _mux_command(spec: EpisodeSpec, video: Path, work: Path, out: Path, fmt: str) -> list[str]:
    """ffmpeg's arguments (inputs, maps, options, output) for the episode; raw, not ffmpeg-python:
    inputs with their own options (-itsoffset, -f lavfi) and repeated per-stream options."""
    mkv = spec.container == "mkv"
    args = _MuxArgs()
    _add_video(args, spec, video)
    _add_audio(args, spec)
    font = find_font() if (mkv and spec.ass_subtitles) else None
    _add_subtitles(args, spec, work, font)
    cover = _add_cover(args, spec, work, mkv)
    _add_chapters_and_tags(args, spec, work)
    attachments = _mkv_attachments(font, cover) if mkv else []
    return [*args.inputs, *args.maps, *args.codecs, *args.meta, *attachments, *_output_args(spec, out, fmt)]


def _add_video(args: _MuxArgs, spec: EpisodeSpec, video: Path) -> None:
    """The encoded picture, copied, with what the container needs to store it as the spec says."""
    args.codecs += ["-c:v:0", "copy"]
    if spec.container == "avi":
        # AVI counts frames: its time base must be 1/rate (ffmpeg would pick the input's 1/1000 and
        # write a mostly empty chunk per ms). XVID is the FourCC XviD-era players and tools look for.
        fourcc = "XVID" if spec.video_codec == "mpeg4" else "H264"
        args.codecs += ["-time_base:v:0", f"{1 / spec.rate}", "-tag:v:0", fourcc]
        if spec.video_codec == "libx264":
            args.codecs += ["-bsf:v:0", "h264_mp4toannexb"]  # AVI carries H.264 as a byte stream, not as MKV does
    if spec.sar:
        # The container's own aspect field (Matroska's display size, AVI's vprp). With stream copy
        # ffmpeg takes it from the input's bitstream, and VP9 has none: WebM would come out square.
        width, height = spec.width * spec.sar[0], spec.height * spec.sar[1]
        args.codecs += ["-aspect:v:0", f"{width // math.gcd(width, height)}:{height // math.gcd(width, height)}"]
    args.add_input("-i", str(video))
    args.maps += ["-map", "0:v:0"]
    args.meta += _stream_meta("v:0", spec.video_language, _video_title(spec), ["default"])


def _add_audio(args: _MuxArgs, spec: EpisodeSpec) -> None:
    """Each audio track: a tone from lavfi, encoded, starting at its offset."""
    for a, track in enumerate(spec.audio):
        duration = spec.seconds - track.start_offset
        # A stereo sine from lavfi, as long as the rest of the episode; -itsoffset delays the input,
        # so the encoded track starts at start_offset (less the encoder's priming).
        source = (
            f"sine=frequency={track.frequency}:sample_rate={_AUDIO_RATE}:duration={duration},"
            "aformat=channel_layouts=stereo"
        )
        offset = ["-itsoffset", f"{track.start_offset}"] if track.start_offset else []
        index = args.add_input(*offset, "-f", "lavfi", "-i", source)
        args.maps += ["-map", f"{index}:a:0"]
        args.codecs += [f"-c:a:{a}", track.codec]
        if track.codec in _AUDIO_BITRATES:
            args.codecs += [f"-b:a:{a}", _AUDIO_BITRATES[track.codec]]
        title = track.title or f"{_CODEC_LABELS.get(track.codec, track.codec)} 2.0"
        args.meta += _stream_meta(
            f"a:{a}", track.language, title, ["default"] * track.default + list(track.dispositions)
        )


def _add_subtitles(args: _MuxArgs, spec: EpisodeSpec, work: Path, font: Path | None) -> None:
    """The styled ASS track (when there is a font to embed for it), then the SRT track, written into `work`."""
    s = 0
    if font is not None:
        ass = work / "subtitles.ass"
        ass.write_text(_ass_script(spec, _font_family(font)), encoding="utf-8")
        index = args.add_input("-i", str(ass))
        args.maps += ["-map", f"{index}:s:0"]
        args.codecs += [f"-c:s:{s}", "copy"]
        args.meta += _stream_meta(f"s:{s}", "eng", "English (Styled)", ["default"])
        s += 1
    if spec.srt_subtitles:
        srt = work / "subtitles.srt"
        srt.write_text(_srt_script(spec), encoding="utf-8")
        index = args.add_input("-i", str(srt))
        args.maps += ["-map", f"{index}:s:0"]
        # Matroska keeps SubRip as is; MP4 can only carry subtitles as mov_text (3GPP timed text),
        # WebM as WebVTT.
        args.codecs += [f"-c:s:{s}", {"mkv": "copy", "mp4": "mov_text", "webm": "webvtt"}[spec.container]]
        # Hearing_impaired, and default only when it is the only subtitle track: flags a remux must keep.
        args.meta += _stream_meta(f"s:{s}", "eng", "English (SDH)", ["hearing_impaired"] + ["default"] * (s == 0))


def _add_cover(args: _MuxArgs, spec: EpisodeSpec, work: Path, mkv: bool) -> Path | None:
    """The cover image, written into `work` when the spec asks for one; returns it. In MP4 it is an
    input here; Matroska takes it as an attachment (`_mkv_attachments`)."""
    if not spec.cover_image:
        return None
    cover = work / "cover.jpg"
    Image.fromarray(anime_frame(300, 212, seed=11)).save(cover, quality=85)  # a small portrait poster
    if not mkv:
        # MP4 cover art is a video stream with the attached_pic disposition (the 'covr' atom).
        index = args.add_input("-i", str(cover))
        args.maps += ["-map", f"{index}:v:0"]
        args.codecs += ["-c:v:1", "copy"]
        args.meta += ["-disposition:v:1", "attached_pic"]
    return cover


def _add_chapters_and_tags(args: _MuxArgs, spec: EpisodeSpec, work: Path) -> None:
    """The chapters (an ffmetadata file written into `work`) and the spec's global tags, and nothing
    else: no metadata or chapters come from the inputs."""
    if spec.chapters:
        chapters = work / "chapters.txt"
        chapters.write_text(_ffmetadata_chapters(spec), encoding="utf-8")
        index = args.add_input("-f", "ffmetadata", "-i", str(chapters))
        # Global tags come from this file (it has none) and the -metadata options below, not from
        # the video file, whose only tag is ffmpeg's ENCODER.
        args.meta += ["-map_metadata", str(index), "-map_chapters", str(index)]
    else:
        args.meta += ["-map_metadata", "-1", "-map_chapters", "-1"]
    for key, value in spec.tags:
        args.meta += ["-metadata", f"{key}={value}"]


def _mkv_attachments(font: Path | None, cover: Path | None) -> list[str]:
    """Matroska attachments need a filename and a mimetype; the demuxer shows image attachments
    as attached_pic video streams, fonts as attachment streams."""
    files = ([(font, font.name, "font/ttf")] if font else []) + ([(cover, "cover.jpg", "image/jpeg")] if cover else [])
    attachments: list[str] = []
    for t, (file, name, mimetype) in enumerate(files):
        attachments += ["-attach", str(file), f"-metadata:s:t:{t}", f"mimetype={mimetype}"]
        attachments += [f"-metadata:s:t:{t}", f"filename={name}"]
    return attachments


def _output_args(spec: EpisodeSpec, out: Path, fmt: str) -> list[str]:
    """The options of the output file, and the file."""
    # bitexact: no random Matroska UIDs or version strings, so the same spec makes the same bytes.
    tail = ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", fmt, str(out)]
    if spec.container == "ts":
        # No mux delay, then the offset: the first decode timestamp is exactly start_time.
        tail[:0] = ["-muxdelay", "0", "-output_ts_offset", f"{spec.start_time}"]
    return tail


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
            "; Made by remaster.demo.samples",
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
