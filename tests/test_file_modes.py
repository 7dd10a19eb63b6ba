"""Files remaster writes get the mode any tool's new file gets: 0666 less the umask, although they
are written to a private temporary file (mkstemp: 0600) and renamed into place."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from remaster.media.imagefiles import write_image
from remaster.media.testcard import anime_frame


def _run_with_umask(umask: int, argv: list[str]) -> None:
    # The umask is set in the child alone: this test process's own stays as it was.
    run = subprocess.run(
        [sys.executable, "-m", "remaster", *argv], capture_output=True, text=True, preexec_fn=lambda: os.umask(umask)
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_image_outputs_follow_the_umask(tmp_path, umask, mode):
    source = tmp_path / "a.png"
    write_image(source, anime_frame(30, 40, seed=1))
    out = tmp_path / "out"
    out.mkdir()
    _run_with_umask(umask, ["image", str(source), "-o", str(out / "a.png"), "--device", "cpu", "--tile", "0"])
    _run_with_umask(umask, ["testcard", str(out / "card.png"), "--size", "64x48"])
    for name in ("a.png", "card.png"):
        assert stat.S_IMODE((out / name).stat().st_mode) == mode, name
