from __future__ import annotations

import math

import numpy as np
import pytest

from remaster.testcard import anime_frame, photo_frame


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


# (content, height, width): odd and even sizes, cel-like and photo-like content.
PICTURES = [("anime", 45, 67), ("anime", 48, 64), ("photo", 51, 41), ("photo", 40, 56)]


def picture(kind: str, height: int, width: int, seed: int = 1) -> np.ndarray:
    return (anime_frame if kind == "anime" else photo_frame)(height, width, seed)


@pytest.fixture
def anime_small() -> np.ndarray:
    return anime_frame(45, 67, seed=3)
