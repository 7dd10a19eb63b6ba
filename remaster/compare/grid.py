"""`remaster compare`: one frame, upscaled by bicubic and by each preset, side by side in one PNG.

By default the sheet is the Real-CUGAN announcement's comparison at `--scale` (2, 3 or 4):
bicubic, waifu2x, Real-ESRGAN and Real-CUGAN, one preset of each (ANNOUNCEMENT); waifu2x has
only 1x and 2x networks, so at 3x and 4x its column is left out and a note on the sheet says so.
`--presets` names the columns instead.

The sheet has a column per method, bicubic first and then the presets in order, each labelled
with its family and preset, and rows: the whole frame, downsized to fit the column (lanczos),
with the crops marked on it; then each crop at full detail. Every column is shown at the same
output scale, the largest scale among the presets: bicubic enlarges the source to it directly,
and a preset of a smaller scale is enlarged to it by pixel repetition (nearest), which adds no
smoothing of its own, so what differs between columns is the method. (Between 2x and 4x the
repetition is exact; with a 3x preset next to a 2x or 4x one, some rows and columns are
repeated once more than others.) The crops are further enlarged by a whole factor, nearest
again, so that single output pixels can be seen.

The crops are the regions of the source with the most detail (the largest sums of gradient
magnitudes, not overlapping each other) unless --crop-at gives the top-left corner of one. The
frame is decoded as the video job decodes it (seek 2 s early, keep the frame by pts, exact
Y'CbCr -> R'G'B'), and the presets get it in float, before any rounding to 8 bits; bicubic
starts from the frame rounded to 8 bits. Pixels are storage pixels: an anamorphic frame is not
resampled to its display aspect.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from remaster.compare.lineup import ANNOUNCEMENT, DEFAULT_CROPS, DEFAULT_SCALE, MAX_CROPS
from remaster.core.errors import RemasterError, UsageError
from remaster.core.outputs import refuse_to_destroy
from remaster.core.presets import get_preset
from remaster.media.imagefiles import INPUT_SUFFIXES, OUTPUT_FORMATS, read_image, write_image
from remaster.video.decode import DecodeStats, decode_segment
from remaster.video.probe import probe
from remaster.video.segments import Segment

if TYPE_CHECKING:  # torch takes a second to import: only when a comparison runs, not for `remaster --help`
    from remaster.engines.settings import EngineSettings

# What the sheet says of a family left out at a scale.
LEFT_OUT: dict[int, str] = {
    scale: f"waifu2x has no {scale}x model (its networks are 1x and 2x): left out at {scale}x" for scale in (3, 4)
}
MARGIN = 8  # pixels around and between the cells
LABEL_HEIGHT = 22  # the band above each cell that holds its label, and each note's line
LABEL_SIZE = 14
MAX_THUMB_WIDTH = 640  # the whole-frame row is downsized to at most this width
CROP_ZOOM = 2  # the default crop shows each output pixel as 2x2, filling a column
BACKGROUND = (24, 24, 24)
LABEL_COLOUR = (235, 235, 235)
MARK_COLOUR = (255, 64, 200)  # the crops' outlines on the whole-frame pictures

Box = tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in pixels of the sheet; the crops are in source pixels."""

    columns: int
    scale: int  # every column's output scale
    thumb: tuple[int, int]  # whole-frame picture (width, height)
    crops: tuple[Box, ...]  # x, y, width, height in the source, one size for all
    zoom: int  # extra enlargement of the crops, on top of `scale`
    notes: int = 0  # lines of notes under the grid

    @property
    def cell(self) -> tuple[int, int]:
        factor = self.scale * self.zoom
        return self.crops[0][2] * factor, self.crops[0][3] * factor

    @property
    def column_width(self) -> int:
        return max(self.thumb[0], self.cell[0])

    @property
    def thumb_top(self) -> int:
        return MARGIN + LABEL_HEIGHT

    def cell_top(self, crop: int) -> int:
        first = self.thumb_top + self.thumb[1] + MARGIN + LABEL_HEIGHT
        return first + crop * (self.cell[1] + MARGIN + LABEL_HEIGHT)

    @property
    def notes_top(self) -> int:
        return self.cell_top(len(self.crops)) - LABEL_HEIGHT

    @property
    def size(self) -> tuple[int, int]:
        width = self.columns * self.column_width + (self.columns + 1) * MARGIN
        return width, self.notes_top + self.notes * LABEL_HEIGHT

    def left(self, column: int) -> int:
        return MARGIN + column * (self.column_width + MARGIN)


@dataclass(frozen=True)
class Panel:
    """One picture on the sheet: which method, which part of the frame, and where it lies."""

    label: str  # as written above it
    family: str  # "bicubic", "waifu2x", "Real-ESRGAN", "Real-CUGAN"
    preset: str  # "" for bicubic
    part: str  # "whole" or "crop N" (N from 1, as on the sheet)
    box: Box  # x, y, width, height on the sheet


@dataclass
class CompareReport:
    output: Path
    size: tuple[int, int]
    methods: list[str]  # column labels, left to right
    crops: list[Box]
    frame_time: float | None  # seconds on the file's clock; None for a picture
    panels: list[Panel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # written under the grid, e.g. a family left out
    seconds: float = 0.0


def most_detailed(grey: np.ndarray, width: int, height: int, count: int = 1) -> list[tuple[int, int]]:
    """Top-left corners of up to `count` width x height windows, not overlapping each other, with
    the largest sums of gradient magnitudes, the most detailed first (greedy: each is the best
    window that overlaps none chosen before)."""
    g = np.zeros(grey.shape, dtype=np.float64)
    g[:, 1:] += np.abs(np.diff(grey, axis=1))
    g[1:, :] += np.abs(np.diff(grey, axis=0))
    # Sums over every window at once from a summed-area table.
    table = np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]
    corners = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if not np.isfinite(sums[y, x]):
            break  # every window left overlaps one already chosen
        corners.append((int(x), int(y)))
        # Windows whose corner lies within a window's size before or after this one overlap it.
        sums[max(0, y - height + 1) : y + height, max(0, x - width + 1) : x + width] = -np.inf
    return corners


def thumb_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The whole-frame picture: the upscaled frame, downsized to at most MAX_THUMB_WIDTH."""
    thumb_w = min(scale * width, MAX_THUMB_WIDTH)
    return thumb_w, max(1, round(thumb_w * height / width))


def default_crop(width: int, height: int, scale: int) -> tuple[int, int]:
    """The crop that, enlarged CROP_ZOOM times at `scale`, is as large as the whole-frame picture."""
    thumb_w, thumb_h = thumb_size(width, height, scale)
    factor = scale * CROP_ZOOM
    return min(width, -(-thumb_w // factor)), min(height, -(-thumb_h // factor))


def plan_layout(width: int, height: int, scale: int, columns: int, crops: tuple[Box, ...], notes: int = 0) -> Layout:
    """`crops` are x, y, width, height in source pixels, of one size; they are enlarged by the
    largest whole factor that keeps them within the whole-frame picture's width (at least 1)."""
    thumb = thumb_size(width, height, scale)
    zoom = max(1, thumb[0] // (crops[0][2] * scale))
    return Layout(columns, scale, thumb, crops, zoom, notes)


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


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float in [0, 1] -> uint8, rounded half up as the engine rounds."""
    return np.clip(np.floor(rgb * 255 + 0.5), 0, 255).astype(np.uint8)


def _fitted(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """Shorten a label with an ellipsis so that it stays inside its column."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


@dataclass(frozen=True)
class Column:
    """One method's result: the frame upscaled by `scale`, and how the sheet names it."""

    label: str
    family: str
    preset: str
    picture: np.ndarray
    scale: int


def render_sheet(columns: list[Column], layout: Layout, notes: list[str]) -> tuple[np.ndarray, list[Panel]]:
    """The columns, left to right, and the notes under them -> the sheet and where each panel is."""
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(LABEL_SIZE)
    thumb_w, thumb_h = layout.thumb
    cell_w, cell_h = layout.cell
    panels = []
    for i, column in enumerate(columns):
        left, picture, scale = layout.left(i), column.picture, column.scale
        whole = Image.fromarray(picture).resize(layout.thumb, Image.Resampling.LANCZOS)
        mark = ImageDraw.Draw(whole)
        src_h, src_w = picture.shape[0] // scale, picture.shape[1] // scale
        for n, (x, y, w, h) in enumerate(layout.crops):
            box = [
                x * thumb_w / src_w,
                y * thumb_h / src_h,
                (x + w) * thumb_w / src_w - 1,
                (y + h) * thumb_h / src_h - 1,
            ]
            mark.rectangle(box, outline=MARK_COLOUR, width=2)
            mark.text((box[0] + 3, box[1] + 1), str(n + 1), fill=MARK_COLOUR)  # the crop's number, as labelled
        sheet.paste(whole, (left, layout.thumb_top))
        draw.text((left, MARGIN + 2), _fitted(column.label, font, layout.column_width), fill=LABEL_COLOUR, font=font)
        panels.append(
            Panel(column.label, column.family, column.preset, "whole", (left, layout.thumb_top, *layout.thumb))
        )
        total = layout.scale * layout.zoom
        for n, (x, y, w, h) in enumerate(layout.crops):
            region = picture[y * scale : (y + h) * scale, x * scale : (x + w) * scale]
            top = layout.cell_top(n)
            sheet.paste(Image.fromarray(region).resize((cell_w, cell_h), Image.Resampling.NEAREST), (left, top))
            zoomed = f"{column.label}: crop {n + 1}, {w}x{h} at ({x}, {y}), {total}x"
            draw.text(
                (left, top - LABEL_HEIGHT + 2), _fitted(zoomed, font, layout.column_width), fill=LABEL_COLOUR, font=font
            )
            panels.append(
                Panel(column.label, column.family, column.preset, f"crop {n + 1}", (left, top, cell_w, cell_h))
            )
    for n, note in enumerate(notes):
        draw.text((MARGIN, layout.notes_top + n * LABEL_HEIGHT + 2), note, fill=LABEL_COLOUR, font=font)
    return np.asarray(sheet), panels


def chosen_presets(presets: tuple[str, ...] | None, scale: int | None) -> tuple[tuple[str, ...], list[str]]:
    """The presets to compare and the sheet's notes: `presets` as given, or the announcement's
    comparison at `scale` (default 2x)."""
    if presets is not None:
        if scale is not None:
            raise UsageError("--scale picks the default comparison's presets; leave it out with --presets")
        if not presets:
            raise UsageError("--presets: name at least one preset")
        return presets, []
    scale = DEFAULT_SCALE if scale is None else scale
    if scale not in ANNOUNCEMENT:
        raise UsageError(f"--scale {scale}: the comparison is at {', '.join(map(str, ANNOUNCEMENT))}")
    return ANNOUNCEMENT[scale], [LEFT_OUT[scale]] if scale in LEFT_OUT else []


def compare(
    source: Path,
    output: Path,
    at: float | None = None,
    presets: tuple[str, ...] | None = None,
    crop_size: tuple[int, int] | None = None,
    crop_at: tuple[int, int] | None = None,
    engine: EngineSettings | None = None,
    overwrite: bool = False,
    scale: int | None = None,
    crops: int = DEFAULT_CROPS,
) -> CompareReport:
    """Write the comparison sheet of one frame of `source` to `output` (PNG, WebP or JPEG):
    `presets`' columns, or without them the announcement's comparison at `scale`."""
    t0 = time.monotonic()
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"{output}: the sheet is a picture; use {', '.join(OUTPUT_FORMATS)}")
    refuse_to_destroy(source, output, overwrite)
    names, notes = chosen_presets(presets, scale)
    if not 1 <= crops <= MAX_CROPS:
        raise UsageError(f"--crops {crops}: want 1 to {MAX_CROPS}")
    chosen = [get_preset(name) for name in names]  # unknown names fail before any decoding
    rgb, frame_time = read_frame(source, at)
    height, width, _ = rgb.shape
    if crop_size is not None and not (1 <= crop_size[0] <= width and 1 <= crop_size[1] <= height):
        raise UsageError(f"--crop {crop_size[0]}x{crop_size[1]}: the frame is {width}x{height}")
    import torch

    from remaster.architectures.descriptor import family_title
    from remaster.engines.choice import make_upscaler
    from remaster.engines.settings import EngineSettings
    from remaster.models.loader import load_model

    models = [(preset.name, load_model(preset.model)) for preset in chosen]
    # Every column is shown at the largest scale among the presets.
    shown_scale = max(model.descriptor.scale for _, model in models)
    crop_w, crop_h = crop_size or default_crop(width, height, shown_scale)
    source_8bit = to_uint8(rgb)
    if crop_at is None:
        grey = source_8bit.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
        corners = most_detailed(grey, crop_w, crop_h, crops)
    elif not (0 <= crop_at[0] <= width - crop_w and 0 <= crop_at[1] <= height - crop_h):
        raise UsageError(f"--crop-at {crop_at[0]},{crop_at[1]}: a {crop_w}x{crop_h} crop must fit in {width}x{height}")
    else:
        corners = [crop_at]
    frame = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    bicubic = np.asarray(
        Image.fromarray(source_8bit).resize((width * shown_scale, height * shown_scale), Image.Resampling.BICUBIC)
    )
    columns = [Column(f"bicubic ({shown_scale}x)", "bicubic", "", bicubic, shown_scale)]
    for name, model in models:
        upscaler = make_upscaler(model, engine or EngineSettings())
        out = upscaler.upscale_rgb(frame.to(upscaler.device))[0].float().cpu().permute(1, 2, 0).numpy()
        s, family = model.descriptor.scale, family_title(model.descriptor.family)
        shown = (
            f"{family}: {name} ({s}x)" if s == shown_scale else f"{family}: {name} ({s}x, nearest to {shown_scale}x)"
        )
        columns.append(Column(shown, family, name, to_uint8(out), s))
    boxes = tuple((x, y, crop_w, crop_h) for x, y in corners)
    layout = plan_layout(width, height, shown_scale, len(columns), boxes, len(notes))
    sheet, panels = render_sheet(columns, layout, notes)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_image(output, sheet)  # atomic: a temporary file beside `output`, renamed when complete
    return CompareReport(
        output=output,
        size=layout.size,
        methods=[column.label for column in columns],
        crops=list(layout.crops),
        frame_time=frame_time,
        panels=panels,
        notes=notes,
        seconds=time.monotonic() - t0,
    )
