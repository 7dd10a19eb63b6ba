"""`remaster compare`: the grid's size and order, its labels, the crop it picks, pictures as input."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from remaster.commands import compare as compare_command
from remaster.compare import (
    BACKGROUND,
    DEFAULT_PRESETS,
    LABEL_HEIGHT,
    MARGIN,
    MAX_THUMB_WIDTH,
    compare,
    most_detailed,
)
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.errors import UsageError
from remaster.testcard import anime_frame

WIDTH, HEIGHT = 128, 72


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    spec = EpisodeSpec(width=WIDTH, height=HEIGHT, seconds=1.0, audio=(), ass_subtitles=False, srt_subtitles=False)
    return make_episode(tmp_path_factory.mktemp("compare") / "episode.mkv", spec)


def has_blocks(cell: np.ndarray, block: int) -> bool:
    """Whether the picture is made of uniform block x block squares (pixel repetition)."""
    h, w = (cell.shape[0] // block) * block, (cell.shape[1] // block) * block
    squares = cell[:h, :w].reshape(h // block, block, w // block, block, 3)
    return bool((squares == squares[:, :1, :, :1]).all())


def test_grid_layout_labels_and_order(episode: Path, tmp_path: Path):
    """Default presets (two 2x, one 4x) on a 128x72 frame: every column is shown at 4x, so the
    whole-frame pictures are 512x288 and the default crop (64x36 source pixels) is enlarged 8x
    to 512x288; the grid is 4 columns of 512 with margins, two rows under label bands."""
    parser = argparse.ArgumentParser()
    compare_command.register(parser.add_subparsers())
    output = tmp_path / "grid.png"
    args = parser.parse_args(["compare", str(episode), "--at", "0:00.5", "-o", str(output)])
    assert compare_command.run(args) == 0
    grid = np.asarray(Image.open(output).convert("RGB"))
    columns, thumb_w, thumb_h = 1 + len(DEFAULT_PRESETS), 4 * WIDTH, 4 * HEIGHT
    assert thumb_w <= MAX_THUMB_WIDTH
    assert grid.shape == (3 * MARGIN + 2 * LABEL_HEIGHT + 2 * thumb_h, columns * thumb_w + (columns + 1) * MARGIN, 3)

    cell_top = MARGIN + LABEL_HEIGHT + thumb_h + MARGIN + LABEL_HEIGHT
    cells, labels = [], []
    for c in range(columns):
        left = MARGIN + c * (thumb_w + MARGIN)
        cells.append(grid[cell_top : cell_top + thumb_h, left : left + thumb_w].astype(np.int16))
        for top in (MARGIN, cell_top - LABEL_HEIGHT):
            band = grid[top : top + LABEL_HEIGHT, left : left + thumb_w]
            labels.append(int((band != BACKGROUND).any(axis=-1).sum()))
    assert min(labels) > 100  # every label band has text in it
    # Order: bicubic, then the presets as given. The 2x presets are repeated to 4x and the crop
    # enlarged 2x more, so their cells are made of 4x4 squares; bicubic and the 4x model's of 2x2.
    assert [has_blocks(cell, 4) for cell in cells] == [False, True, True, False]
    assert all(has_blocks(cell, 2) for cell in cells)
    differences = [float(np.abs(cells[0] - cell).mean()) for cell in cells[1:]]
    assert min(differences) > 2  # bicubic looks unlike any model
    assert float(np.abs(cells[1] - cells[2]).mean()) > 0.5  # conservative vs denoise3x
    print(f"grid {grid.shape[1]}x{grid.shape[0]}; mean difference of bicubic from the models: {differences}")


def test_most_detailed_finds_the_texture():
    grey = np.full((90, 160), 100.0)
    grey[40:60, 100:130] = np.random.default_rng(0).uniform(0, 255, (20, 30))
    assert most_detailed(grey, 30, 20) == (100, 40)


def test_picture_input_and_explicit_crop(tmp_path: Path):
    picture = tmp_path / "frame.png"
    Image.fromarray(anime_frame(48, 64, seed=3)).save(picture)
    report = compare(picture, tmp_path / "grid.png", presets=("2x-conservative",), crop_size=(16, 8), crop_at=(4, 6))
    # One 2x preset: thumbnails 128x96, the 16x8 crop shown at 2x, enlarged 4x to fit 128: 128x64.
    assert report.size == (2 * 128 + 3 * MARGIN, 3 * MARGIN + 2 * LABEL_HEIGHT + 96 + 64)
    assert report.crop == (4, 6, 16, 8) and report.frame_time is None
    assert Image.open(report.output).size == report.size


def test_refusals(episode: Path, tmp_path: Path):
    with pytest.raises(UsageError, match="needs --at"):
        compare(episode, tmp_path / "a.png")
    with pytest.raises(UsageError, match="frames run from 0 to"):
        compare(episode, tmp_path / "a.png", at=5.0, presets=("2x-conservative",))
    with pytest.raises(UsageError, match="unknown preset"):
        compare(episode, tmp_path / "a.png", at=0.0, presets=("9x-magic",))
    with pytest.raises(UsageError, match="--crop 500x10"):
        compare(episode, tmp_path / "a.png", at=0.0, presets=("2x-conservative",), crop_size=(500, 10))
    with pytest.raises(UsageError, match="--crop-at 200,0"):
        compare(episode, tmp_path / "a.png", at=0.0, presets=("2x-conservative",), crop_at=(200, 0))
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    with pytest.raises(UsageError, match="exists; add --overwrite"):
        compare(episode, taken, at=0.0)
    assert taken.read_bytes() == b"mine"
