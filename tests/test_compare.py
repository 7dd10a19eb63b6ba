"""`remaster compare`: the announcement's sheet by default (its panels' labels and pixels), the grid's
size and order for given presets, the crops it picks, pictures as input, refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from remaster.cli import main
from remaster.commands import compare as compare_command
from remaster.commands.options import engine_settings
from remaster.compare.grid import (
    ANNOUNCEMENT,
    BACKGROUND,
    LABEL_HEIGHT,
    LEFT_OUT,
    MARGIN,
    MAX_THUMB_WIDTH,
    compare,
    most_detailed,
    read_frame,
    to_uint8,
)
from remaster.core.errors import UsageError
from remaster.core.presets import get_preset
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model

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


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    compare_command.register(parser.add_subparsers())
    return parser.parse_args(["compare", *argv])


def label_pixels(sheet: np.ndarray, left: int, top: int, width: int) -> int:
    """Pixels of text in the label band above a panel whose top-left corner is (left, top)."""
    band = sheet[top - LABEL_HEIGHT : top, left : left + width]
    return int((band != BACKGROUND).any(axis=-1).sum())


def test_default_sheet_is_the_announcements_comparison(episode: Path, tmp_path: Path):
    """No --presets: bicubic, waifu2x, Real-ESRGAN and Real-CUGAN at 2x, each labelled with its
    family and preset; every crop panel holds exactly that upscaler's output of the video frame
    there, enlarged by pixel repetition."""
    args = parse([str(episode), "--at", "0.5", "--crop", "32x24", "-o", str(tmp_path / "sheet.png")])
    report = compare(episode, args.output, args.at, crop_size=args.crop, engine=engine_settings(args))
    families = ["bicubic", "waifu2x", "Real-ESRGAN", "Real-CUGAN"]
    assert [(p.family, p.preset) for p in report.panels if p.part == "whole"] == list(
        zip(families, ("", *ANNOUNCEMENT[2]), strict=True)
    )
    assert report.notes == [] and len(report.crops) == 2  # two detail-rich places, not overlapping
    (x1, y1, w, h), (x2, y2, _, _) = report.crops
    assert (w, h) == (32, 24) and (abs(x1 - x2) >= w or abs(y1 - y2) >= h)
    sheet = np.asarray(Image.open(report.output).convert("RGB"))
    assert sheet.shape[:2] == report.size[::-1]

    rgb, _ = read_frame(episode, 0.5)
    frame = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    bicubic = Image.fromarray(to_uint8(rgb)).resize((2 * WIDTH, 2 * HEIGHT), Image.Resampling.BICUBIC)
    expected = {"": np.asarray(bicubic)}
    for name in ANNOUNCEMENT[2]:
        upscaler = TorchUpscaler(load_model(get_preset(name).model), engine_settings(args))
        expected[name] = to_uint8(upscaler.upscale_rgb(frame)[0].float().permute(1, 2, 0).numpy())
    for panel in report.panels:
        left, top, pw, ph = panel.box
        assert panel.label.startswith(panel.family) and panel.preset in panel.label
        assert label_pixels(sheet, left, top, pw) > 100  # its label is written above it
        if panel.part == "whole":
            continue
        x, y, w, h = report.crops[int(panel.part.removeprefix("crop ")) - 1]
        zoom = pw // (2 * w)
        region = expected[panel.preset][2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]
        shown = np.repeat(np.repeat(region, zoom, axis=0), zoom, axis=1)
        np.testing.assert_array_equal(sheet[top : top + ph, left : left + pw], shown, err_msg=panel.label)
    # The three models differ from one another and from bicubic.
    pictures = list(expected.values())
    assert min(float(np.abs(a.astype(int) - b).mean()) for i, a in enumerate(pictures) for b in pictures[i + 1 :]) > 0.3


def test_at_4x_waifu2x_is_left_out_with_a_note(tmp_path: Path, capsys):
    picture = tmp_path / "frame.png"
    Image.fromarray(anime_frame(36, 48, seed=2)).save(picture)
    output = tmp_path / "sheet.png"
    assert main(["compare", str(picture), "--scale", "4", "--crops", "1", "--device", "cpu", "-o", str(output)]) == 0
    assert f"note: {LEFT_OUT[4]}" in capsys.readouterr().out
    sheet = np.asarray(Image.open(output).convert("RGB"))
    columns = 3  # bicubic, Real-ESRGAN, Real-CUGAN
    assert sheet.shape[1] == columns * 4 * 48 + (columns + 1) * MARGIN
    # The last band is the note's line, with text in it.
    assert int((sheet[-LABEL_HEIGHT:] != BACKGROUND).any(axis=-1).sum()) > 100


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scale", "5"], "--scale 5: the comparison is at 2, 3, 4"),
        (["--scale", "3", "--presets", "2x-conservative"], "leave it out with --presets"),
        (["--crops", "0"], "--crops 0: want 1 to 4"),
        (["--presets", "2x-conservative,9x-magic"], "unknown preset"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, capsys, options, message):
    picture = tmp_path / "frame.png"
    Image.fromarray(anime_frame(36, 48, seed=2)).save(picture)
    assert main(["compare", str(picture), "-o", str(tmp_path / "sheet.png"), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "sheet.png").exists()


def test_grid_layout_labels_and_order(episode: Path, tmp_path: Path):
    """Two 2x presets and one 4x on a 128x72 frame: every column is shown at 4x, so the
    whole-frame pictures are 512x288 and the default crop (64x36 source pixels) is enlarged 8x
    to 512x288; the grid is 4 columns of 512 with margins, two rows under label bands."""
    output = tmp_path / "grid.png"
    presets = ("2x-conservative", "2x-denoise3x", "4x-conservative")
    args = parse([str(episode), "--at", "0:00.5", "--presets", ",".join(presets), "--crops", "1", "-o", str(output)])
    assert compare_command.run(args) == 0
    grid = np.asarray(Image.open(output).convert("RGB"))
    columns, thumb_w, thumb_h = 1 + len(presets), 4 * WIDTH, 4 * HEIGHT
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


def test_most_detailed_finds_the_textures_without_overlap():
    grey = np.full((90, 160), 100.0)
    rng = np.random.default_rng(0)
    grey[40:60, 100:130] = rng.uniform(0, 255, (20, 30))
    grey[5:25, 10:40] = rng.uniform(0, 128, (20, 30))  # less contrast: second
    assert most_detailed(grey, 30, 20, 2) == [(100, 40), (10, 5)]
    # Windows as large as half the picture: after the first, none is left that does not overlap it.
    assert len(most_detailed(grey, 80, 45, 3)) <= 2


def test_picture_input_and_explicit_crop(tmp_path: Path):
    picture = tmp_path / "frame.png"
    Image.fromarray(anime_frame(48, 64, seed=3)).save(picture)
    report = compare(picture, tmp_path / "grid.png", presets=("2x-conservative",), crop_size=(16, 8), crop_at=(4, 6))
    # One 2x preset: thumbnails 128x96, the 16x8 crop shown at 2x, enlarged 4x to fit 128: 128x64.
    assert report.size == (2 * 128 + 3 * MARGIN, 3 * MARGIN + 2 * LABEL_HEIGHT + 96 + 64)
    assert report.crops == [(4, 6, 16, 8)] and report.frame_time is None
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
