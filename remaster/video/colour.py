"""Y'CbCr planes <-> R'G'B' with the exact ITU-R coefficients, in torch, on the planes' own device.

Why not swscale: its default (non-ACCURATE_RND) path rounds its fixed-point coefficients and
is 1-2 code values off for BT.709 and about 1 off in green for BT.601, which the upscaler
then faithfully enlarges. Here every step is float32 arithmetic from the published numbers
(float32 has a 24-bit mantissa, plenty for 16-bit codes), and it runs on whichever device the
tensors are on, so a CUDA pipeline never copies frames to the host just to convert them.

Conventions, each with the document it comes from:

* Luma and colour difference (all three Recommendations use this form):
  Y' = Kr R' + Kg G' + Kb B',  Kg = 1 - Kr - Kb
  Cb = (B' - Y') / (2 (1 - Kb)),  Cr = (R' - Y') / (2 (1 - Kr))
  with Y' in [0, 1] and Cb, Cr in [-0.5, 0.5]. The inverse is exact algebra, not a printed
  3x3 matrix, so BT.601's rounded factors (0.564, 0.713) do not creep in.
* Limited ("tv", "mpeg") range: Y code = (219 Y' + 16) 2^(bits-8), C code = (224 C + 128)
  2^(bits-8), i.e. Y 16..235 and C 16..240 at 8 bits, 64..940 and 64..960 at 10 bits.
* Full ("pc", "jpeg") range: Y code = (2^bits - 1) Y', C code = (2^bits - 1) C + 2^(bits-1).
  Chroma is scaled by 2^bits - 1, like luma, and offset by the half-way code 2^(bits-1); that is
  what ITU-T H.273 (VideoFullRangeFlag = 1), BT.2100-2 ("full" range) and JPEG/JFIF use, and
  what FFmpeg implements. The price of that convention: C = +0.5 maps to 2^bits - 0.5, one half
  code above the largest code, so fully saturated blue/red chroma is clamped to 2^bits - 1.
* Quantisation: round half up, floor(x + 0.5) (the Recommendations' INT[]), then clamp to the
  codes the bit depth has, [0, 2^bits - 1].
* Chroma siting, MPEG-2 / H.264 default (H.264 Annex E chroma_sample_loc_type 0, FFmpeg's
  AVCHROMA_LOC_LEFT): a chroma sample is horizontally co-sited with the even luma columns and,
  for 4:2:0, vertically half-way between luma rows 2j and 2j + 1. For 4:2:2 (BT.601-7 and
  BT.709-6 both specify co-sited 4:2:2) only the horizontal rule applies.
* Upsampling (planes -> RGB): bilinear at those positions, edges clamped. Luma column x reads
  chroma coordinate x / 2, luma row y reads chroma coordinate (y - 0.5) / 2.
* Downsampling (RGB -> planes): horizontally a [1, 2, 1] / 4 filter centred on the co-sited even
  column (the shortest symmetric low-pass centred there; it is the transpose of the bilinear
  upsampler), vertically the mean of rows 2j and 2j + 1 (whose centre is the chroma row's
  position); edges replicate. Both filters sum to 1, so flat areas come back bit-exact.

Odd sizes are fine everywhere: a chroma plane has ceil(size / 2^shift) samples along an axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# (Kr, Kb) per matrix; Kg = 1 - Kr - Kb.
LUMA_COEFFICIENTS: dict[str, tuple[float, float]] = {
    # ITU-R BT.601-7 Part A item 2.5.1: E'Y = 0.299 E'R + 0.587 E'G + 0.114 E'B.
    "bt601": (0.299, 0.114),
    # ITU-R BT.709-6 Part 2 item 3.2: E'Y = 0.2126 E'R + 0.7152 E'G + 0.0722 E'B
    # (item 3.3's divisors 1.8556 and 1.5748 are exactly 2 (1 - Kb) and 2 (1 - Kr)).
    "bt709": (0.2126, 0.0722),
    # ITU-R BT.2020-2 Table 4, non-constant luminance: Y' = 0.2627 R' + 0.6780 G' + 0.0593 B'
    # (divisors 1.8814 and 1.4746, again 2 (1 - Kb) and 2 (1 - Kr)).
    "bt2020nc": (0.2627, 0.0593),
}
# Bit depths of the pixel formats the pipeline meets (yuv4xxp, p10/p12, p16).
BIT_DEPTHS = (8, 10, 12, 16)
# Limited-range levels at 8 bits, scaled by 2^(bits - 8) for deeper codes: BT.601-7 Part A
# item 2.5.3, BT.709-6 Part 2 item 3.4, BT.2020-2 Table 5 (identical in all three).
LIMITED_Y_SCALE = 219  # nominal black 16 to nominal white 235
LIMITED_Y_OFFSET = 16
LIMITED_C_SCALE = 224  # nominal 16..240 around the achromatic 128
LIMITED_C_OFFSET = 128
# Luma rows between consecutive 4:2:0 chroma rows is 2; a chroma row sits half-way between its
# two luma rows (H.264 Annex E Figure E-1, chroma_sample_loc_type 0), i.e. 0.5 luma rows down.
VERTICAL_SITING_OFFSET = 0.5


@dataclass(frozen=True)
class ColourSpec:
    """How the Y'CbCr planes of a stream are coded.

    matrix: "bt601" | "bt709" | "bt2020nc" (Kr, Kb from BT.601-7 / BT.709-6 / BT.2020-2).
    full_range: False = limited ("tv") range, Y 16..235 and C 16..240 scaled by 2^(bits-8);
        True = full ("pc") range, the H.273 / JPEG convention described in the module docstring.
    bits: 8, 10, 12 or 16.
    chroma_shift: log2 subsampling (x, y): (1, 1) = 4:2:0, (1, 0) = 4:2:2, (0, 0) = 4:4:4
        ((0, 1), 4:4:0, works too).
    """

    matrix: str
    full_range: bool
    bits: int
    chroma_shift: tuple[int, int]

    def __post_init__(self) -> None:
        # Checked here, once, so that a bad spec from a probe fails before any frame is decoded.
        if self.matrix not in LUMA_COEFFICIENTS:
            raise ValueError(f"unknown matrix {self.matrix!r}; use one of {', '.join(LUMA_COEFFICIENTS)}")
        if self.bits not in BIT_DEPTHS:
            raise ValueError(f"unsupported bit depth {self.bits}; use one of {BIT_DEPTHS}")
        shift = tuple(self.chroma_shift)
        if len(shift) != 2 or any(s not in (0, 1) for s in shift):
            raise ValueError(f"unsupported chroma_shift {self.chroma_shift!r}; each of (x, y) must be 0 or 1")

    def chroma_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of a chroma plane for a picture of height x width: ceil(size / 2^shift)."""
        sx, sy = self.chroma_shift
        return -(-height >> sy), -(-width >> sx)

    @property
    def code_dtype(self) -> torch.dtype:
        """dtype of rgb_to_planes' planes: uint8 at 8 bits; otherwise int16 holding the unsigned
        16-bit codes bit for bit (a 16-bit code above 32767 reads as negative: view it as uint16,
        as `unsigned_codes` and numpy's `.view(np.uint16)` do). Two bytes a sample, as the encoder
        takes them: half of int32's bytes to copy from the GPU, and torch's uint16 has few
        operators (no arithmetic on CUDA), where int16 has them."""
        return torch.uint8 if self.bits == 8 else torch.int16


def unsigned_codes(plane: Tensor) -> Tensor:
    """Integer codes as float32; int16 planes read as the unsigned 16-bit codes they hold."""
    codes = plane.to(torch.float32)
    if plane.dtype == torch.int16:
        codes = torch.where(codes < 0, codes + 65536.0, codes)
    return codes


def _levels(spec: ColourSpec) -> tuple[float, float, float, float]:
    """(luma scale, luma offset, chroma scale, chroma offset) from signal units to code values."""
    if spec.full_range:
        # ITU-T H.273 VideoFullRangeFlag = 1: (2^n - 1) E' for Y, (2^n - 1) E' + 2^(n-1) for C.
        peak = float(2**spec.bits - 1)
        return peak, 0.0, peak, float(2 ** (spec.bits - 1))
    step = float(2 ** (spec.bits - 8))  # deeper limited-range codes are the 8-bit ones times 2^(n-8)
    return LIMITED_Y_SCALE * step, LIMITED_Y_OFFSET * step, LIMITED_C_SCALE * step, LIMITED_C_OFFSET * step


def _check_integer(name: str, plane: Tensor) -> None:
    if plane.dtype.is_floating_point or plane.dtype.is_complex or plane.dtype == torch.bool:
        raise TypeError(f"plane {name} must hold integer codes, not {plane.dtype}")


def _upsample_axis(plane: Tensor, dim: int, size: int, offset: float) -> Tensor:
    """Bilinear 2x upsampling along `dim` to `size` samples, output i reading input (i - offset) / 2.

    The coordinate is clamped to [0, n - 1], which is the same as replicating the edge samples.
    Done as two gathers and a lerp, so it is vectorised and runs on the plane's device.
    """
    n = plane.shape[dim]
    pos = ((torch.arange(size, device=plane.device, dtype=torch.float32) - offset) * 0.5).clamp(0, n - 1)
    first = pos.floor()
    weight = pos - first  # 0, 0.25, 0.5 or 0.75: exact in float32
    first = first.long()
    second = (first + 1).clamp(max=n - 1)
    shape = [1] * plane.dim()
    shape[dim] = size
    # lerp(a, b, w) = a + w (b - a): exactly a where a == b, so flat chroma does not move.
    return torch.lerp(plane.index_select(dim, first), plane.index_select(dim, second), weight.view(shape))


def _downsample_columns(plane: Tensor) -> Tensor:
    """[1, 2, 1] / 4 centred on the even columns (co-sited chroma), edges replicated."""
    width = plane.shape[-1]
    centre = torch.arange(0, width, 2, device=plane.device)
    left = (centre - 1).clamp(min=0)
    right = (centre + 1).clamp(max=width - 1)
    # Written as 0.5 (c + 0.5 (l + r)) so a flat row gives back exactly its value (l + r = 2a,
    # halves and sums of equal floats are exact), which 0.25 l + 0.5 c + 0.25 r also does but
    # (l + 2c + r) / 4 need not (3a can round).
    return 0.5 * (plane.index_select(-1, centre) + 0.5 * (plane.index_select(-1, left) + plane.index_select(-1, right)))


def _downsample_rows(plane: Tensor) -> Tensor:
    """Mean of rows 2j and 2j + 1 (chroma sited half-way between them); an odd last row pairs with itself."""
    height = plane.shape[-2]
    top = torch.arange(0, height, 2, device=plane.device)
    bottom = (top + 1).clamp(max=height - 1)
    return 0.5 * (plane.index_select(-2, top) + plane.index_select(-2, bottom))


def planes_to_rgb(y: Tensor, u: Tensor, v: Tensor, spec: ColourSpec) -> Tensor:
    """N x H x W luma and N x ceil(H/2^sy) x ceil(W/2^sx) chroma integer planes (any integer dtype:
    uint8, int32, uint16, or int16 holding unsigned codes as `ColourSpec.code_dtype` says)
    -> N x 3 x H x W float32 R'G'B' in [0, 1] (clamped), same device.

    u is Cb, v is Cr. Codes outside the nominal range (limited-range super-whites, for instance)
    are decoded as they are and only the resulting R'G'B' is clamped.
    """
    for name, plane in (("y", y), ("u", u), ("v", v)):
        _check_integer(name, plane)
        if plane.dim() != 3:
            raise ValueError(f"plane {name} must be N x H x W, got shape {tuple(plane.shape)}")
    frames, height, width = y.shape
    expected = (frames, *spec.chroma_size(height, width))
    if tuple(u.shape) != expected or tuple(v.shape) != expected:
        raise ValueError(
            f"chroma planes {tuple(u.shape)} and {tuple(v.shape)} do not fit luma {tuple(y.shape)} "
            f"with chroma_shift {spec.chroma_shift}: expected {expected}"
        )
    if u.device != y.device or v.device != y.device:
        raise ValueError(f"planes on different devices: {y.device}, {u.device}, {v.device}")

    y_scale, y_offset, c_scale, c_offset = _levels(spec)
    luma = (unsigned_codes(y) - y_offset) / y_scale
    sx, sy = spec.chroma_shift
    chroma = []
    for plane in (u, v):
        c = (unsigned_codes(plane) - c_offset) / c_scale
        # Upsample in signal units (linear in the codes, so the order does not matter); rows first
        # works on the smaller plane.
        if sy:
            c = _upsample_axis(c, 1, height, VERTICAL_SITING_OFFSET)
        if sx:
            c = _upsample_axis(c, 2, width, 0.0)  # co-sited: luma column x reads chroma x / 2
        chroma.append(c)
    cb, cr = chroma

    kr, kb = LUMA_COEFFICIENTS[spec.matrix]
    kg = 1.0 - kr - kb
    # The exact inverse of Y' = Kr R' + Kg G' + Kb B', Cb = (B' - Y') / (2 (1 - Kb)),
    # Cr = (R' - Y') / (2 (1 - Kr)).
    r = luma + (2.0 * (1.0 - kr)) * cr
    b = luma + (2.0 * (1.0 - kb)) * cb
    g = (luma - kr * r - kb * b) / kg
    return torch.stack((r, g, b), dim=1).clamp_(0.0, 1.0)


def rgb_to_planes(rgb: Tensor, spec: ColourSpec) -> tuple[Tensor, Tensor, Tensor]:
    """N x 3 x H x W float R'G'B' in [0, 1] -> integer planes (Y, Cb, Cr).

    The planes are N x H x W and N x ceil(H/2^sy) x ceil(W/2^sx), of dtype torch.uint8 when
    bits == 8 and torch.int16 otherwise (`ColourSpec.code_dtype`: the unsigned codes bit for bit),
    on rgb's device, quantised by round-half-up (floor(x + 0.5)) and clamped to [0, 2^bits - 1].
    Any float dtype is accepted and computed in float32. Values outside [0, 1] (a model's
    overshoot at edges) are clamped per channel first: they have no meaning on a display, and
    limited range would otherwise carry them into the foot- and headroom codes.
    """
    if not rgb.dtype.is_floating_point:
        raise TypeError(f"rgb must be a float tensor in [0, 1], not {rgb.dtype}")
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be N x 3 x H x W, got shape {tuple(rgb.shape)}")
    r, g, b = rgb.to(torch.float32).clamp(0.0, 1.0).unbind(1)

    kr, kb = LUMA_COEFFICIENTS[spec.matrix]
    kg = 1.0 - kr - kb
    luma = kr * r + kg * g + kb * b
    cb = (b - luma) / (2.0 * (1.0 - kb))
    cr = (r - luma) / (2.0 * (1.0 - kr))

    sx, sy = spec.chroma_shift
    chroma = []
    for c in (cb, cr):
        if sx:
            c = _downsample_columns(c)
        if sy:
            c = _downsample_rows(c)
        chroma.append(c)

    y_scale, y_offset, c_scale, c_offset = _levels(spec)
    top = float(2**spec.bits - 1)
    dtype = spec.code_dtype

    def quantise(signal: Tensor, scale: float, offset: float) -> Tensor:
        codes = torch.floor(signal * scale + offset + 0.5).clamp_(0.0, top)
        if dtype == torch.int16:  # through int32, whose narrowing keeps the low 16 bits: codes above 32767
            return codes.to(torch.int32).to(torch.int16)
        return codes.to(dtype)

    return (
        quantise(luma, y_scale, y_offset),
        quantise(chroma[0], c_scale, c_offset),
        quantise(chroma[1], c_scale, c_offset),
    )
