"""The stages a frame passes through, as objects that pass typed messages.

    DecodeStage --SegmentStart/Decoded/SegmentEnd--> HeldDrawings --Marked--> UpscaleStage
          --Upscaled--> EncodeStage (a checkpoint per segment)

The decode stage is a source (an iterator of messages); each middle stage's `feed` takes one
message and returns the messages it lets through; the encode stage is a sink. None of them
knows about threads or queues: `run_stages` runs the source and the sink each in a thread of
its own and the middle stages in the calling thread (where the model runs), joined by bounded
queues, so that memory does not grow with the length of the video and the model never waits
for the encoder of the previous frame. A middle stage is tested by feeding it messages.
HeldDrawings runs on the source's side (`through`): its comparison is numpy work on the host
(about 60 ms a 1080p frame), which in the model's thread would hold back a fast GPU.

Fields (deinterlace, inverse telecine) are part of the decode stage: the filter graph takes the
decoder's frames in order, with the segment's run-in. Colour conversion is part of the upscale
stage: it runs on the model's device, on the batch already there.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from remaster.core.errors import DamagedInput, RemasterError
from remaster.core.wording import counted
from remaster.engines.base import Upscaler
from remaster.video.busy import StageBusy
from remaster.video.checkpoint import WorkDir
from remaster.video.colour import ColourSpec, planes_to_rgb, rgb_to_planes
from remaster.video.decode import DecodeStats, Planes, decode_segments
from remaster.video.encode import EncoderSettings, OutputColour, SegmentWriter, VideoFormat
from remaster.video.fields import FieldMode, filtered_segment
from remaster.video.plan import JobPlan, OutputFrame
from remaster.video.probe import MediaInfo
from remaster.video.progress import QuietProgress
from remaster.video.reuse import ReuseMode, same_drawing
from remaster.video.segments import Segment

QUEUE_FRAMES = 8  # frames waiting between stages; enough to keep each busy, small enough for 4K


@dataclass(frozen=True)
class SegmentStart:
    segment: Segment
    frames: int  # frames expected out of it, after the field filters (for progress)


@dataclass(frozen=True)
class Decoded:
    """A decoded frame, through the field filters, with its pts on the plan's output timeline."""

    planes: Planes


@dataclass(frozen=True)
class SegmentEnd:
    segment: Segment
    stats: DecodeStats  # of this segment's decoding


@dataclass(frozen=True)
class Marked:
    """A frame, and whether it is the same drawing as the last frame the model ran on (reuse.py)."""

    planes: Planes
    held: bool


@dataclass(frozen=True)
class OutputPlanes:
    """A remastered frame in the encoder's planes."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    pts: int


@dataclass(frozen=True)
class Upscaled:
    frames: tuple[OutputPlanes, ...]
    held: int  # how many of them reused a held drawing's result


Message = SegmentStart | Decoded | SegmentEnd | Marked | Upscaled


class DecodeStage:
    """The source: the planned segments' frames, each segment between a start and an end."""

    def __init__(self, plan: JobPlan, todo: list[Segment]):
        self.plan, self.todo = plan, todo
        self.stats = DecodeStats()  # every segment's decoding together, for the summary

    def messages(self) -> Iterator[SegmentStart | Decoded | SegmentEnd]:
        with contextlib.closing(self._segments()) as segments:
            for seg, stats, frames in segments:
                yield SegmentStart(seg, self.plan.fields.output_count(seg.frame_count))
                for planes in frames:
                    yield Decoded(planes)
                self.stats.add(stats)
                _check_decoded(self.plan.media, seg, stats, self.plan.allow_damaged)
                yield SegmentEnd(seg, stats)

    def _segments(self) -> Iterator[tuple[Segment, DecodeStats, Iterator[Planes]]]:
        media, fields = self.plan.media, self.plan.fields
        if fields.mode == FieldMode.PROGRESSIVE:
            # Consecutive segments in one decoding pass, which seeks only for a gap.
            yield from decode_segments(media.path, media.video, self.todo)
            return
        for seg in self.todo:  # each segment its own pass from the keyframe before it (fields.py)
            stats = DecodeStats()
            yield seg, stats, filtered_segment(media.path, media.video, seg, fields, stats)


class HeldDrawings:
    """Marks each frame that is the same drawing as the last one the model ran on. Reuse never
    crosses a segment boundary, so that a resumed run gives the same frames as an uninterrupted one."""

    def __init__(self, mode: ReuseMode):
        self.mode = mode
        self._reference: Planes | None = None

    def feed(self, message: Message) -> Iterable[Message]:
        if not isinstance(message, Decoded):
            self._reference = None
            return (message,)
        held = self._reference is not None and same_drawing(self._reference, message.planes, self.mode)
        if not held:
            self._reference = message.planes
        return (Marked(message.planes, held),)


def through(source: Iterator[Message], stages: list) -> Iterator[Message]:
    """`source`'s messages through `stages` (objects with `feed`), in the thread that reads them."""
    with contextlib.closing(source):
        for message in source:
            yield from _through(stages, message)


def padded_batch(frames: list[Planes], batch: int) -> list[Planes]:
    """`frames` made up to `batch` with copies of the last one: a segment's last batch then has the
    shape of every other, where a new shape would mean a new compile, cuDNN search and CUDA graph."""
    return frames + [frames[-1]] * (batch - len(frames))


@dataclass(frozen=True)
class _Launched:
    """A batch given to the model: its frames (held ones too), and where its results will be.
    `planes` are host tensors (Y', Cb, Cr) that a GPU may still be copying into until `copied`;
    their first `computed` frames are results (the rest padded the batch)."""

    marked: tuple[Marked, ...]
    planes: tuple[torch.Tensor, ...]
    copied: torch.cuda.Event | None
    computed: int


@dataclass
class UpscaleStage:
    """Runs the model on batches of `batch` frames that are not held drawings; a held frame gets
    the result of the last frame computed before it.

    `overlap` batches are let run before their results are taken: on CUDA 1, so that the GPU
    computes a batch and copies it back while this thread stacks and sends the next one and
    hands the last one's frames to the encoder (the model's work is queued, not waited for);
    on other devices 0, where the model has finished when it returns. Results come out in order,
    and a segment's end takes every batch still running before it passes the end on.

    `pad`: a short batch (a segment's last) is made up to `batch` frames (`padded_batch`) and the
    extra results dropped; by default wherever the device runs a batch at once (not a CPU, which
    runs a batch frame by frame: there a copy would only cost)."""

    upscaler: Upscaler
    frame: OutputFrame
    batch: int
    overlap: int | None = None  # None: 1 on CUDA, else 0
    pad: bool | None = None  # None: on any device but the CPU
    computed: int = 0  # frames the model ran on
    held: int = 0  # frames that reused a held drawing's result
    _pending: list[Marked] = field(default_factory=list)
    _running: deque[_Launched] = field(default_factory=deque)
    _last: OutputPlanes | None = None

    def __post_init__(self) -> None:
        if self.overlap is None:
            self.overlap = 1 if self.upscaler.device.type == "cuda" else 0
        if self.pad is None:
            self.pad = self.upscaler.device.type != "cpu"

    def feed(self, message: Message) -> Iterable[Message]:
        if isinstance(message, Marked):
            self._pending.append(message)
            if sum(not m.held for m in self._pending) < self.batch:
                return ()
            return self._launch(self.overlap)
        out = self._launch(0) if self._pending else tuple(self._collect() for _ in range(len(self._running)))
        self._last = None
        return (*out, message)

    def _launch(self, overlap: int) -> tuple[Upscaled, ...]:
        """Start the pending frames' batch; give back the results of the batches beyond `overlap`."""
        computed = [m.planes for m in self._pending if not m.held]
        sent = padded_batch(computed, self.batch) if computed and self.pad else computed
        planes, copied = self._start(sent) if computed else ((), None)
        self._running.append(_Launched(tuple(self._pending), planes, copied, len(computed)))
        self._pending = []
        return tuple(self._collect() for _ in range(len(self._running) - overlap))

    def _collect(self) -> Upscaled:
        """The oldest running batch's frames, once its planes are on the host."""
        launched = self._running.popleft()
        if launched.copied is not None:
            launched.copied.synchronize()
        y, u, v = (_codes(plane) for plane in launched.planes) if launched.planes else ((), (), ())
        results = iter(range(launched.computed))
        frames = []
        for marked in launched.marked:
            if not marked.held:
                i = next(results)
                self._last = OutputPlanes(y[i], u[i], v[i], marked.planes.pts)
            frames.append(OutputPlanes(self._last.y, self._last.u, self._last.v, marked.planes.pts))
        held = len(launched.marked) - launched.computed
        self.computed, self.held = self.computed + launched.computed, self.held + held
        return Upscaled(tuple(frames), held)

    @torch.inference_mode()
    def _start(self, batch: list[Planes]) -> tuple[tuple[torch.Tensor, ...], torch.cuda.Event | None]:
        """Queue the batch through the model and back to the host: the output planes as host
        tensors, and on CUDA the event after which their bytes are there."""
        first, frame, buffers = batch[0], self.frame, self.upscaler.host_buffers
        spec = ColourSpec(frame.source_matrix, first.full_range, first.bits, first.chroma_shift)
        # Stacked straight into reused host buffers (pinned on CUDA), Cb and Cr in one, and copied
        # to the device; 10- to 16-bit codes as int16, bit for bit (ColourSpec.code_dtype).
        dtype = torch.uint8 if first.y.dtype == np.uint8 else torch.int16
        y = buffers.to_device(buffers.stacked([p.y for p in batch], dtype))
        uv = buffers.to_device(buffers.stacked([p.u for p in batch] + [p.v for p in batch], dtype))
        u, v = uv[: len(batch)], uv[len(batch) :]
        rgb = self.upscaler.upscale_rgb(planes_to_rgb(y, u, v, spec)).clamp_(0, 1)
        if frame.resample:
            # Antialiased bicubic: the one resize is a reduction of the model's output.
            size = (frame.height, frame.width)
            rgb = F.interpolate(rgb, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
        else:
            rgb = rgb[..., : frame.height, : frame.width]  # an odd size loses its last row/column
        # From CUDA on a stream of their own, beside the next batch's work (HostBuffers.to_host).
        return buffers.to_host(rgb_to_planes(rgb, frame.spec))


def _codes(plane: torch.Tensor) -> np.ndarray:
    """A host plane as the encoder takes it: uint8, or the uint16 codes an int16 plane holds."""
    codes = plane.numpy()
    return codes.view(np.uint16) if codes.dtype == np.int16 else codes


class EncodeStage:
    """The sink: each segment encoded into its partial file, read back, and committed as a
    checkpoint into `done` (segment index -> finished file). `source` names the input in errors."""

    def __init__(
        self,
        work: WorkDir,
        done: dict[int, Path],
        encoder: EncoderSettings,
        video: VideoFormat,
        colour: OutputColour,
        progress: QuietProgress,
        source: Path,
    ):
        self.work, self.done, self.progress, self.source = work, done, progress, source
        self.encoder, self.video, self.colour = encoder, video, colour
        self._writer: SegmentWriter | None = None
        self._partial: Path | None = None
        self._written: list[int] = []

    @classmethod
    def for_plan(cls, plan: JobPlan, work: WorkDir, done: dict[int, Path], progress: QuietProgress) -> EncodeStage:
        frame, fields = plan.frame, plan.fields
        video = VideoFormat(frame.width, frame.height, frame.sar, fields.time_base, fields.rate)
        return cls(work, done, plan.encoder, video, plan.colour, progress, plan.media.path)

    def feed(self, message: Message) -> None:
        if isinstance(message, SegmentStart):
            seg = message.segment
            self._partial, self._written = self.work.partial_path(seg), []
            self._writer = SegmentWriter(self._partial, self.encoder, self.video, self.colour)
            self.progress.segment_started(seg.index, message.frames)
        elif isinstance(message, Upscaled):
            for frame in message.frames:
                self._writer.write(frame.y, frame.u, frame.v, frame.pts)
            self._written.extend(frame.pts for frame in message.frames)
            self.progress.frames_done(len(message.frames), message.held)
        elif isinstance(message, SegmentEnd):
            self._end(message.segment)

    def _end(self, seg: Segment) -> None:
        self._writer.close()
        self._writer = None
        written = self._written
        if not written:
            raise DamagedInput(f"{self.source}: no frame of segment {seg.index} could be decoded")
        _check_segment_file(self._partial, len(written))
        self.done[seg.index] = self.work.commit(seg, self._partial, len(written), min(written), max(written))
        self.progress.segment_done(seg.index, len(written))

    def close(self) -> None:
        """After the last message or a failure: an unfinished segment's encoder and file go."""
        if self._writer is not None:
            self._writer.abort()
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)


def run_stages(
    source: Iterator[Message],
    middle: list,
    sink: EncodeStage,
    batch: int,
    busy: StageBusy | None = None,
) -> None:
    """Run the source and the sink in threads of their own and `middle` (objects with `feed`) in
    this one, joined by bounded queues. The first failure anywhere stops all three and is raised
    here; so is a KeyboardInterrupt, once both threads have stopped. `busy` times each stage's
    work (decode, model, encode), not its waits on the queues."""
    busy = busy if busy is not None else StageBusy()
    busy.start()
    stop = threading.Event()
    failures: list[BaseException] = []
    decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
    upscaled: queue.Queue = queue.Queue(max(2, QUEUE_FRAMES // max(1, batch)))

    def produce() -> None:
        with contextlib.closing(source):
            while True:
                with busy.working("decode"):
                    message = next(source, None)
                if message is None:
                    break
                if not _put(decoded, message, stop):
                    return
        _put(decoded, None, stop)

    def consume() -> None:
        try:
            while (message := _get(upscaled, stop)) is not None:
                with busy.working("encode"):
                    sink.feed(message)
        finally:
            sink.close()

    threads = [_Worker(produce, failures, stop), _Worker(consume, failures, stop)]
    for thread in threads:
        thread.start()
    try:
        while (message := _get(decoded, stop, failures)) is not None:
            with busy.working("model"):
                messages = _through(middle, message)
            for out in messages:
                _put(upscaled, out, stop, failures)
        _put(upscaled, None, stop, failures)
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise


def _through(stages: list, message: Message) -> list[Message]:
    messages = [message]
    for stage in stages:
        messages = [out for m in messages for out in stage.feed(m)]
    return messages


class _Worker(threading.Thread):
    """A stage's thread: its exception is kept for the calling thread, and stops the others."""

    def __init__(self, target: Callable[[], None], failures: list[BaseException], stop: threading.Event):
        super().__init__(daemon=True)
        self._target_fn, self._failures, self._stop_event = target, failures, stop

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which re-raises it
            self._failures.append(exc)
            self._stop_event.set()


def _put(q: queue.Queue, item: object, stop: threading.Event, failures: list | None = None) -> bool:
    """Put, waiting for room, unless the pipeline is stopping; False if it is."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    if failures:
        raise failures[0]
    return False


def _get(q: queue.Queue, stop: threading.Event, failures: list | None = None) -> object:
    """Get, waiting for an item, unless the pipeline is stopping (then None, or the failure)."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    if failures:
        raise failures[0]
    return None


def _check_decoded(media: MediaInfo, seg: Segment, stats: DecodeStats, allow_damaged: bool) -> None:
    if stats.frames < seg.frame_count and not allow_damaged:
        video = media.video
        at = video.seconds(seg.first_pts - video.pts[0])
        raise DamagedInput(
            f"{media.path}: damaged: the segment at {at:.3f} s decoded {stats.frames} of its "
            f"{counted(seg.frame_count, 'frame')} ({counted(stats.errors, 'packet')} rejected by the decoder; "
            "--allow-damaged to go on)"
        )


def _check_segment_file(path: Path, frames: int) -> None:
    """Read back what the encoder wrote: every frame must be there before it becomes a checkpoint."""
    with av.open(str(path)) as container:
        count = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    if count != frames:
        raise RemasterError(f"{path}: the encoder wrote {count} of {counted(frames, 'frame')}")
