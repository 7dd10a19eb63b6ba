"""An encoder that refuses its settings is bad input found before work (exit 2); an encoder that
fails while working, its settings already accepted, is a failure while working (exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode

# A child opens SVT-AV1 once at a small size (its settings are good, and every module is loaded),
# then limits its address space to what it has plus HEADROOM_MB and opens it for a 1080p
# segment. SVT-AV1 allocates its picture buffers when it opens: 4, 32 and 64 MB of headroom
# all failed with ENOMEM here, so 32 leaves room for Python and still fails for the encoder.
HEADROOM_MB = 32
CHILD = textwrap.dedent(
    """
    import resource, sys
    from fractions import Fraction
    from remaster.core.errors import describe_failure
    from remaster.video.encode import EncoderSettings, OutputColour, SegmentWriter, VideoFormat, check_encoder

    settings = EncoderSettings("svtav1", 30, "12")
    colour = OutputColour("bt709", 1, 1, 1)
    check_encoder(settings)
    small = VideoFormat(64, 64, Fraction(1), Fraction(1, 1000), Fraction(24))
    SegmentWriter(sys.argv[1] + ".small.mkv", settings, small, colour).abort()
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + (int(sys.argv[2]) << 20), resource.RLIM_INFINITY))
    full_hd = VideoFormat(1920, 1080, Fraction(1), Fraction(1, 1000), Fraction(24))
    try:
        SegmentWriter(sys.argv[1], settings, full_hd, colour).abort()
    except Exception as exc:
        error = describe_failure(exc)
        print(error.exit_code, error)
    else:
        print("opened")
    """
)


def test_an_encoder_that_fails_while_working_exits_1(tmp_path):
    env = {**os.environ, "SVT_LOG": "1"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "segment.mkv"), str(HEADROOM_MB)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    code, _, message = child.stdout.strip().partition(" ")
    assert message.startswith("cannot open the libsvtav1 encoder: "), child.stdout
    assert code == "1", child.stdout  # was 2: the settings were fine, the machine ran out of memory


def test_settings_the_encoder_refuses_are_bad_input_before_work(tmp_path, capsys):
    episode = make_episode(tmp_path / "episode.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, cover_image=False))
    out = tmp_path / "out"
    out.mkdir()
    # x265 takes --crf 0-51; this used to fail only when the first segment's encoder opened.
    assert main([str(episode), "-o", str(out / "x.mkv"), "--crf", "60", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--crf 60" in error and "libx265 refuses" in error, error
    assert list(out.iterdir()) == []  # no work folder, no segment: refused before any work
