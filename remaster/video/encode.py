"""Encode: Y'CbCr planes to one segment file, with the source's timestamps and the output's colour tags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from remaster.core.errors import RemasterError, UsageError
from remaster.core.scheduling import normal_scheduling
from remaster.media.pixels import SEMI_PLANAR, pix_fmt_layout, sample_dtype
from remaster.video.frames import plane_view


@dataclass(frozen=True)
class Codec:
    encoder: str  # FFmpeg's encoder name
    pix_fmt: str  # the default output pixel format
    quality_option: str  # the encoder's constant-quality option
    speed_default: str
    fixed_options: tuple[tuple[str, str], ...] = ()


# --codec NAME -> encoder. Quality scales differ: x264/x265 CRF 0-51, SVT-AV1 CRF 0-63, NVENC CQ 0-51.
CODECS = {
    "x265": Codec("libx265", "yuv420p10le", "crf", "medium", (("x265-params", "log-level=error"),)),
    "x264": Codec("libx264", "yuv420p", "crf", "medium"),
    "svtav1": Codec("libsvtav1", "yuv420p10le", "crf", "6", (("svtav1-params", "lp=0"),)),
    "nvenc-hevc": Codec("hevc_nvenc", "p010le", "cq", "p5", (("rc", "vbr"), ("b", "0"))),
    "nvenc-h264": Codec("h264_nvenc", "yuv420p", "cq", "p5", (("rc", "vbr"), ("b", "0"))),
    "nvenc-av1": Codec("av1_nvenc", "p010le", "cq", "p5", (("rc", "vbr"), ("b", "0"))),
}


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "x265"
    crf: float = 16
    speed: str = ""  # the encoder's preset (x264/x265 `medium`, SVT-AV1 `6`, NVENC `p5`); "" = its default here
    pix_fmt: str = ""  # "" = the codec's default

    @property
    def spec(self) -> Codec:
        if self.codec not in CODECS:
            raise UsageError(f"--codec {self.codec!r}: want one of {', '.join(CODECS)}")
        return CODECS[self.codec]

    def resolved(self) -> EncoderSettings:
        spec = self.spec
        return EncoderSettings(self.codec, self.crf, self.speed or spec.speed_default, self.pix_fmt or spec.pix_fmt)

    def options(self) -> dict[str, str]:
        """The encoder's own options for these (resolved) settings."""
        options = {self.spec.quality_option: f"{self.crf:g}", "preset": self.speed}
        options.update(self.spec.fixed_options)
        return options


def encoder_threads() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a container's cpuset), which
    can be far fewer than the machine's, where x265 would otherwise start a thread per core."""
    return len(os.sched_getaffinity(0))


def threaded_options(settings: EncoderSettings, threads: int) -> dict[str, str]:
    """The encoder's options (resolved settings) sized to `threads` cores. x265 sizes its thread
    pool by the machine's cores, not the process's (measured: under `taskset -c 0` on a 2-core
    machine it still starts 2 pool workers), and FFmpeg's libx265 wrapper passes no thread count:
    its own `pools=N` does. x264 already counts the cores of the process's affinity (and starts
    1.5 threads a core, its tuned default); SVT-AV1 keeps `lp=0`, its automatic choice, as what
    `lp` means changed between its releases (a core count, then a level of parallelism)."""
    options = settings.options()
    if settings.spec.encoder == "libx265":
        options["x265-params"] = f"{options['x265-params']}:pools={threads}"
    return options


def check_encoder(settings: EncoderSettings) -> None:
    """Fail before any work if this FFmpeg build lacks the encoder or it cannot take the pixel format."""
    spec = settings.spec
    if spec.encoder not in av.codecs_available:
        raise UsageError(f"--codec {settings.codec}: this FFmpeg (PyAV {av.__version__}) has no {spec.encoder}")
    formats = {f.name for f in av.Codec(spec.encoder, "w").video_formats or ()}
    pix_fmt = settings.resolved().pix_fmt
    pix_fmt_layout(pix_fmt)
    if pix_fmt not in formats:
        raise UsageError(f"--pix-fmt {pix_fmt}: {spec.encoder} takes {', '.join(sorted(formats))}")
    # Open it once with the chosen quality and speed, so that a value the encoder refuses (x265 takes
    # --crf 0-51, x264 only its own --speed names) is bad input now, not a failure after the first
    # segment has gone through the model. NVENC is built into every PyAV wheel but opens only with an
    # NVIDIA GPU and driver: this finds that out too.
    resolved = settings.resolved()
    try:
        _open_encoder(spec.encoder, pix_fmt, 256, 256, resolved.options())
    except av.FFmpegError as exc:
        if spec.encoder.endswith("_nvenc"):
            # FFmpeg's own error ("Operation not permitted" without a GPU) does not say what is missing.
            raise UsageError(
                f"--codec {settings.codec}: {spec.encoder} does not open here: it needs an NVIDIA GPU with "
                f"NVENC and its driver ({exc.strerror or exc}); x264, x265 or svtav1 run on the CPU"
            ) from None
        # The encoder logs which value it refuses just above this line.
        settings_text = f"--codec {settings.codec} --crf {resolved.crf:g} --speed {resolved.speed}"
        raise UsageError(f"{settings_text}: {spec.encoder} refuses them ({exc.strerror or exc})") from None


def _open_encoder(encoder: str, pix_fmt: str, width: int, height: int, options: dict[str, str] | None = None) -> None:
    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, pix_fmt, Fraction(1, 25)
    ctx.options = options or {}
    try:
        ctx.open()
    finally:
        normal_scheduling()  # SVT-AV1 opened as root makes the thread real-time (core/scheduling.py)


@dataclass(frozen=True)
class SizeLimits:
    """The output sizes an encoder opens with: each side, and the picture's area in luma samples."""

    min_side: int = 1
    max_width: int | None = None
    max_height: int | None = None
    max_area: int | None = None
    # (short, long): a picture under `short` on one side takes at most `long` on the other.
    narrow: tuple[int, int] | None = None


# Measured by opening each encoder of the PyAV 18.1.1 wheel (FFmpeg 8.1) at sizes on both sides of
# the limit, with 4:2:0 at the codec's default depth (tests/test_output_tags.py does it again):
ENCODER_SIZE_LIMITS = {
    # 14x64, 64x14 and 16x14 fail, 16x16 opens. No limit on a side up to 32768x64; the area limit is
    # x265's own message for 16000x16000: "exceeds the maximum supported luma samples
    # 142,606,336 (16384x8704) of Level 7.2".
    # Under 32 on a side x265 shrinks its CTU to 16 ("level 5 detected, but CTU size 16 is
    # non-compliant"): HEVC allows 16-pixel CTUs up to Level 4.1, whose widest picture is
    # sqrt(8 x 2,228,224) = 4222; measured with 16 to 30 on the short side, either way round:
    # 4216 opens, 4218 fails (8192x16 among them); 32 on the short side opens up to 32768.
    "libx265": SizeLimits(min_side=16, max_area=142_606_336, narrow=(32, 4216)),
    # 16384x64 and 64x16384 open, 16386x64 and 64x16386 fail ("Generic error in an external
    # library"); 2x2 opens (1x1 fails in 4:2:0, where sides are even anyway).
    "libx264": SizeLimits(max_width=16384, max_height=16384),
    # 2x2, 2x64 and 64x2 open and encode; 16384x64 opens, 16386x64 fails; 64x8704 opens, 64x8706
    # fails. PyAV 18.1.0's SVT-AV1 refused 2 on a side and hung on strips (66x24, 16x128: no packet,
    # no error); 18.1.1's encodes them, and pyproject.toml asks for it.
    "libsvtav1": SizeLimits(max_width=16384, max_height=8704),
}
# Every encoder: avcodec_open2 checks the size with av_image_check_size2 (libavutil/imgutils.c)
# for no pixel format, which wants 8 x (width + 128) x (height + 128) < INT_MAX, and drops a size
# that fails: 16384x16128 opens, 16384x16130 does not (measured with the rawvideo encoder).
FFMPEG_MAX_PADDED_AREA = (2**31 - 1) // 8


def size_problem(encoder: str, width: int, height: int, name: str = "") -> str | None:
    """Why `encoder` (called `name` in the message) cannot take a WxH picture, or None if it can,
    as far as is known here."""
    name = name or encoder
    if width < 1 or height < 1 or (width + 128) * (height + 128) > FFMPEG_MAX_PADDED_AREA:
        return "FFmpeg's encoders take (W+128) x (H+128) < 2^28 at most, about 16250x16250"
    limits = ENCODER_SIZE_LIMITS.get(encoder)
    if limits is None:
        return None
    if min(width, height) < limits.min_side:
        return f"{name} takes at least {limits.min_side} on a side"
    too_wide = limits.max_width is not None and width > limits.max_width
    too_high = limits.max_height is not None and height > limits.max_height
    if too_wide or too_high:
        if limits.max_width == limits.max_height:
            return f"{name} takes at most {limits.max_width} on a side"
        return f"{name} takes at most {limits.max_width} wide and {limits.max_height} high"
    if limits.max_area is not None and width * height > limits.max_area:
        return f"{name} takes at most {limits.max_area:,} pixels"
    if limits.narrow is not None and min(width, height) < limits.narrow[0] and max(width, height) > limits.narrow[1]:
        short, long = limits.narrow
        return f"{name} takes at most {long} on one side when the other is under {short}"
    return None


def check_output_size(source: Path, settings: EncoderSettings, width: int, height: int) -> None:
    """Refuse, before any work, an output size the encoder would refuse after the first segment."""
    spec = settings.spec
    problem = size_problem(spec.encoder, width, height, settings.codec)
    if problem is None and spec.encoder.endswith("_nvenc"):
        # NVENC's limits depend on the GPU (NVIDIA's NVENC application note: 4096 on a side for
        # H.264 on older ones, 8192 for HEVC and AV1): ask the one that is here.
        try:
            _open_encoder(spec.encoder, settings.resolved().pix_fmt, width, height)
        except av.FFmpegError as exc:
            problem = f"{spec.encoder} does not open at that size on this GPU ({exc})"
    if problem is None:
        return
    limits = ENCODER_SIZE_LIMITS.get(spec.encoder, SizeLimits())
    narrow = limits.narrow is not None and min(width, height) < limits.narrow[0]
    larger = min(width, height) < limits.min_side or narrow
    others = [name for name, codec in CODECS.items() if name != settings.codec and not name.startswith("nvenc")]
    fitting = [name for name in others if size_problem(CODECS[name].encoder, width, height) is None]
    hints = [f"a preset or --model with a {'larger' if larger else 'smaller'} scale"]
    hints += [f"--codec {' or '.join(fitting)}"] if fitting else []
    raise UsageError(f"{source}: the output would be {width}x{height}; {problem} (choose {', or '.join(hints)})")


@dataclass(frozen=True)
class OutputColour:
    """Tags written into the stream (FFmpeg's AVCOL_* values); the range is always limited."""

    matrix: str  # bt601, bt709 or bt2020nc: what the planes were made with
    colorspace: int
    color_primaries: int
    color_trc: int
    color_range: int = 1  # AVCOL_RANGE_MPEG


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    sar: Fraction
    time_base: Fraction
    rate: Fraction  # a hint for rate control; frames keep their own pts, so VFR stays VFR


_NO_DTS = -(1 << 62)
# AVFieldOrder (libavcodec/defs.h): every frame remaster writes is a whole picture. Deinterlaced
# and inverse-telecined frames are progressive, and so is an interlaced frame passed through with
# --fields progressive once scaled: its rows no longer alternate between the two fields.
AV_FIELD_PROGRESSIVE = 1


class SegmentWriter:
    """Writes one segment: an MKV with a single video stream, starting with a keyframe."""

    def __init__(self, path: Path, settings: EncoderSettings, video: VideoFormat, colour: OutputColour):
        settings = settings.resolved()
        self.spec = settings.spec
        self.pix_fmt = settings.pix_fmt
        self.time_base = video.time_base
        self.container = av.open(str(path), "w", format="matroska")
        try:
            stream = self.container.add_stream(self.spec.encoder, rate=video.rate)
            stream.width, stream.height = video.width, video.height
            stream.pix_fmt = self.pix_fmt
            stream.time_base = video.time_base
            ctx = stream.codec_context
            ctx.time_base = video.time_base
            ctx.sample_aspect_ratio = video.sar
            ctx.colorspace, ctx.color_primaries = colour.colorspace, colour.color_primaries
            ctx.color_trc, ctx.color_range = colour.color_trc, colour.color_range
            # x264 tags its streams progressive by itself; x265 and SVT-AV1 leave it unknown.
            ctx.field_order = AV_FIELD_PROGRESSIVE
            stream.options = threaded_options(settings, encoder_threads())
            stream.thread_type = "AUTO"
            try:
                stream.codec_context.open()
            finally:
                normal_scheduling()  # SVT-AV1 opened as root makes the thread real-time (core/scheduling.py)
        except av.FFmpegError as exc:
            self.container.close()
            # check_encoder has opened it with these settings before work: this is a failure while
            # working (memory, an NVENC session limit), not bad input.
            raise RemasterError(f"cannot open the {self.spec.encoder} encoder: {exc.strerror or exc}") from None
        self.stream = stream
        self.width, self.height = video.width, video.height
        self._last_dts = _NO_DTS

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, pts: int) -> None:
        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        fill_frame(frame, y, u, v)
        frame.pts = pts
        frame.time_base = self.time_base
        self._mux(self.stream.encode(frame))

    def close(self) -> None:
        self._mux(self.stream.encode(None))  # flush the frames the encoder holds back
        self.container.close()

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            # x265 gives garbage dts (around -2^35) when a segment has fewer frames than its
            # B-frame delay. Matroska stores no dts (concat.py rebuilds them), but the muxer
            # still checks them: give such a packet any dts that is increasing and <= its pts.
            dts = packet.dts
            if dts is None or not packet.pts - (1 << 30) < dts <= packet.pts or dts <= self._last_dts:
                packet.dts = packet.pts if self._last_dts == _NO_DTS else min(packet.pts, self._last_dts + 1)
            self._last_dts = packet.dts
            self.container.mux(packet)

    def abort(self) -> None:
        self.container.close()


def fill_frame(frame: av.VideoFrame, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Copy planes into a frame's buffers, whose rows are padded to line_size."""
    name = frame.format.name
    bits = SEMI_PLANAR.get(name)
    if bits is not None:
        dtype = sample_dtype(bits)
        # P010 keeps its 10 bits in the high end of each 16-bit word.
        shift = 16 - bits if bits > 8 else 0
        uv = np.stack([u, v], axis=-1).reshape(u.shape[0], -1)
        sources = [y, uv]
    else:
        dtype = sample_dtype(pix_fmt_layout(name)[1])
        shift = 0
        sources = [y, u, v]
    for plane, data in zip(frame.planes, sources, strict=True):
        rows = plane_view(plane, dtype)
        width = data.shape[1]
        if shift:  # straight into the frame's buffer: no shifted copy first
            np.left_shift(data, shift, out=rows[:, :width], casting="unsafe")
        else:
            rows[:, :width] = data
