"""8- and 16-bit RGB(A) pictures to the float R'G'B' a network reads, and its output back, in host memory.

What `Upscaler.upscale` does around the network for frames in host memory on a CPU, and what a
graph runs between without PyTorch (engines/openvino_engine/prepared.py): one implementation, so
that both give the same bytes. An alpha channel goes through the network too, as a grey picture
(three equal channels after the colour frames), so that its edges stay as sharp as the colour's;
its output is the mean of the three.
"""

from __future__ import annotations

import numpy as np

MAX_VALUE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def max_value(frames: np.ndarray) -> int:
    """The largest value of the frames' type; a ValueError for anything but N x H x W x 3|4 uint8/uint16."""
    peak = MAX_VALUE.get(frames.dtype)
    if peak is None or frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"want N x H x W x 3|4 uint8 or uint16 frames, got {frames.shape} {frames.dtype}")
    return peak


def to_network(frames: np.ndarray) -> np.ndarray:
    """N x H x W x C frames -> N (or 2N with alpha) x 3 x H x W float32 in [0, 1].

    A view in NCHW order over NHWC memory (channels last, as the CPU engines want it)."""
    peak = max_value(frames)
    n, h, w, c = frames.shape
    rgb = frames.astype(np.float32) / np.float32(peak)
    if c == 4:
        grey = np.repeat(rgb[..., 3:4], 3, axis=-1)
        rgb = np.concatenate([rgb[..., :3], grey])
    return rgb.transpose(0, 3, 1, 2)


def from_network(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The network's float32 output for `to_network(like)` -> N x sH x sW x C frames of `like`'s type.

    Rounded half up, as the ncnn runner and upcunet_v3.py's (x * 255).round() do for values >= 0."""
    peak = max_value(like)
    n, c = like.shape[0], like.shape[-1]
    if c == 4:
        y = np.concatenate([y[:n], y[n:].mean(axis=1, keepdims=True, dtype=np.float32)], axis=1)
    out = np.floor(y * np.float32(peak) + np.float32(0.5))
    np.clip(out, 0, peak, out=out)
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1)).astype(like.dtype)
