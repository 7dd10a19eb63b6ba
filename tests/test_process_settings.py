"""Process-wide settings (malloc, environment, signals) are applied by cli.main, never by constructing
an TorchUpscaler or a SegmentWriter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# The child measures glibc's malloc itself: a 64 MB malloc is served by mmap (mallinfo2's hblkhd,
# bytes in mmapped chunks, grows by it) unless mallopt(M_MMAP_MAX, 0) was applied. 64 MB is above
# glibc's largest dynamic mmap threshold (32 MB on 64-bit: DEFAULT_MMAP_THRESHOLD_MAX), so nothing
# but that setting keeps it off mmap.
CHILD = textwrap.dedent(
    """
    import ctypes, json, os, signal, sys
    from fractions import Fraction

    from remaster.core import process_settings
    from remaster.cli import main
    from remaster.engines.settings import EngineSettings
    from remaster.engines.torch_engine.upscaler import TorchUpscaler
    from remaster.models.loader import load_model
    from remaster.video.encode import EncoderSettings, OutputColour, SegmentWriter, VideoFormat

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def large_malloc_is_mmapped():
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(64 << 20)
        grew = libc.mallinfo2().hblkhd - before
        libc.free(block)
        return grew >= 64 << 20

    def state():
        return {
            "environ": dict(os.environ),
            "mmapped": large_malloc_is_mmapped(),
            "sigterm_default": signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,
            "applied": sorted(process_settings.APPLIED),
        }

    before = state()
    TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "0"))
    video = VideoFormat(64, 64, Fraction(1), Fraction(1, 1000), Fraction(25))
    SegmentWriter(sys.argv[1], EncoderSettings("svtav1", 30, "12"), video, OutputColour("bt709", 1, 1, 1)).abort()
    constructed = state()
    assert main(["presets"]) == 0
    print(json.dumps({"before": before, "constructed": constructed, "after_main": state()}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures glibc's malloc")
def test_constructors_leave_the_process_alone_and_cli_main_applies_the_settings(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "SVT_LOG"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "segment.mkv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    states = json.loads(child.stdout.strip().splitlines()[-1])
    before, constructed, after = states["before"], states["constructed"], states["after_main"]
    assert before["mmapped"] and before["sigterm_default"] and before["applied"] == []
    # Constructing an TorchUpscaler on the CPU used to call mallopt, and a SVT-AV1 SegmentWriter to set SVT_LOG.
    assert constructed["environ"] == before["environ"]
    assert constructed["mmapped"], "constructing an TorchUpscaler or a SegmentWriter changed glibc's malloc"
    assert constructed["sigterm_default"] and constructed["applied"] == []
    # cli.main applies them all, once.
    assert after["applied"] == ["environment", "malloc", "pictures", "signals"]
    assert not after["mmapped"]
    assert after["environ"] == {**before["environ"], "SVT_LOG": "1"}
    assert not after["sigterm_default"]
