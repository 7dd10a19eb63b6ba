"""Where tile states wait on a GPU run: on the device with one tile, on the host with several. The
choice and the count of moves run on a CPU; `meta` tensors stand in for a second device."""

from __future__ import annotations

import pytest
import torch

from remaster.engines.settings import EngineSettings
from remaster.engines.tiling.states import TileStates
from remaster.engines.torch_engine.upscaler import TorchUpscaler, state_device
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model


def test_one_tile_keeps_its_states_on_the_device_several_go_to_the_host():
    gpu = torch.device("cuda", 0)  # a device object only: nothing runs on it
    assert state_device(gpu, 1) == gpu
    assert state_device(gpu, 4) == torch.device("cpu")
    assert state_device(torch.device("cpu"), 1) == torch.device("cpu")


def test_the_store_counts_each_tensor_that_changes_device():
    state = {"a": torch.ones(2, 3), "b": torch.zeros(4)}
    elsewhere = TileStates(torch.device("meta"))
    elsewhere.put(0, state)  # host -> meta: two tensors moved
    assert elsewhere.moves == 2
    taken = elsewhere.take(0, torch.device("meta"))  # taken where they wait: no move
    assert elsewhere.moves == 2 and all(t.device.type == "meta" for t in taken.values())
    here = TileStates(torch.device("cpu"))
    here.put(0, state)
    here.take(0, torch.device("cpu"))
    assert here.moves == 0


def test_a_whole_frame_run_keeps_its_states_and_moves_none():
    """On a CPU the engine's device is the host: the states' place is checked against the rule,
    but states sent to the host whatever the tiles would pass here too. The CUDA test below is the
    one that tells the two apart."""
    whole = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "0"))
    whole.upscale(anime_frame(72, 136, seed=3)[None])
    assert whole.tiles_run == 1 and whole.states_device == state_device(whole.device, 1)
    assert whole.state_moves == 0 and whole.kept_state_bytes > 0  # states were kept, where they were made


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: on a CPU the device is the host")
def test_on_cuda_one_tile_keeps_states_on_the_gpu_and_several_send_them_to_the_host():
    frame = anime_frame(72, 136, seed=3)[None]
    whole = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cuda", "fp32", "0"))
    whole.upscale(frame)
    assert whole.tiles_run == 1 and whole.states_device.type == "cuda"
    assert whole.state_moves == 0 and whole.kept_state_bytes > 0
    tiled = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cuda", "fp32", "64"))
    tiled.upscale(frame)
    assert tiled.tiles_run > 1 and tiled.states_device == torch.device("cpu")
    assert tiled.state_moves > 0  # every state went to the host and came back
