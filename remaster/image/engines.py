"""The engine for each picture: a prepared frame graph where its size has one, else the full engine.

A picture size that a packaged model has run at before, through OpenVINO's frame graph, with the
same options on this machine, runs without PyTorch (engines/openvino_engine/prepared.py): the
command then starts in about a second instead of two and a half. Every other picture goes to the
full engine (`make_upscaler`), built on first need, which records the sizes it runs whole for the
next command. With no record at all for the model and options the full engine is built before
the first picture, so that a model or option that cannot run stops the command at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from remaster.engines.openvino_engine.prepared import PreparedGraph, prepared_upscaler, recall, remember, run_key
from remaster.engines.settings import EngineSettings
from remaster.models.catalog import packaged_models

if TYPE_CHECKING:  # the full engine imports PyTorch: only where a picture needs it
    from remaster.engines.base import Upscaler


class PictureUpscaler(Protocol):
    name: str
    precision: str
    where: str

    def upscale(self, frames: np.ndarray) -> np.ndarray: ...


class PictureEngines:
    """Picks the engine for each picture's size (see the module docstring)."""

    def __init__(self, model: str, settings: EngineSettings):
        self.model = model
        self.settings = settings
        self.key = run_key(model, settings)
        self.records: dict[tuple[int, int], PreparedGraph] = recall(self.key) if self.key else {}
        self.prepared: dict[tuple[int, int], PictureUpscaler | None] = {}
        self.full: Upscaler | None = None
        self.last: PictureUpscaler | None = None  # the engine of the last picture, for the summary
        packaged = packaged_models().get(model)
        if packaged is not None and self.records:
            packaged.verify()  # as loading it would: files changed since are an error, not a stale graph
        else:
            self._full()

    @property
    def on_gpu(self) -> bool:
        return self.full is not None and self.full.device.type == "cuda"

    @property
    def label(self) -> str:
        """`2x-conservative, cpu openvino fp32`: the model, and where and how the last picture ran
        (the model alone where none ran: no engine is built for the summary)."""
        engine = self.last
        return self.model if engine is None else f"{engine.name}, {engine.where} {engine.precision}"

    def for_size(self, height: int, width: int) -> PictureUpscaler:
        """The engine for HxW pictures."""
        size = (height, width)
        if size not in self.prepared:
            record = self.records.get(size)
            self.prepared[size] = prepared_upscaler(record) if record is not None else None
        self.last = self.prepared[size] or self._full()
        return self.last

    def ran(self, height: int, width: int) -> None:
        """Record how the full engine ran HxW pictures (where it ran them whole as a frame graph)."""
        if self.key is None or self.full is None or self.last is not self.full:
            return
        record = self.full.prepared(height, width)
        if record is not None and self.records.get((height, width)) != record:
            remember(self.key, height, width, record)
            self.records[height, width] = record

    def _full(self) -> Upscaler:
        if self.full is None:
            from remaster.engines.choice import make_upscaler
            from remaster.models.loader import load_model

            self.full = make_upscaler(load_model(self.model), self.settings)
        return self.full
