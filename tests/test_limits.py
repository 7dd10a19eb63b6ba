"""The picture-size limit: huge pictures and videos are refused from their header, in one line,
before anything is decoded, and the rest of a batch goes on."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import av
import numpy as np
import pytest
from videotools import h264_claiming

from remaster.cli import main
from remaster.core.errors import UsageError
from remaster.core.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels
from remaster.media.imagefiles import read_image, write_image
from remaster.media.testcard import anime_frame

FAST = ["--preset", "2x-conservative", "--device", "cpu", "--tile", "0"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flat_png(path, width: int, height: int) -> None:
    """A real, complete grey PNG of any size, written row by row: a flat picture compresses
    about 1000:1, so 20000x20000 is under 400 KB on disk and 400 MB decoded."""
    deflate = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then black pixels
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_in_one_line_and_the_rest_is_done(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    flat_png(folder / "bomb.png", 20000, 20000)
    assert (folder / "bomb.png").stat().st_size < 500_000
    write_image(folder / "small.png", anime_frame(30, 40, seed=1))
    out = tmp_path / "out"
    assert main(["image", str(folder), "-o", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    limit = f"{DEFAULT_MAX_PIXELS / 1e6:.3g}"
    assert f"bomb.png: 20000x20000 is 400 MP, more than the limit of {limit} MP (--max-pixels to raise it)" in err
    assert "Traceback" not in err and "DecompressionBomb" not in err
    assert "1 upscaled, 1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["small.png"]


def test_the_limit_comes_from_the_option_then_the_environment(tmp_path, capsys, monkeypatch):
    picture = tmp_path / "a.png"
    write_image(picture, anime_frame(48, 64, seed=2))  # 3072 pixels
    assert main(["image", str(picture), "-o", str(tmp_path / "b.png"), "--max-pixels", "3071", *FAST]) == 2
    assert "a.png: 64x48 is 0.00307 MP, more than the limit of 0.00307 MP" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()

    monkeypatch.setenv(MAX_PIXELS_ENV, "64x47")
    assert max_pixels() == 64 * 47
    assert main(["image", str(picture), "-o", str(tmp_path / "b.png"), *FAST]) == 2
    # The option wins over the environment; exactly the limit is allowed.
    assert main(["image", str(picture), "-o", str(tmp_path / "b.png"), "--max-pixels", "64x48", *FAST]) == 0
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")  # 0: no limit
    assert main(["image", str(picture), "-o", str(tmp_path / "c.png"), *FAST]) == 0
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(UsageError, match=f"\\${MAX_PIXELS_ENV}: want pixels"):
        max_pixels()


def test_a_16_bit_png_is_checked_before_pyav_decodes_it(tmp_path):
    deep = tmp_path / "deep.png"
    pixels = (np.arange(40 * 30 * 3, dtype=np.uint16).reshape(30, 40, 3) * 50).astype(np.uint16)
    write_image(deep, pixels)
    assert np.array_equal(read_image(deep), pixels)  # it is read as 16-bit, through PyAV
    with pytest.raises(UsageError, match="deep.png: 40x30 is 0.0012 MP, more than the limit of 0.001 MP"):
        read_image(deep, max_pixels=1000)


def test_a_huge_video_is_refused_before_any_work(tmp_path):
    source = tmp_path / "huge.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = 6000
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.full((6000, 6000, 3), 90, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    output = tmp_path / "out.mkv"
    # The old code spent minutes and 9.7 GB on this frame: a timeout is a failure here.
    run = subprocess.run(
        [sys.executable, "-m", "remaster", str(source), "-o", str(output), "--device", "cpu", "--tile", "256"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    limit = f"{DEFAULT_MAX_PIXELS / 1e6:.3g}"
    assert run.stderr.strip() == (
        f"remaster: error: {source}: 6000x6000 is 36 MP, more than the limit of {limit} MP (--max-pixels to raise it)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.mkv"]  # no output, no work folder


def test_max_pixels_option_of_the_video_command(tmp_path, capsys):
    source = tmp_path / "clip.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        frame = av.VideoFrame.from_ndarray(anime_frame(64, 96, seed=3), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    assert main(["video", str(source), "-o", str(tmp_path / "out.mkv"), "--max-pixels", "6000", *FAST]) == 2
    assert "clip.mkv: 96x64 is 0.00614 MP, more than the limit of 0.006 MP" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


# What the refused picture may add to the process's own peak. The process itself, torch imported,
# is the baseline, measured in the test by the same refusal of a 64x48 header (`--max-pixels 1000`):
# 372 MiB with the CPU build of torch, about 520 MiB with PyPI's CUDA build, whose libraries map
# more. A 16000x16000 frame decoded is 366 MiB of 4:2:0 planes, 8192x8192 96 MiB: either shows.
REFUSAL_EXTRA_MIB = 32


# Runs a command and prints its exit code and peak memory (kB). A child's peak is counted from the
# process it was forked from, whose memory it starts with (Linux keeps the old hiwater mark across
# exec): forked from pytest, grown to gigabytes by other tests, it would measure pytest. This small
# process in between is what the command is forked from.
_PEAK_OF = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


@pytest.mark.slow
@pytest.mark.parametrize("side", [16000, 8192])
def test_a_header_claiming_a_huge_picture_is_refused_before_decoding(tmp_path, side):
    # An 800-byte file: decoding its one frame used to cost 1.4 GiB (16000) and 817 MiB (8192)
    # before the refusal, which came only after the probe had decoded it.
    (tmp_path / "small").mkdir()
    small = h264_claiming(tmp_path / "small" / "claims.mkv", 64, 48)
    source = h264_claiming(tmp_path / "claims.mkv", side, side)
    assert source.stat().st_size < 1000

    def refused(path, *options: str) -> int:
        command = [sys.executable, "-m", "remaster", str(path), "-o", str(path.with_name("out.mkv")), *options]
        run = subprocess.run([sys.executable, "-c", _PEAK_OF, *command], capture_output=True, text=True)
        code, peak_kb = map(int, run.stdout.split())
        assert code == 2, run.stderr
        assert run.stderr.strip().splitlines()[-1].startswith(f"remaster: error: {path}: "), run.stderr
        return peak_kb // 1024

    baseline = refused(small, "--max-pixels", "1000")
    peak = refused(source)
    assert peak - baseline <= REFUSAL_EXTRA_MIB, f"peak {peak} MiB against {baseline} MiB for a 64x48 header"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.mkv", "small"]
