from __future__ import annotations

import numpy as np

from remaster.bench import psnr  # noqa: F401  (re-exported for the tests)
from remaster.testcard import anime_frame, photo_frame


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


# (content, height, width): odd and even sizes, cel-like and photo-like content.
PICTURES = [("anime", 45, 67), ("anime", 48, 64), ("photo", 51, 41), ("photo", 40, 56)]


def picture(kind: str, height: int, width: int, seed: int = 1) -> np.ndarray:
    return (anime_frame if kind == "anime" else photo_frame)(height, width, seed)
