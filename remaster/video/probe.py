"""Probe: what is in a media file, read with PyAV, and the video's frames from a packet scan.

Frame counts and timestamps come from reading every video packet, never from duration x frame
rate: that guess is what makes other tools drift on VFR files and on MPEG-PS/TS start offsets.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from remaster.core.errors import UsageError
from remaster.core.outputs import check_input

# FFmpeg's AVColorSpace values (libavutil/pixfmt.h) for the matrices we convert exactly.
_MATRIX_BY_AVCOL_SPC = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020nc"}
_AVCOL_RANGE_JPEG = 2  # libavutil/pixfmt.h: AVCOL_RANGE_JPEG, full range
# Untagged video: BT.601 for SD, BT.709 for HD, as players (mpv, VLC) and ITU-R BT.1700/BT.709 assume.
SD_MAX_HEIGHT = 576


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # video, audio, subtitle, attachment, data
    codec: str
    language: str | None
    title: str | None
    attached_pic: bool  # a cover image that FFmpeg's demuxers show as a one-frame video stream

    def describe(self) -> str:
        words = [f"#{self.index}", self.kind, self.codec]
        words += [f"[{self.language}]"] if self.language else []
        words += [f'"{self.title}"'] if self.title else []
        return " ".join(words)


@dataclass(frozen=True)
class VideoInfo:
    index: int
    codec: str
    width: int
    height: int
    sar: Fraction  # sample (pixel) aspect ratio; 1 when the file does not say
    pix_fmt: str  # of the decoded frames
    bits: int
    matrix: str  # bt601, bt709 or bt2020nc: the tag, or the SD/HD default when untagged
    full_range: bool
    tagged: dict[str, int]  # colour tags as stored (AVCOL_* values), 0 = absent
    time_base: Fraction
    rate: Fraction  # the stream's guessed rate: only a hint for encoders' rate control
    pts: tuple[int, ...]  # every frame's pts, sorted (presentation order)
    keyframe_pts: tuple[int, ...]
    has_pts: bool  # every video packet has a pts; if not (AVI), frames are matched by order
    declared_frames: int  # what the container's index says (0 = it does not say)
    declared_end: float | None  # where the container says the video ends, in seconds (None = unknown)
    # When frames share a pts or the decoder gives them out of order (ffmpeg-made VFR): the pts
    # the decoder gives, in its output order, and which of them are keyframes; `pts` is then
    # this sequence repaired onto one increasing timeline (see _repaired_timeline). Empty otherwise.
    decoded_pts: tuple[int, ...] = ()
    decoded_keys: tuple[bool, ...] = ()

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    size: int
    format_name: str
    start_time: float  # seconds, the container's start
    end_of_packets: float  # seconds, where the last audio, video or subtitle packet ends
    video: VideoInfo
    streams: tuple[StreamInfo, ...]
    # Where the packet scan saw data go missing, as (from, to) seconds: bytes of the file that no
    # packet accounts for (Matroska), gaps in an audio stream, index entries with no packet.
    # Evidence for damage.find_holes, which tells a hole in the video from a long VFR frame.
    lost: tuple[tuple[float, float], ...] = ()


def fingerprint(path: Path) -> str:
    """Cheap identity of a file for checkpoints: size, mtime and a hash of its two ends."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, stat.st_size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return digest.hexdigest()


def open_media(path: Path, options: dict[str, str] | None = None) -> av.container.InputContainer:
    """Open a file for reading, or raise a one-line UsageError naming it and the problem.
    `options`: FFmpeg's, for the container and its decoders."""
    check_input(path)  # names the cause: no such file, a symlink loop, permission denied, a folder
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: empty file (0 bytes)")
    try:
        # Absolute: FFmpeg reads a relative name such as "ep: 1.mkv" as a protocol ("ep:").
        return av.open(str(path.absolute()), metadata_errors="replace", options=options or {})
    except av.FFmpegError as exc:
        raise UsageError(f"{path}: not a readable media file ({_reason(exc)})") from None


def _reason(exc: av.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def main_video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & _ATTACHED_PIC:
            return stream
    kinds = sorted({s.type for s in container.streams}) or ["no streams"]
    raise UsageError(f"{path}: no video stream (has {', '.join(kinds)})")


_ATTACHED_PIC = av.stream.Disposition.attached_pic


def _stream_info(stream: av.stream.Stream) -> StreamInfo:
    metadata = stream.metadata
    if stream.type == "attachment":  # fonts and the like: no codec, a file name and a MIME type
        codec, title = metadata.get("mimetype", "unknown"), metadata.get("filename")
    else:
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        title = metadata.get("title") or metadata.get("TITLE") or metadata.get("name")
    return StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=codec,
        language=metadata.get("language") or metadata.get("LANGUAGE"),
        title=title,
        attached_pic=bool(stream.disposition & _ATTACHED_PIC),
    )


# Matroska frames each block with a few EBML IDs and sizes (SimpleBlock or BlockGroup with
# BlockDuration and ReferenceBlock, a Cluster header with its Timestamp and CRC-32): measured at
# most 24 bytes between two packets in FFmpeg's output. More unaccounted bytes between two packets
# means the demuxer skipped unreadable data to find the next cluster.
MAX_FRAMING_BYTES = 256
# An audio packet starting this much later than the previous one ends: a gap in the audio
# (AAC/Opus/AC-3 packets follow each other to within a tick of the time base).
AUDIO_GAP_SECONDS = 0.1
# H.264/HEVC hold at most 16 frames for reordering (the largest DPB): in decode order a frame
# is never shown more than 16 frame durations before one decoded earlier.
MAX_REORDER_FRAMES = 16


@dataclass
class _Scan:
    pts: list[int]
    keyframes: list[int]
    end: float  # seconds: where the last packet of any stream ends
    has_pts: bool = True  # False when some video packet had only a dts (AVI)
    lost: list[tuple[float, float]] = field(default_factory=list)  # see MediaInfo.lost
    # (pts, width, height, the packet's place in `pts`) at each size change
    sizes: list[tuple[int, int, int, int]] = field(default_factory=list)


def _scan_packets(container: av.container.InputContainer, video, path: Path) -> _Scan:
    """Read every packet once: the video's timestamps and keyframes, and where the file's data ends."""
    scan = _Scan([], [], 0.0)
    video.codec_context.thread_count = 1  # for _note_size
    matroska = container.format.name.startswith("matroska")
    last_byte, last_time = -1, 0.0  # where the previous packet ended in the file, and its time
    audio_ends: dict[int, float] = {}  # audio stream -> where its previous packet ended, seconds
    try:
        for packet in container.demux():
            if packet.size == 0:  # the flush packets demux() ends with
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.pts is None and packet.stream.index == video.index:
                scan.has_pts = False
            stream = packet.stream
            timed = stream.type in ("audio", "video", "subtitle") and not stream.disposition & _ATTACHED_PIC
            if stamp is not None and timed:
                start = float(stamp * packet.time_base)
                end = float((stamp + (packet.duration or 0)) * packet.time_base)
                scan.end = max(scan.end, end)
                if matroska and packet.pos is not None and packet.pos >= 0:
                    if last_byte >= 0 and packet.pos - last_byte > MAX_FRAMING_BYTES:
                        scan.lost.append((min(last_time, start), max(last_time, start)))
                    last_byte, last_time = packet.pos + packet.size, start
                if stream.type == "audio":
                    previous = audio_ends.get(stream.index)
                    if previous is not None and start - previous > AUDIO_GAP_SECONDS:
                        scan.lost.append((previous, start))
                    audio_ends[stream.index] = end
            if stream.index != video.index:
                continue
            if stamp is None:
                raise UsageError(f"{path}: video packets without timestamps are not supported")
            scan.pts.append(stamp)
            if packet.is_keyframe:
                scan.keyframes.append(stamp)
                _note_size(scan, packet)
    except av.FFmpegError as exc:
        # A damaged tail stops the scan; what was read counts, and the index check reports it.
        if not scan.pts:
            raise UsageError(f"{path}: cannot read video packets ({_reason(exc)})") from None
    if matroska:
        # Matroska's cues list the video's keyframes: one with no packet was lost.
        present = set(scan.keyframes)
        for entry in video.index_entries:
            if entry.is_keyframe and entry.timestamp not in present:
                at = float(entry.timestamp * video.time_base)
                scan.lost.append((at, at))
    return scan


def _note_size(scan: _Scan, packet: av.Packet) -> None:
    """Decode a keyframe on its own to learn the picture size, and keep each change of it:
    a picture size can only change at a keyframe (a new sequence header needs one)."""
    context = packet.stream.codec_context
    try:
        # Drained and reset after each keyframe, so that the frame comes out now, not after
        # the reorder delay; one thread, so that frame threading does not hold it back either.
        frames = [*context.decode(packet), *context.decode(None)]
        context.flush_buffers()
    except av.FFmpegError:  # a damaged keyframe; the decode checks report damage
        return
    for frame in frames:
        size = (frame.width, frame.height)
        if not scan.sizes or scan.sizes[-1][1:3] != size:
            scan.sizes.append((packet.pts if packet.pts is not None else packet.dts, *size, len(scan.pts) - 1))


def _check_timeline(path: Path, video: av.video.stream.VideoStream, scan: _Scan) -> None:
    """Refuse, before any work, a video whose timestamps restart (TimestampReset, which
    normalise.py handles) or whose picture size changes: one line naming the time (from the first
    frame, as players and --start count) and what to do. Segments, seeking and the output's
    timeline all index frames by pts on one clock."""
    tb = video.time_base
    origin = min(scan.pts)
    if len(scan.sizes) > 1:
        (_, w0, h0, _), (at, w1, h1, place) = scan.sizes[:2]
        before = max(scan.pts[:place], default=at)
        if at <= before:  # a keyframe is after every frame before it, unless the clock restarted
            # there (recordings joined with `cat`): it then follows them, as on the joined timeline
            at = before + _frame_ticks(video, scan.pts, _least_ticks(Fraction(tb)))
        raise UsageError(
            f"{path}: the picture size changes at {float((at - origin) * tb):.3f} s from {w0}x{h0} to {w1}x{h1}; "
            "not supported: cut the file there and remaster each part"
        )
    # In decode order a frame may come after at most MAX_REORDER_FRAMES frames shown after it;
    # counted in frames, not seconds, so that long VFR frames do not look like a jump back.
    latest: list[int] = []  # a min-heap of the MAX_REORDER_FRAMES + 1 highest pts so far
    for stamp in scan.pts:
        if len(latest) > MAX_REORDER_FRAMES and stamp < latest[0]:
            raise TimestampReset(path, float((max(latest) - origin) * tb), float((stamp - origin) * tb))
        heapq.heappush(latest, stamp)
        if len(latest) > MAX_REORDER_FRAMES + 1:
            heapq.heappop(latest)


class TimestampReset(UsageError):
    """The video's timestamps restart: `at` and `back_to` are seconds from the first frame.
    A remaster run puts such a file on one timeline itself (normalise.py); `remaster export` refuses it."""

    def __init__(self, path: Path, at: float, back_to: float):
        self.at, self.back_to = at, back_to
        self.cause = (
            f"timestamps go backwards at {at:.3f} s (the video jumps back to {back_to:.3f} s, "
            "as where two files were joined end to end)"
        )
        remux = "ffmpeg -i INPUT -map 0 -c copy OUTPUT.mkv"
        super().__init__(f"{path}: {self.cause}; put it on one timeline first, e.g. {remux}")


def _output_order(path: Path, scan: _Scan) -> tuple[list[int], list[bool]]:
    """The pts of every frame in the decoder's output order, and which are keyframes: a decode of
    the whole video, done only for files whose frames share timestamps."""
    order: list[int] = []
    keys: list[bool] = []
    with open_media(path) as container:
        stream = main_video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                order.append(frame.pts)
                keys.append(frame.key_frame)
        except av.FFmpegError:
            pass  # counted below
    if len(order) != len(scan.pts) or None in order:
        shared = len(scan.pts) - len(set(scan.pts))
        raise UsageError(
            f"{path}: {shared} video frames share their timestamp with another and only {len(order)} of "
            f"{len(scan.pts)} frames decode, so they cannot be told apart"
        )
    return order, keys


def _repaired_timeline(order: list[int], frame_ticks: int, least_ticks: int) -> list[int]:
    """The frames, in the order the decoder shows them, on one increasing timeline, each moved the
    least: a frame that jumps back by a frame duration (`frame_ticks`) or more is where the
    timestamps restart (two short recordings joined with `cat`), and it and every frame after it
    move as one piece to follow the frame before it by one frame duration, as FFmpeg joins such
    parts; a frame that shares its time with the one before it, or comes less than `least_ticks`
    after it (a rounded clock), goes `least_ticks` after it, and the frames after it keep their own
    times again as soon as those are later."""
    repaired: list[int] = []
    offset = 0
    for stamp in order:
        moved = stamp + offset
        if repaired and repaired[-1] - moved >= frame_ticks:
            offset += repaired[-1] + frame_ticks - moved
            moved = repaired[-1] + frame_ticks
        elif repaired and moved - repaired[-1] < least_ticks:
            moved = repaired[-1] + least_ticks
        repaired.append(moved)
    return repaired


def _frame_ticks(stream: av.video.stream.VideoStream, pts: list[int], least_ticks: int) -> int:
    """One frame's duration in the stream's time base: from its rate, or else the most common step
    between its frames; never under `least_ticks`."""
    rate = stream.guessed_rate or stream.average_rate
    if rate:
        return max(least_ticks, round(1 / (Fraction(rate) * Fraction(stream.time_base))))
    steps = [b - a for a, b in zip(sorted(set(pts)), sorted(set(pts))[1:], strict=False)]
    return max(least_ticks, statistics.median_low(steps) if steps else least_ticks)


def _least_ticks(time_base: Fraction) -> int:
    """The shortest step between two frames that survives Matroska's 1 ms clock (the coarsest of
    the outputs' clocks, MP4's being the stream's own): ticks of `time_base` in a millisecond."""
    return max(1, math.ceil(Fraction(1, 1000) / time_base))


def header_size(path: Path) -> tuple[int, int]:
    """The main video's picture size as its stream header says it (the codec parameters: the
    container's and the decoder's reading of the SPS or sequence header), before any frame is
    decoded: a decoder allocates the picture the header claims, so an 800-byte file that claims
    16000x16000 costs 1.4 GiB (measured) by its first frame. (0, 0) where the header does not say."""
    # The stream-info probe of av.open decodes a frame to learn the pixel format, and on the way the
    # decoder sets up tables for the whole claimed picture (85 MB for 16000x16000, measured) unless
    # told to skip every frame; and no picture of more than one pixel for a decoder that skips none.
    with open_media(path, {"skip_frame": "all", "max_pixels": "1"}) as container:
        context = main_video_stream(container, path).codec_context
        return context.width, context.height


def _first_frame(container: av.container.InputContainer, stream, path: Path) -> av.VideoFrame:
    stream.thread_type = "AUTO"
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise UsageError(f"{path}: cannot decode the video ({_reason(exc)})") from None
    raise UsageError(f"{path}: no video frame decodes")


def probe(path: Path) -> MediaInfo:
    """Everything the pipeline plans with; raises UsageError for anything that is not a usable video."""
    with open_media(path) as container:
        stream = main_video_stream(container, path)
        streams = tuple(_stream_info(s) for s in container.streams)
        scan = _scan_packets(container, stream, path)
        if not scan.pts:
            raise UsageError(f"{path}: the video stream has no frames")
        _check_timeline(path, stream, scan)
        least = _least_ticks(Fraction(stream.time_base))
        frame_ticks = _frame_ticks(stream, scan.pts, least)
    pts, keyframe_pts, decoded_pts, decoded_keys = sorted(scan.pts), sorted(scan.keyframes), [], []
    if len(set(scan.pts)) < len(scan.pts):
        decoded_pts, decoded_keys = _output_order(path, scan)
        pts = _repaired_timeline(decoded_pts, frame_ticks, least)
        keyframe_pts = [p for p, key in zip(pts, decoded_keys, strict=True) if key]
    # A fresh open rather than a seek back: seeking is not exact in every container.
    with open_media(path) as container:
        stream = main_video_stream(container, path)
        frame = _first_frame(container, stream, path)
        ctx = stream.codec_context
        pix_fmt = frame.format.name
        untagged = "bt601" if frame.height <= SD_MAX_HEIGHT else "bt709"
        sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
        start_time = (container.start_time or 0) / av.time_base
        declared_end = None
        if container.duration:
            declared_end = start_time + container.duration / av.time_base
        info = VideoInfo(
            index=stream.index,
            codec=ctx.name,
            width=frame.width,
            height=frame.height,
            sar=Fraction(sar) if sar else Fraction(1),
            pix_fmt=pix_fmt,
            bits=max(c.bits for c in frame.format.components),
            matrix=_MATRIX_BY_AVCOL_SPC.get(frame.colorspace, untagged),
            full_range=frame.color_range == _AVCOL_RANGE_JPEG or pix_fmt.startswith("yuvj"),
            tagged={
                "colorspace": frame.colorspace or 0,
                "color_primaries": frame.color_primaries or 0,
                "color_trc": frame.color_trc or 0,
                "color_range": frame.color_range or 0,
            },
            time_base=Fraction(stream.time_base),
            rate=Fraction(stream.guessed_rate or stream.average_rate or 25),
            pts=tuple(pts),
            keyframe_pts=tuple(keyframe_pts),
            has_pts=scan.has_pts,
            declared_frames=stream.frames or 0,
            declared_end=declared_end,
            decoded_pts=tuple(decoded_pts),
            decoded_keys=tuple(decoded_keys),
        )
    lost = tuple(scan.lost)
    return MediaInfo(path, path.stat().st_size, container.format.name, start_time, scan.end, info, streams, lost)
