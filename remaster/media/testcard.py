"""Synthetic pictures for the demo, the benchmarks and the tests (no binaries in the repo).

`anime_frame` imitates cel animation: flat fills, dark outlines, a gradient sky, a little
noise. `photo_frame` imitates a photograph: smooth shading with texture at every scale.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def anime_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array([90, 150, 230]) * (1 - rows) + np.array([220, 235, 250]) * rows).astype(np.float32)
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, int(height * 0.7), width, height], fill=(70, 140, 60), outline=(20, 30, 20))
    for _ in range(6):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(max(2, min(height, width) // 12), max(3, min(height, width) // 4)))
        colour = tuple(int(c) for c in rng.integers(40, 250, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(25, 20, 30), width=max(1, r // 10))
    for _ in range(4):
        pts = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        draw.line(pts, fill=(20, 20, 25), width=2)
    noise = rng.normal(0, 1.5, (height, width, 3))
    return np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).round().astype(np.uint8)


def photo_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for octave in range(1, 7):
        cells = 2**octave
        coarse = rng.random((cells + 1, cells + 1, 3)).astype(np.float32)
        layer = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        img += np.asarray(layer, dtype=np.float32) / 2**octave
    img = (img - img.min()) / (img.max() - img.min()) * 235 + 10
    return img.round().astype(np.uint8)
