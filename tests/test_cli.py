import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from remaster.cli import main
from remaster.engines.device import cpu_bf16_pays
from remaster.media.imagefiles import read_image, write_image
from remaster.media.testcard import anime_frame

FAST = ["--preset", "2x-conservative", "--device", "cpu", "--tile", "0"]


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", anime_frame(30, 40, seed=1))
    Image.fromarray(anime_frame(32, 36, seed=2)).save(folder / "b.jpg", quality=90)
    Image.fromarray(anime_frame(34, 30, seed=3)).save(folder / "c.webp")
    return folder


def test_one_file_to_one_file(pictures, tmp_path):
    out = tmp_path / "a2x.png"
    assert main(["image", str(pictures / "a.png"), "-o", str(out), *FAST]) == 0
    assert read_image(out).shape == (60, 80, 3)


def test_default_output_is_beside_the_input(pictures):
    assert main(["image", str(pictures / "b.jpg"), *FAST]) == 0
    assert read_image(pictures / "b.2x-conservative.png").shape == (64, 72, 3)


def test_folder_to_folder_keeps_names(pictures, tmp_path):
    out = tmp_path / "out"
    assert main(["image", str(pictures), "-o", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    assert read_image(out / "c.png").shape == (68, 60, 3)


def test_bad_file_is_named_and_the_rest_still_done(pictures, tmp_path, capsys):
    (pictures / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (pictures / "notes.png").write_text("not a picture")
    out = tmp_path / "out"
    code = main(["image", str(pictures), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.png" in err and "notes.png" in err
    assert "3 upscaled, 2 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_output_equal_to_input_is_refused(pictures, capsys):
    before = (pictures / "a.png").read_bytes()
    assert main(["image", str(pictures / "a.png"), "-o", str(pictures / "a.png"), *FAST]) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert (pictures / "a.png").read_bytes() == before


def test_existing_output_needs_overwrite(pictures, tmp_path, capsys):
    out = tmp_path / "x.png"
    out.write_bytes(b"mine")
    assert main(["image", str(pictures / "a.png"), "-o", str(out), *FAST]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert main(["image", str(pictures / "a.png"), "-o", str(out), "--overwrite", *FAST]) == 0
    assert read_image(out).shape == (60, 80, 3)


def test_unknown_preset_points_at_the_list_not_every_name(pictures, capsys):
    # Nothing close to 8x-magic: one line that says where the names are (42 of them would bury it).
    assert main(["image", str(pictures / "a.png"), "--preset", "8x-magic"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "remaster: error: unknown preset '8x-magic'; `remaster presets` lists them"


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    src, out = tmp_path / "deep.png", tmp_path / "deep2x.png"
    ramp = np.linspace(0, 65535, 40 * 44 * 3).astype(np.uint16).reshape(40, 44, 3)
    write_image(src, ramp)
    assert read_image(src).dtype == np.uint16 and np.array_equal(read_image(src), ramp)
    assert main(["image", str(src), "-o", str(out), *FAST]) == 0
    result = read_image(out)
    assert result.dtype == np.uint16 and result.shape == (80, 88, 3)


def test_presets_lists_scale_variant_and_denoise(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("2x-conservative", "3x-pro-denoise3x", "4x-no-denoise"):
        assert name in out
    assert "conservative" in out and "pro" in out


def test_user_preset_folder_is_searched(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path))
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "my-show.toml").write_text('description = "mine"\n[model]\nname = "2x-denoise2x"\n')
    assert main(["presets", "--show", "my-show"]) == 0
    assert "2x-denoise2x" in capsys.readouterr().out


def test_bench_prints_a_table(capsys):
    assert main(["bench", "--size", "48x40", "--frames", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fp32" in out and "s/frame" in out
    assert f"on cpu ({torch.get_num_threads()} threads)" in " ".join(out.split())  # the title may wrap
    auto = "bf16 (auto)" if cpu_bf16_pays() else "fp32 (auto)"  # 2x-conservative takes bf16 where it pays
    assert auto in out and out.count("(auto)") == 1


def test_bench_takes_several_presets_and_names_their_families(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row a line
    presets = ["2x-waifu2x-art-no-denoise", "2x-esrgan-animevideo"]
    argv = ["bench", "--size", "32x24", "--frames", "1", "--device", "cpu"]
    assert main([*argv, "--preset", presets[0], "--preset", presets[1]]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "fp32" in line and "PSNR" not in line]
    assert [(row.split()[1], row.split()[3]) for row in rows] == [(presets[0], "waifu2x"), (presets[1], "Real-ESRGAN")]
    assert main([*argv, "--preset", presets[0], "--preset", "9x-magic"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nothing.png"
    run = subprocess.run(
        [sys.executable, "-m", "remaster", "image", str(missing), "-o", str(tmp_path / "o.png"), *FAST],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "nothing.png: no such file" in run.stderr
    assert not (tmp_path / "o.png").exists()
