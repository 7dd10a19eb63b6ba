"""Numpy views of the planes of PyAV frames, for reading decoded frames and filling new ones."""

from __future__ import annotations

import av
import numpy as np


def plane_view(plane: av.video.plane.VideoPlane, dtype: np.dtype | type) -> np.ndarray:
    """A writable height x (line_size / itemsize) view of a plane's buffer.

    Rows are padded to line_size bytes, and the buffer may be longer than height x line_size,
    so the row length must come from line_size, not from the buffer's size.
    """
    itemsize = np.dtype(dtype).itemsize
    flat = np.frombuffer(plane, dtype=dtype)
    return flat[: plane.height * plane.line_size // itemsize].reshape(plane.height, plane.line_size // itemsize)
