"""`remaster compare`: one frame, upscaled by bicubic and by each preset, side by side in one PNG.

The grid has a column per method, bicubic first and then the presets in the order given, and two
rows: the whole frame, downsized to fit the column (lanczos), with the crop marked on it; and a
crop at full detail. Every column is shown at the same output scale, the largest scale among the
presets: bicubic enlarges the source to it directly, and a preset of a smaller scale is enlarged to
it by pixel repetition (nearest), which adds no smoothing of its own, so what differs between
columns is the method. (Between 2x and 4x the repetition is exact; with a 3x preset next to a 2x or
4x one, some rows and columns are repeated once more than others.) The crop is further enlarged by
a whole factor, nearest again, so that single output pixels can be seen.

The crop is the region of the source with the most detail (the largest sum of gradient magnitudes)
unless --crop-at gives its top-left corner. The frame is decoded as the video job decodes it (seek
2 s early, keep the frame by pts, exact Y'CbCr -> R'G'B'), and the presets get it in float, before
any rounding to 8 bits; bicubic starts from the frame rounded to 8 bits. Pixels are storage
pixels: an anamorphic frame is not resampled to its display aspect.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from remaster.errors import RemasterError, UsageError
from remaster.imagefiles import INPUT_SUFFIXES, OUTPUT_FORMATS, read_image, write_image
from remaster.outputs import refuse_to_destroy
from remaster.presets import get_preset
from remaster.video.decode import DecodeStats, decode_segment
from remaster.video.probe import probe
from remaster.video.segments import Segment

if TYPE_CHECKING:  # torch takes a second to import: only when a comparison runs, not for `remaster --help`
    from remaster.engine.upscaler import EngineSettings

DEFAULT_PRESETS = ("2x-conservative", "2x-denoise3x", "4x-conservative")
MARGIN = 8  # pixels around and between the cells
LABEL_HEIGHT = 22  # the band above each cell that holds its label
LABEL_SIZE = 14
MAX_THUMB_WIDTH = 640  # the whole-frame row is downsized to at most this width
CROP_ZOOM = 2  # the default crop shows each output pixel as 2x2, filling a column
BACKGROUND = (24, 24, 24)
LABEL_COLOUR = (235, 235, 235)
MARK_COLOUR = (255, 64, 200)  # the crop's outline on the whole-frame pictures


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in pixels of the grid; the crop is in source pixels."""

    columns: int
    scale: int  # every column's output scale
    thumb: tuple[int, int]  # whole-frame picture (width, height)
    crop: tuple[int, int, int, int]  # x, y, width, height in the source
    zoom: int  # extra enlargement of the crop, on top of `scale`

    @property
    def cell(self) -> tuple[int, int]:
        factor = self.scale * self.zoom
        return self.crop[2] * factor, self.crop[3] * factor

    @property
    def column_width(self) -> int:
        return max(self.thumb[0], self.cell[0])

    @property
    def thumb_top(self) -> int:
        return MARGIN + LABEL_HEIGHT

    @property
    def cell_top(self) -> int:
        return self.thumb_top + self.thumb[1] + MARGIN + LABEL_HEIGHT

    @property
    def size(self) -> tuple[int, int]:
        width = self.columns * self.column_width + (self.columns + 1) * MARGIN
        return width, self.cell_top + self.cell[1] + MARGIN

    def left(self, column: int) -> int:
        return MARGIN + column * (self.column_width + MARGIN)


@dataclass
class CompareReport:
    output: Path
    size: tuple[int, int]
    methods: list[str]  # column labels, left to right
    crop: tuple[int, int, int, int]
    frame_time: float | None  # seconds on the file's clock; None for a picture
    seconds: float = 0.0


def most_detailed(grey: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the width x height window with the largest sum of gradient magnitudes."""
    g = np.zeros(grey.shape, dtype=np.float64)
    g[:, 1:] += np.abs(np.diff(grey, axis=1))
    g[1:, :] += np.abs(np.diff(grey, axis=0))
    # Sums over every window at once from a summed-area table.
    table = np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x), int(y)


def thumb_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The whole-frame picture: the upscaled frame, downsized to at most MAX_THUMB_WIDTH."""
    thumb_w = min(scale * width, MAX_THUMB_WIDTH)
    return thumb_w, max(1, round(thumb_w * height / width))


def default_crop(width: int, height: int, scale: int) -> tuple[int, int]:
    """The crop that, enlarged CROP_ZOOM times at `scale`, is as large as the whole-frame picture."""
    thumb_w, thumb_h = thumb_size(width, height, scale)
    factor = scale * CROP_ZOOM
    return min(width, -(-thumb_w // factor)), min(height, -(-thumb_h // factor))


def plan_layout(width: int, height: int, scale: int, columns: int, crop: tuple[int, int, int, int]) -> Layout:
    """`crop` is x, y, width, height in source pixels; it is enlarged by the largest whole factor
    that keeps it within the whole-frame picture's width (at least 1)."""
    thumb = thumb_size(width, height, scale)
    zoom = max(1, thumb[0] // (crop[2] * scale))
    return Layout(columns, scale, thumb, crop, zoom)


def read_frame(path: Path, at: float | None) -> tuple[np.ndarray, float | None]:
    """H x W x 3 float32 R'G'B' in [0, 1] and the frame's time: a picture file as it is, or the
    first frame of a video at or after `at` seconds from its first frame (as --start counts)."""
    if path.suffix.lower() in INPUT_SUFFIXES:
        pixels = read_image(path)[..., :3]  # alpha plays no part in a comparison
        peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
        return pixels.astype(np.float32) / peak, None
    if at is None:
        raise UsageError(f"{path}: a video needs --at TIME (seconds or [H:]MM:SS)")
    path = path.absolute()  # FFmpeg takes a relative name such as "ep: 1.mkv" for a protocol ("ep:")
    video = probe(path).video
    first, last = video.seconds(video.pts[0]), video.seconds(video.pts[-1])
    i = bisect.bisect_left(video.pts, video.pts[0] + round(at / video.time_base))
    if at < 0 or i == len(video.pts):
        raise UsageError(f"{path}: --at {at:g}: the video's frames run from 0 to {last - first:.3f} s")
    planes = next(decode_segment(path, video, Segment(0, (video.pts[i],)), DecodeStats()), None)
    if planes is None:
        raise RemasterError(f"{path}: the frame at {video.seconds(video.pts[i]):.3f} s does not decode")
    import torch

    from remaster.video.colour import ColourSpec, planes_to_rgb

    spec = ColourSpec(video.matrix, planes.full_range, planes.bits, planes.chroma_shift)
    y, u, v = (torch.from_numpy(p.astype(np.int32))[None] for p in (planes.y, planes.u, planes.v))
    return planes_to_rgb(y, u, v, spec)[0].permute(1, 2, 0).numpy(), video.seconds(video.pts[i])


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float in [0, 1] -> uint8, rounded half up as the engine rounds."""
    return np.clip(np.floor(rgb * 255 + 0.5), 0, 255).astype(np.uint8)


def _fitted(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """Shorten a label with an ellipsis so that it stays inside its column."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def render_grid(columns: list[tuple[str, np.ndarray, int]], layout: Layout) -> np.ndarray:
    """Columns of (label, picture upscaled by `its scale`, its scale), left to right -> the grid."""
    grid = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(LABEL_SIZE)
    x, y, w, h = layout.crop
    thumb_w, thumb_h = layout.thumb
    cell_w, cell_h = layout.cell
    for i, (label, picture, scale) in enumerate(columns):
        left = layout.left(i)
        whole = Image.fromarray(picture).resize(layout.thumb, Image.Resampling.LANCZOS)
        mark = ImageDraw.Draw(whole)
        src_h, src_w = picture.shape[0] // scale, picture.shape[1] // scale
        box = [x * thumb_w / src_w, y * thumb_h / src_h, (x + w) * thumb_w / src_w - 1, (y + h) * thumb_h / src_h - 1]
        mark.rectangle(box, outline=MARK_COLOUR, width=2)
        grid.paste(whole, (left, layout.thumb_top))
        region = picture[y * scale : (y + h) * scale, x * scale : (x + w) * scale]
        grid.paste(Image.fromarray(region).resize((cell_w, cell_h), Image.Resampling.NEAREST), (left, layout.cell_top))
        total = layout.scale * layout.zoom
        zoomed = f"{label}: crop {w}x{h} at ({x}, {y}), {total}x"
        for text, top in ((label, MARGIN), (zoomed, layout.cell_top - LABEL_HEIGHT)):
            draw.text((left, top + 2), _fitted(text, font, layout.column_width), fill=LABEL_COLOUR, font=font)
    return np.asarray(grid)


def compare(
    source: Path,
    output: Path,
    at: float | None = None,
    presets: tuple[str, ...] = DEFAULT_PRESETS,
    crop_size: tuple[int, int] | None = None,
    crop_at: tuple[int, int] | None = None,
    engine: EngineSettings | None = None,
    overwrite: bool = False,
) -> CompareReport:
    """Write the comparison grid of one frame of `source` to `output` (PNG, WebP or JPEG)."""
    t0 = time.monotonic()
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"{output}: the grid is a picture; use {', '.join(OUTPUT_FORMATS)}")
    refuse_to_destroy(source, output, overwrite)
    if not presets:
        raise UsageError("--presets: name at least one preset")
    chosen = [get_preset(name) for name in presets]  # unknown names fail before any decoding
    rgb, frame_time = read_frame(source, at)
    height, width, _ = rgb.shape
    if crop_size is not None and not (1 <= crop_size[0] <= width and 1 <= crop_size[1] <= height):
        raise UsageError(f"--crop {crop_size[0]}x{crop_size[1]}: the frame is {width}x{height}")
    import torch

    from remaster.engine.choice import make_upscaler
    from remaster.engine.upscaler import EngineSettings
    from remaster.models.loader import load_model

    models = [(preset.name, load_model(preset.model)) for preset in chosen]
    scale = max(model.descriptor.scale for _, model in models)
    crop_w, crop_h = crop_size or default_crop(width, height, scale)
    source_8bit = _to_uint8(rgb)
    if crop_at is None:
        grey = source_8bit.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
        crop_at = most_detailed(grey, crop_w, crop_h)
    elif not (0 <= crop_at[0] <= width - crop_w and 0 <= crop_at[1] <= height - crop_h):
        raise UsageError(f"--crop-at {crop_at[0]},{crop_at[1]}: a {crop_w}x{crop_h} crop must fit in {width}x{height}")
    results = []
    frame = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    for name, model in models:
        upscaler = make_upscaler(model, engine or EngineSettings())
        out = upscaler.upscale_rgb(frame.to(upscaler.device))[0].float().cpu().permute(1, 2, 0).numpy()
        results.append((name, _to_uint8(out), upscaler.descriptor.scale))
    bicubic = np.asarray(Image.fromarray(source_8bit).resize((width * scale, height * scale), Image.Resampling.BICUBIC))
    layout = plan_layout(width, height, scale, 1 + len(results), (*crop_at, crop_w, crop_h))
    columns = [(f"bicubic ({scale}x)", bicubic, scale)]
    for name, picture, s in results:
        shown = f"{name} ({s}x)" if s == scale else f"{name} ({s}x, nearest to {scale}x)"
        columns.append((shown, picture, s))
    output.parent.mkdir(parents=True, exist_ok=True)
    write_image(output, render_grid(columns, layout))
    return CompareReport(
        output=output,
        size=layout.size,
        methods=[label for label, _, _ in columns],
        crop=layout.crop,
        frame_time=frame_time,
        seconds=time.monotonic() - t0,
    )
