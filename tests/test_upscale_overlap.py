"""A batch left running while the next is sent (the GPU's overlap of copies and model): the same
frames in the same order, one batch later, and none held back past a segment's end. On a CPU the
model has finished when it returns, so the stage is run with `overlap` given; CUDA takes 1 itself."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model
from remaster.video.colour import ColourSpec
from remaster.video.decode import DecodeStats, Planes
from remaster.video.plan import OutputFrame
from remaster.video.segments import Segment
from remaster.video.stages import Marked, SegmentEnd, SegmentStart, Upscaled, UpscaleStage


@pytest.fixture(scope="module")
def upscaler() -> TorchUpscaler:
    return TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "0"))


def _planes(pts: int, seed: int) -> Planes:
    y = anime_frame(48, 64, seed=seed).mean(axis=2).astype(np.uint8)
    chroma = np.full((24, 32), 128, np.uint8)
    return Planes(pts, y, chroma.copy(), chroma.copy(), 8, (1, 1), False)


FRAME = OutputFrame(128, 96, ColourSpec("bt601", False, 8, (1, 1)), "bt601", Fraction(1), False)
SEGMENT = Segment(0, (0, 1, 2, 3, 4, 5))
# Two segments' messages: computed and held frames, batches of 2, a part batch at each end.
MESSAGES = [
    SegmentStart(SEGMENT, 6),
    Marked(_planes(0, 1), False),
    Marked(_planes(1, 1), True),
    Marked(_planes(2, 2), False),
    Marked(_planes(3, 3), False),
    Marked(_planes(4, 4), False),
    Marked(_planes(5, 4), True),
    SegmentEnd(SEGMENT, DecodeStats()),
    SegmentStart(Segment(1, (6, 7)), 2),
    Marked(_planes(6, 5), False),
    SegmentEnd(Segment(1, (6, 7)), DecodeStats()),
]


def _run(stage: UpscaleStage) -> list[list]:
    """What each message fed gives back."""
    return [list(stage.feed(message)) for message in MESSAGES]


def test_a_running_batch_comes_out_one_batch_later_with_the_same_frames(upscaler):
    at_once = _run(UpscaleStage(upscaler, FRAME, batch=2))
    overlapped_stage = UpscaleStage(upscaler, FRAME, batch=2, overlap=1)
    overlapped = _run(overlapped_stage)
    assert UpscaleStage(upscaler, FRAME, batch=2).overlap == 0  # a CPU does not overlap by itself

    def batches(replies: list[list]) -> list[list[tuple[int, bytes]]]:
        upscaled = [m for reply in replies for m in reply if isinstance(m, Upscaled)]
        return [[(f.pts, f.y.tobytes()) for f in m.frames] for m in upscaled]

    assert batches(overlapped) == batches(at_once)  # the same frames, in the same order
    # Batch [0, 1, 2] comes out at once without overlap, and when [3, 4] is sent with it.
    assert [len(reply) for reply in at_once[:6]] == [1, 0, 0, 1, 0, 1]
    assert [len(reply) for reply in overlapped[:6]] == [1, 0, 0, 0, 0, 1]
    # A segment's end takes every running batch out before it: [3, 4] and then [5].
    end = overlapped[7]
    assert [type(m) for m in end] == [Upscaled, Upscaled, SegmentEnd]
    assert [f.pts for f in end[1].frames] == [5] and end[1].held == 1
    assert [type(m) for m in overlapped[10]] == [Upscaled, SegmentEnd]
    assert (overlapped_stage.computed, overlapped_stage.held) == (5, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: runs on one")
def test_cuda_overlaps_and_gives_the_frames_of_a_batch_at_once():
    gpu = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cuda", "fp32", "0"))
    overlapped, at_once = UpscaleStage(gpu, FRAME, batch=2), UpscaleStage(gpu, FRAME, batch=2, overlap=0)
    assert overlapped.overlap == 1
    # Each download held back on its stream (about 50 ms of GPU cycles), so that a result read
    # before its copy has written it would be an earlier batch's bytes or garbage.
    download = gpu.host_buffers.to_host

    def held_back(tensors):
        with torch.cuda.stream(gpu.host_buffers._download):
            torch.cuda._sleep(100_000_000)
        return download(tensors)

    gpu.host_buffers.to_host = held_back
    frames = [m for stage in (overlapped, at_once) for reply in _run(stage) for m in reply if isinstance(m, Upscaled)]
    half = len(frames) // 2
    for a, b in zip(frames[:half], frames[half:], strict=True):
        for x, y in zip(a.frames, b.frames, strict=True):
            assert x.pts == y.pts and np.array_equal(x.y, y.y) and np.array_equal(x.u, y.u)
