"""`remaster export`: re-encode a (remastered) video for a video site or an archive, as a target says.

One ffmpeg command (the binary of imageio-ffmpeg, which has zscale and libass) does it all:

* Picture: zscale, lanczos, to the target's box (downscaling only, the display aspect kept; with
  `square_pixels` anamorphic video is resampled to square pixels by shrinking the longer side of
  the pixel, as `remaster --square-pixels` does), converted to BT.709 and tagged so. As in the
  rest of remaster only the matrix is converted between BT.601 and BT.709 (their primaries are
  close; players do the same); BT.2020 primaries are converted too; HDR (PQ, HLG) is refused.
* Subtitles soft (MP4: mov_text, so ASS styling is lost; MKV: copied), or one track burned in by
  libass with `--burn-subs`. libass gets the file's own fonts twice over: ffmpeg's subtitles
  filter loads attachments whose MIME type it knows (font/ttf...), and every attachment that is a
  font by MIME type or by name is also written to a folder given as `fontsdir`, which covers the
  application/octet-stream fonts of older releases that the filter skips. The burned track is not
  kept soft as well (players would show it twice). libass's own log says which font it drew each
  style with; a style drawn with a font from this machine instead of the file is reported.
* Audio copied when the target lists its codec, else encoded; chapters, global tags, languages,
  titles and dispositions kept where the container allows; attachments and covers kept in MKV.
* MP4s get `+faststart` (the index first, so playback starts before the download ends).

Every frame keeps its timestamp (`-copyts`, `-fps_mode passthrough`): variable frame rate stays
variable and subtitles meet the frames they were timed against. The output is written under a
temporary name beside the final one, checked (every frame, same times), then renamed.

ffmpeg dies with remaster (SIGKILL from the kernel when remaster dies, however it dies), so it
never finishes a file nobody will use. A killed export's leftovers (the partial file beside the
output, its temporary folder) carry remaster's pid in their names and a lock that it and its ffmpeg
hold; the next export removes those whose process is gone and whose lock is free.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from remaster.core.errors import RemasterError, UsageError
from remaster.core.outputs import commit_file, export_output_path, refuse_to_destroy, stage_output
from remaster.core.wording import counted
from remaster.export.targets import Target, VideoTarget, get_target
from remaster.media.ffmpeg import FFmpegProgress, run_ffmpeg
from remaster.media.pixels import pix_fmt_layout, square_pixel_size
from remaster.video.encode import CODECS
from remaster.video.mux import cover_attachment_args, describe_video, is_stale_video_tag, is_title_tag
from remaster.video.probe import MediaInfo, StreamInfo, probe
from remaster.video.streams import TEXT_SUBTITLES, StreamPlan, StreamPolicy, plan_streams

# MIME types of fonts in Matroska files (the ones ffmpeg's subtitles filter loads, and more);
# old releases also use application/octet-stream, so a font's file name counts as well.
FONT_MIMETYPES = {
    "font/ttf", "font/otf", "font/sfnt", "font/collection", "application/x-truetype-font",
    "application/x-font-ttf", "application/x-font-otf", "application/x-font", "application/font-sfnt",
    "application/vnd.ms-opentype",
}  # fmt: skip
FONT_SUFFIXES = {".ttf", ".otf", ".ttc", ".otc"}
_ZSCALE_MATRIX = {"bt601": "170m", "bt709": "709", "bt2020nc": "2020_ncl"}
_HDR_TRANSFERS = {16: "PQ (SMPTE ST 2084)", 18: "HLG"}  # AVCOL_TRC_*: would need tone mapping
# libass's log (at ffmpeg's info level): which font file each (family, weight, italic) was drawn with.
_FONTSELECT = re.compile(r"fontselect: \((.*), (\d+), (\d+)\) -> (.*), \d+, \S*$")
_NO_GLYPH = re.compile(r"failed to find any fallback with glyph (0x[0-9A-Fa-f]+) for font: \((.*), \d+, \d+\)")
DEFAULT_TRACK = "default"  # --burn-subs without a value
WORK_PREFIX = "remaster-export-"  # the temporary folder: remaster-export-<pid>-<random>, in the system temp folder
_WORK_NAME = re.compile(rf"{WORK_PREFIX}(\d+)-\w+")
_PARTIAL_NAME = re.compile(r"\.(?P<output>.+)\.(?P<pid>\d+)-\w+\.partial")  # beside the output


@dataclass(frozen=True)
class ExportFrame:
    """The export's picture size and pixel shape, fitted into the target's box (output_geometry)."""

    width: int
    height: int
    sar: Fraction  # of the output's pixels


@dataclass
class ExportReport:
    source: Path
    output: Path
    target: str
    width: int
    height: int
    sar: Fraction
    frames: int
    seconds: float  # wall-clock time of the export
    size: int  # bytes
    burned: str | None = None  # the burned-in subtitle track, described
    streams: list[str] = field(default_factory=list)  # what the output holds, one line per stream
    notes: list[str] = field(default_factory=list)  # streams dropped or converted, fonts not found


def output_geometry(width: int, height: int, sar: Fraction, video: VideoTarget) -> ExportFrame:
    """The output's size and sample aspect ratio: the same display aspect as the source, within
    the target's box (never enlarged), even sides (4:2:0 and 4:2:2 encoders need them)."""
    w, h = Fraction(width), Fraction(height)
    if video.square_pixels and sar != 1:
        w, h = square_pixel_size(w, h, sar)
        sar = Fraction(1)
    if video.max_size is not None:
        box_w, box_h = video.max_size
        w, h = _fit(w, h, sar, box_w, box_h)
    (shift_x, shift_y), _ = pix_fmt_layout(video.encoder.pix_fmt)
    return ExportFrame(_round_to(w, 1 << shift_x), _round_to(h, 1 << shift_y), sar)


def _size_notes(target: Target, width: int, height: int, sar: Fraction) -> list[str]:
    """A target with a size box only ever scales down: say so where the source is smaller, since
    a user picking `upload-1080p-h264` for a 480p episode may expect a 1080p file."""
    if target.video.max_size is None:
        return []
    box_w, box_h = target.video.max_size
    if width * sar < box_w and height < box_h:
        return [
            f"{target.name} only scales down (to fit {box_w}x{box_h}): {width}x{height} keeps its size;"
            " remaster it first (remaster IN --preset 2x-conservative) for a larger picture"
        ]
    return []


def _fit(w: Fraction, h: Fraction, sar: Fraction, box_w: int, box_h: int) -> tuple[Fraction, Fraction]:
    factor = min(Fraction(1), Fraction(box_w) / (w * sar), Fraction(box_h) / h)
    return w * factor, h * factor


def _round_to(value: Fraction, multiple: int) -> int:
    """The nearest multiple (halves up), at least `multiple`."""
    return max(multiple, multiple * math.floor(value / multiple + Fraction(1, 2)))


def check_output(source: Path, output: Path, target: Target, overwrite: bool) -> None:
    """Refuse an output that has the wrong type or would destroy something."""
    if output.suffix.lower() != target.suffix:
        raise UsageError(f"{output}: the target {target.name} writes {target.suffix} files")
    refuse_to_destroy(source, output, overwrite)


@dataclass(frozen=True)
class _Details:
    """What PyAV says about a stream beyond StreamInfo."""

    default: bool
    tags: dict[str, str]
    layout: str | None = None  # audio: the channel layout ("5.1(side)")
    channels: int = 0  # audio: how many channels


def _details(path: Path) -> dict[int, _Details]:
    with av.open(str(path), metadata_errors="replace") as container:
        return {
            s.index: _Details(
                bool(s.disposition & av.stream.Disposition.default),
                dict(s.metadata),
                s.codec_context.layout.name if s.type == "audio" else None,
                s.codec_context.channels if s.type == "audio" else 0,
            )
            for s in container.streams
        }


def choose_subtitles(media: MediaInfo, wanted: str, defaults: dict[int, bool]) -> StreamInfo:
    """The track to burn in: `default` (the default-flagged one, else the first), a stream index
    (`3` or `#3`, as remaster's messages number streams) or a language code (`eng`)."""
    tracks = [s for s in media.streams if s.kind == "subtitle"]
    if not tracks:
        raise UsageError(f"{media.path}: --burn-subs: the file has no subtitle tracks")
    if wanted == DEFAULT_TRACK:
        chosen = next((s for s in tracks if defaults.get(s.index)), tracks[0])
    elif wanted.lstrip("#").isdigit():
        chosen = next((s for s in tracks if s.index == int(wanted.lstrip("#"))), None)
    else:
        chosen = next((s for s in tracks if s.language == wanted), None)
    if chosen is None:
        listed = "; ".join(s.describe() for s in tracks)
        raise UsageError(f"{media.path}: --burn-subs {wanted}: no such subtitle track (has {listed})")
    if chosen.codec not in TEXT_SUBTITLES:
        raise UsageError(
            f"{media.path}: --burn-subs: {chosen.describe()} is made of pictures; only text subtitles "
            "(ASS, SRT, WebVTT, mov_text) can be burned in"
        )
    return chosen


def _cleared_tags(tags: dict[str, str], spec: str) -> list[str]:
    # The old encode's encoder and statistics tags (mkvmerge's BPS-eng, DURATION-eng, _STATISTICS_*...)
    # describe a stream that is encoded anew; an empty value deletes them.
    return [arg for key in tags if is_stale_video_tag(key) for arg in (f"-metadata:s:{spec}", f"{key}=")]


def _title_args(tags: dict[str, str], title: str) -> list[str]:
    """The re-encoded video track's title says what it now is ("H.264 1920x1080 8-bit, remaster export
    upload-1080p-h264"), in place of the old one ("HEVC 1440x960 10-bit, remaster 2x-conservative");
    a track without a title gets none."""
    titles = [key for key in tags if is_title_tag(key)]
    if not titles:
        return []
    # "title" is set below; the others (an MP4 source's "name", NAME-eng) would be left over as tags.
    cleared = [arg for key in titles if key != "title" for arg in ("-metadata:s:v:0", f"{key}=")]
    return [*cleared, "-metadata:s:v:0", f"title={title}"]


def stream_policy(target: Target) -> StreamPolicy:
    """What the target allows of the source's other streams: its audio rule (copy some codecs, encode the rest)."""
    audio = target.audio
    return StreamPolicy("exported", target.name, audio.copy, audio.encoder, audio.bitrate)


def _plan_streams(
    media: MediaInfo, target: Target, burned: StreamInfo | None, details: dict[int, _Details]
) -> tuple[StreamPlan, list[str]]:
    """Every stream but the main video: copied, converted, or dropped with a note saying why; and the
    ffmpeg arguments that map them (after a global `-c copy`)."""
    layouts = {i: (d.layout, d.channels) for i, d in details.items()}
    plan = plan_streams(media, target.muxer, stream_policy(target), burned.index if burned else None, layouts)
    args = plan.args()
    for decision in plan.converted("audio"):  # encoded anew: the old encode's statistics tags are wrong
        args += _cleared_tags(details[decision.stream.index].tags, decision.output)
    return plan, args


def _colour_input(media: MediaInfo) -> str:
    """zscale's description of the source's colour: the matrix and range as decoded (untagged SD is
    BT.601, untagged HD BT.709); BT.601/709 primaries and transfer are taken as BT.709's."""
    video = media.video
    trc = video.tagged["color_trc"]
    if trc in _HDR_TRANSFERS:
        raise UsageError(f"{media.path}: HDR video ({_HDR_TRANSFERS[trc]}) is not supported: targets are SDR BT.709")
    primaries = "2020" if video.matrix == "bt2020nc" else "709"
    range_in = "full" if video.full_range else "limited"
    return f"matrixin={_ZSCALE_MATRIX[video.matrix]}:primariesin={primaries}:transferin=709:rangein={range_in}"


def _video_filter(media: MediaInfo, geometry: ExportFrame, target: Target, burn: tuple[str, int] | None) -> str:
    """zscale (size, colour, depth) -> pixel format -> SAR [-> subtitles drawn at the output size]."""
    video = media.video
    # error_diffusion dithers where depth is lost (10-bit sources, the float matrix conversion),
    # so gradients do not band.
    filters = [
        f"zscale=w={geometry.width}:h={geometry.height}:filter=lanczos:{_colour_input(media)}"
        ":matrix=709:primaries=709:transfer=709:range=limited:dither=error_diffusion",
        f"format={target.video.encoder.pix_fmt}",
        f"setsar={geometry.sar.numerator}/{geometry.sar.denominator}",
    ]
    if burn is not None:
        source_name, track = burn
        # original_size: libass lays the script out on the source's storage size, as VSFilter
        # and players do, then draws it sharp at the output size.
        filters.append(
            f"subtitles=filename={source_name}:si={track}:fontsdir=fonts:original_size={video.width}x{video.height}"
        )
    return ",".join(filters)


def _video_args(
    media: MediaInfo, geometry: ExportFrame, target: Target, burn: tuple[str, int] | None, tags: dict[str, str]
) -> list[str]:
    video = target.video
    spec = CODECS[video.encoder.codec]
    args = ["-map", f"0:{media.video.index}", "-filter:v:0", _video_filter(media, geometry, target, burn)]
    args += ["-c:v:0", spec.encoder, f"-{spec.quality_option}:v:0", f"{video.encoder.crf:g}"]
    args += ["-preset:v:0", video.encoder.speed]
    for key, value in spec.fixed_options:
        args += [f"-{key}:v:0", value]
    if video.maxrate:
        args += ["-maxrate:v:0", video.maxrate, "-bufsize:v:0", video.bufsize]
    if spec.encoder == "libx265" and target.container == "mp4":
        args += ["-tag:v:0", "hvc1"]  # Apple's players (and so some sites) play HEVC in MP4 only as hvc1
    args += ["-colorspace:v:0", "bt709", "-color_primaries:v:0", "bt709", "-color_trc:v:0", "bt709"]
    args += ["-color_range:v:0", "tv"]
    # Every frame keeps its own timestamp: no frames dropped or repeated to make a constant rate.
    args += ["-fps_mode:v:0", "passthrough", "-enc_time_base:v:0", "demux"]
    # The title is made from what the encoder is given, which is what it writes (a test reads it back
    # from the stream): the codec, the size from zscale, the depth of the pixel format.
    codec = av.Codec(spec.encoder, "w").canonical_name
    bits = av.VideoFormat(video.encoder.pix_fmt).components[0].bits
    title = describe_video(codec, geometry.width, geometry.height, bits, f"remaster export {target.name}")
    return args + _cleared_tags(tags, "v:0") + _title_args(tags, title)


def _font_folder(source: Path, folder: Path) -> int:
    """Write every font attached to `source` into `folder`; returns how many."""
    folder.mkdir()
    count = 0
    with av.open(str(source), metadata_errors="replace") as container:
        for stream in container.streams.attachments:
            name = Path(stream.name or "").name
            mimetype = (stream.mimetype or "").lower()
            if mimetype not in FONT_MIMETYPES and Path(name).suffix.lower() not in FONT_SUFFIXES:
                continue
            # The index keeps two fonts of the same name apart; libass reads every file in the folder.
            (folder / f"{stream.index}-{name or 'font'}").write_bytes(stream.data)
            count += 1
    return count


def _font_notes(log: str, source: Path, styled: bool) -> list[str]:
    """What libass said about fonts: styles drawn with this machine's fonts (`styled`: only ASS
    names its fonts; SRT and mov_text get ffmpeg's default style), and characters no font has."""
    notes: list[str] = []
    for line in log.splitlines():
        font, glyph = _FONTSELECT.search(line), _NO_GLYPH.search(line)
        # A font found by fontconfig is a file path; the file's own fonts (loaded from memory) have none.
        if styled and font and ("/" in font[4] or "\\" in font[4]):
            family, weight, italic, found = font.groups()
            style = f"{family}, weight {weight}{', italic' if italic != '0' else ''}"
            notes.append(
                f"burned subtitles: font ({style}) is not in {source.name}; drawn with {found} from this system"
            )
        elif glyph:
            code = int(glyph[1], 16)
            notes.append(f"burned subtitles: no font has U+{code:04X} ({chr(code)}) for {glyph[2]}; it is left out")
    return list(dict.fromkeys(notes))  # each once, in the order libass met them


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _lock(path: Path) -> int | None:
    """An fd holding `path`'s lock (a file's or a folder's), or None if someone holds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _leftover(path: Path, pid: str) -> int | None:
    """A lock on `path` if it is a killed export's leftover: this user's, its process gone, its lock
    free (the lock is shared with the export's ffmpeg, so a file ffmpeg still writes is not one)."""
    info = path.lstat()
    if info.st_uid != os.getuid() or path.is_symlink() or _alive(int(pid)):
        return None
    return _lock(path)


def remove_leftovers(output: Path) -> list[Path]:
    """Remove what killed exports left: their temporary folders, and partial files beside `output`.
    Returns what it removed."""
    temp = Path(tempfile.gettempdir())
    found = [(p, m[1]) for p in temp.glob(f"{WORK_PREFIX}*") if (m := _WORK_NAME.fullmatch(p.name))]
    found += [
        (p, m["pid"])
        for p in output.parent.glob(f".{glob.escape(output.name)}.*.partial")
        if (m := _PARTIAL_NAME.fullmatch(p.name)) and m["output"] == output.name
    ]
    removed = []
    for path, pid in found:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: left as it is
            fd = _leftover(path, pid)
            if fd is None:
                continue
            try:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed.append(path)
            finally:
                os.close(fd)
    return removed


@contextlib.contextmanager
def _work_folder() -> Iterator[tuple[Path, int]]:
    """A temporary folder for ffmpeg's log, fonts and covers, and the fd that holds its lock."""
    folder = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    fd = _lock(folder)
    try:
        yield folder, fd
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def _ffmpeg(
    args: list[str],
    work: Path,
    source: Path,
    progress: Callable[[int], None] | None = None,
    locks: tuple[int, ...] = (),
) -> str:
    """Run ffmpeg in `work` (so filter arguments name files there without escaping); returns its log.
    ffmpeg inherits `locks` (fds holding flocks), so what it writes counts as in use while it runs."""
    env = {**os.environ, "SVT_LOG": os.environ.get("SVT_LOG", "1")}  # SVT-AV1: errors only

    def on_report(report: FFmpegProgress) -> None:
        if progress is not None and report.frame is not None:
            progress(report.frame)

    # The log is kept at info level for libass's font messages; the runner picks the errors out of it.
    return run_ffmpeg(
        args,
        source,
        "exporting",
        loglevel="info",
        progress=on_report if progress else None,
        log=work / "ffmpeg.log",
        cwd=work,
        env=env,
        pass_fds=locks,
    )


def _verify(path: Path, media: MediaInfo) -> MediaInfo:
    """The export must hold every frame of the source, at the same times (to half a frame)."""
    result = probe(path)
    got, want = result.video, media.video
    if got.frame_count != want.frame_count:
        has = counted(got.frame_count, "frame")
        raise RemasterError(f"{path}: the export has {has}, the source {want.frame_count}")
    tolerance = 0.5 / float(want.rate)
    for label, a, b in (("first", got.pts[0], want.pts[0]), ("last", got.pts[-1], want.pts[-1])):
        if abs(got.seconds(a) - want.seconds(b)) > tolerance:
            raise RemasterError(
                f"{path}: the {label} frame is at {got.seconds(a):.3f} s, in the source at {want.seconds(b):.3f} s"
            )
    return result


def export_video(
    source: Path,
    target: Target,
    output: Path,
    burn_subs: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Re-encode `source` into `output` as `target` says; `burn_subs` names a subtitle track to burn
    in (`default`, a stream index or a language code; None: keep subtitles soft). `progress` is
    called with (frames done, frames in all) as ffmpeg reports them."""
    t0 = time.monotonic()
    remove_leftovers(output.absolute())
    check_output(source, output, target, overwrite)
    # Absolute: FFmpeg takes a relative name such as "ep: 1.mkv" for a protocol ("ep:").
    source = source.absolute()
    media = probe(source)
    details = _details(source)
    burned = None
    if burn_subs is not None:
        burned = choose_subtitles(media, burn_subs, {i: d.default for i, d in details.items()})
    video = media.video
    geometry = output_geometry(video.width, video.height, video.sar, target.video)
    plan, stream_args = _plan_streams(media, target, burned, details)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Named after the output and this process, and locked while this process or its ffmpeg holds
    # it: if both are killed, the next export to this output removes it (remove_leftovers).
    partial_fd, partial = stage_output(output)
    fcntl.flock(partial_fd, fcntl.LOCK_EX)
    try:
        with _work_folder() as (work, work_fd):
            burn = None
            if burned is not None:
                # The subtitles filter opens the file itself: a link with a plain name in the work
                # folder spares escaping the user's path inside the filter graph.
                suffix = source.suffix if re.fullmatch(r"\.[A-Za-z0-9]+", source.suffix) else ""
                link = work / f"source{suffix}"
                link.symlink_to(source)
                _font_folder(source, work / "fonts")
                track = [s.index for s in media.streams if s.kind == "subtitle"].index(burned.index)
                burn = (link.name, track)
            # Every stream is copied but those given a codec after this (the video, converted ones):
            # ffmpeg takes the last codec option that matches a stream.
            args = ["-copyts", "-i", str(source), "-c", "copy"]
            args += _video_args(media, geometry, target, burn, details[video.index].tags)
            args += stream_args + cover_attachment_args(media, plan.covers, work)
            args += ["-map_chapters", "0", "-map_metadata", "0"]
            args += ["-movflags", "+faststart"] if target.container == "mp4" else []
            args += ["-f", target.muxer, str(partial.resolve())]
            total = video.frame_count
            on_frames = (lambda done: progress(min(done, total), total)) if progress else None
            log = _ffmpeg(args, work, source, on_frames, (partial_fd, work_fd))
            notes = [*_size_notes(target, video.width, video.height, video.sar), *plan.notes]
            if burned is not None:
                notes += _font_notes(log, source, burned.codec in ("ass", "ssa"))
        result = _verify(partial, media)
        commit_file(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        os.close(partial_fd)
    return ExportReport(
        source=source,
        output=output,
        target=target.name,
        width=geometry.width,
        height=geometry.height,
        sar=geometry.sar,
        frames=result.video.frame_count,
        seconds=time.monotonic() - t0,
        size=output.stat().st_size,
        burned=burned.describe() if burned is not None else None,
        streams=[s.describe() for s in result.streams],
        notes=notes,
    )


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN", help="the video to export (a remastered episode)")
    parser.add_argument("--target", required=True, help="upload-1080p-h264, upload-2160p-hevc, upload-av1, ...")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="a file, or a folder (default: beside IN as IN.TARGET.mp4, or .mkv for MKV targets)",
    )
    parser.add_argument(
        "--burn-subs",
        nargs="?",
        const=DEFAULT_TRACK,
        metavar="TRACK",
        help="draw a subtitle track into the picture: the default track, or a stream index (3) or language (eng)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an output that exists")
    parser.add_argument("--quiet", action="store_true", help="print errors only")


def run_export_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    target = get_target(args.target)
    output = export_output_path(args.input, target.name, target.suffix)
    if args.output is not None:
        output = args.output / output.name if args.output.is_dir() else args.output
    console = Console(stderr=True, soft_wrap=True, quiet=args.quiet)
    bars = Progress(
        TextColumn(f"export {escape(target.name)}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )  # fmt: skip
    task = bars.add_task("export", total=None)
    with bars:
        report = export_video(
            args.input,
            target,
            output,
            args.burn_subs,
            args.overwrite,
            lambda done, total: bars.update(task, completed=done, total=total),
        )
    size = f"{report.size / 1e6:.1f} MB"
    console.print(
        f"{escape(str(report.source))} -> [bold]{escape(str(report.output))}[/]: {report.width}x{report.height}, "
        f"{counted(report.frames, 'frame')}, {size}, {report.seconds:.1f} s",
        highlight=False,
    )
    if report.burned:
        console.print(f"burned in: {escape(report.burned)}", highlight=False)
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    return 0
