"""Helpers for the video tests: reading files back independently of the pipeline's own code.

The exact decoder here is written from ITU-R BT.601/BT.709 directly in numpy, so that the
pipeline's colour conversion is checked against something other than itself (and not against
swscale's default path, which is 1-2 levels off; DESIGN.md section 6).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

# A test command started in the background (`nohup pytest ... &`, a CI runner) and every child it
# starts inherit an ignored SIGINT, and Python keeps it ignored. A child that a test stops with
# Ctrl-C's signal restores Python's own handling itself, first thing.
_CTRL_C_CHILD = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['remaster', *sys.argv[1:]]; runpy.run_module('remaster', run_name='__main__')"
)


def interruptible_remaster(*args: str) -> list[str]:
    """The command line of `python -m remaster ARGS` in a child that Ctrl-C's signal stops."""
    return [sys.executable, "-c", _CTRL_C_CHILD, *args]


KR_KB = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114)}  # AVCOL_SPC -> (Kr, Kb)


def video_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [p for p in container.demux(stream) if p.size]


def frame_times(path: Path) -> list[float]:
    """Every frame's time in seconds, from a packet scan, in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        return sorted(float(p.pts * tb) for p in container.demux(stream) if p.size)


def stream_payloads(path: Path) -> dict[int, list[tuple[float | None, bytes]]]:
    """For each non-video stream: (time, bytes) of every packet, in file order."""
    found: dict[int, list] = {}
    with av.open(str(path)) as container:
        kinds = {s.index: s.type for s in container.streams}
        for packet in container.demux():
            if packet.size and kinds[packet.stream.index] in ("audio", "subtitle"):
                t = None if packet.pts is None else round(float(packet.pts * packet.time_base), 6)
                found.setdefault(packet.stream.index, []).append((t, bytes(packet)))
    return found


def exact_rgb_frames(path: Path) -> list[np.ndarray]:
    """Decode to float R'G'B' (0-255 scale) with the stream's own matrix, range and depth;
    chroma is repeated (nearest), which is exact for the flat areas the tests measure."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            name = frame.format.name
            bits = 10 if "10" in name else 8
            dtype = np.uint8 if bits == 8 else np.dtype("<u2")
            planes = []
            for plane in frame.planes:
                rows = np.frombuffer(plane, dtype=dtype)[
                    : plane.height * plane.line_size // np.dtype(dtype).itemsize
                ].reshape(plane.height, -1)[:, : plane.width]
                planes.append(rows.astype(np.float64))
            y, u, v = planes
            h, w = y.shape
            sy, sx = h // u.shape[0], w // u.shape[1]
            u = np.repeat(np.repeat(u, sy, axis=0), sx, axis=1)[:h, :w]
            v = np.repeat(np.repeat(v, sy, axis=0), sx, axis=1)[:h, :w]
            k = 2 ** (bits - 8)
            luma, cb, cr = (y - 16 * k) / (219 * k), (u - 128 * k) / (224 * k), (v - 128 * k) / (224 * k)
            kr, kb = KR_KB.get(frame.colorspace, KR_KB[1] if h > 576 else KR_KB[6])
            kg = 1 - kr - kb
            r = luma + 2 * (1 - kr) * cr
            b = luma + 2 * (1 - kb) * cb
            g = (luma - kr * r - kb * b) / kg
            frames.append(np.clip(np.stack([r, g, b], axis=-1), 0, 1) * 255)
    return frames


def area_downscale(picture: np.ndarray, factor: int) -> np.ndarray:
    h, w = picture.shape[0] // factor, picture.shape[1] // factor
    return picture[: h * factor, : w * factor].reshape(h, factor, w, factor, -1).mean(axis=(1, 3))


def flat_mask(picture: np.ndarray, radius: int = 2, tolerance: float = 1.0) -> np.ndarray:
    """Pixels whose neighbourhood is one flat colour: where a colour shift shows, away from edges."""
    h, w, _ = picture.shape
    padded = np.pad(picture, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    lo = np.full(picture.shape, np.inf)
    hi = np.full(picture.shape, -np.inf)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            window = padded[dy : dy + h, dx : dx + w]
            lo, hi = np.minimum(lo, window), np.maximum(hi, window)
    return ((hi - lo) <= tolerance).all(axis=-1)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


class _Bits:
    """An H.264 RBSP written bit by bit (ITU-T H.264 7.2: u(n), ue(v), se(v))."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> _Bits:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> _Bits:
        value += 1
        return self.u(value.bit_length() - 1, 0).u(value.bit_length(), value)

    def se(self, value: int) -> _Bits:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, header: int) -> bytes:
        """With its stop bit, its emulation prevention bytes (7.4.1) and an Annex B start code."""
        bits = self.bits + [1] + [0] * (-(len(self.bits) + 1) % 8)
        payload, zeros = bytearray(), 0
        for i in range(0, len(bits), 8):
            byte = int("".join(map(str, bits[i : i + 8])), 2)
            if zeros >= 2 and byte <= 3:
                payload.append(3)
                zeros = 0
            payload.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return b"\x00\x00\x00\x01" + bytes([header]) + bytes(payload)


def h264_claiming(path: Path, width: int, height: int) -> Path:
    """A Matroska file of a few hundred bytes whose H.264 stream claims width x height (multiples of
    16): a Baseline SPS and PPS written here, and one IDR slice with a valid header and junk macroblocks,
    which a decoder starts on by allocating the whole picture."""
    sps = _Bits().u(8, 66).u(8, 0).u(8, 52).ue(0).ue(0).ue(2).ue(1).u(1, 0)  # profile, level, id, frame_num, POC 2
    sps.ue(width // 16 - 1).ue(height // 16 - 1).u(1, 1).u(1, 1).u(1, 0).u(1, 0)  # frames only, no crop, no VUI
    pps = _Bits().ue(0).ue(0).u(1, 0).u(1, 0).ue(0).ue(0).ue(0).u(1, 0).u(2, 0)  # CAVLC, one slice group
    pps.se(0).se(0).se(0).u(1, 1).u(1, 0).u(1, 0)  # QP offsets 0, deblocking control present
    # first_mb 0, I slice, PPS 0, frame_num 0, idr_pic_id 0, no_output_of_prior/long_term 0, qp delta 0, no deblocking
    idr = _Bits().ue(0).ue(7).ue(0).u(4, 0).ue(0).u(1, 0).u(1, 0).se(0).ue(1)
    annex_b = path.with_suffix(".h264")
    annex_b.write_bytes(sps.nal(0x67) + pps.nal(0x68) + idr.nal(0x65) + bytes(range(1, 200)))
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "h264", "-i", str(annex_b), "-c", "copy", str(path)], check=True)
    annex_b.unlink()
    return path
