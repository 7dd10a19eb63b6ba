"""Y'CbCr <-> R'G'B' conversion (remaster.video.colour) against references built from the formulas.

The references here are plain numpy in float64, written from the ITU-R formulas and the siting
rules, not from the module: the luma/colour-difference equations with Kr, Kb from BT.601-7,
BT.709-6 and BT.2020-2; limited range (219, 16, 224, 128) x 2^(bits-8); full range
(2^bits - 1) and 2^(bits-1) (ITU-T H.273, JPEG, FFmpeg); left chroma siting (MPEG-2/H.264
default). Bars were set from measurement (numbers in the comments) with a margin.
"""

from __future__ import annotations

import itertools
import math

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from remaster.video.colour import ColourSpec, planes_to_rgb, rgb_to_planes

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020nc": (0.2627, 0.0593)}
MATRICES = list(KR_KB)
SHIFTS = [(1, 1), (1, 0), (0, 0)]


# ---------------------------------------------------------------- numpy references (float64)


def ref_levels(full: bool, bits: int) -> tuple[float, float, float, float]:
    """(Y scale, Y offset, C scale, C offset): code = scale * signal + offset."""
    if full:
        return 2**bits - 1, 0, 2**bits - 1, 2 ** (bits - 1)
    step = 2 ** (bits - 8)
    return 219 * step, 16 * step, 224 * step, 128 * step


def ref_decode(codes_y, codes_cb, codes_cr, matrix: str, full: bool, bits: int) -> np.ndarray:
    """Codes (already at luma resolution) -> unclamped R'G'B', stacked on a new first axis."""
    kr, kb = KR_KB[matrix]
    ys, yo, cs, co = ref_levels(full, bits)
    y = (np.asarray(codes_y, np.float64) - yo) / ys
    cb = (np.asarray(codes_cb, np.float64) - co) / cs
    cr = (np.asarray(codes_cr, np.float64) - co) / cs
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b])


def ref_encode(rgb: np.ndarray, matrix: str, full: bool, bits: int) -> np.ndarray:
    """R'G'B' (3 x ...) -> unrounded codes (3 x ...) at full resolution."""
    kr, kb = KR_KB[matrix]
    ys, yo, cs, co = ref_levels(full, bits)
    r, g, b = np.asarray(rgb, np.float64)
    y = kr * r + (1 - kr - kb) * g + kb * b
    return np.stack([ys * y + yo, cs * (b - y) / (2 * (1 - kb)) + co, cs * (r - y) / (2 * (1 - kr)) + co])


def ref_upsample(c: np.ndarray, height: int, width: int, shift: tuple[int, int]) -> np.ndarray:
    """Bilinear, pixel by pixel: luma (y, x) reads chroma ((y - 0.5) / 2, x / 2), clamped to the plane."""
    sx, sy = shift
    hc, wc = c.shape
    out = np.empty((height, width))
    for yy in range(height):
        cy = min(max((yy - 0.5) / 2 if sy else yy, 0), hc - 1)
        y0 = math.floor(cy)
        y1, fy = min(y0 + 1, hc - 1), cy - y0
        for xx in range(width):
            cx = min(max(xx / 2 if sx else xx, 0), wc - 1)
            x0 = math.floor(cx)
            x1, fx = min(x0 + 1, wc - 1), cx - x0
            top = (1 - fx) * c[y0, x0] + fx * c[y0, x1]
            bottom = (1 - fx) * c[y1, x0] + fx * c[y1, x1]
            out[yy, xx] = (1 - fy) * top + fy * bottom
    return out


def ref_downsample(c: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """[1, 2, 1] / 4 on even columns, mean of rows 2j and 2j + 1, edges replicated, pixel by pixel."""
    sx, sy = shift
    height, width = c.shape
    if sx:
        c = np.array(
            [
                [(c[r, max(x - 1, 0)] + 2 * c[r, x] + c[r, min(x + 1, width - 1)]) / 4 for x in range(0, width, 2)]
                for r in range(height)
            ]
        )
    if sy:
        c = np.array([(c[r] + c[min(r + 1, height - 1)]) / 2 for r in range(0, height, 2)])
    return c


# ---------------------------------------------------------------- helpers


def flat_planes(codes: tuple[int, int, int], spec: ColourSpec, height: int, width: int, dtype=torch.int32):
    hc, wc = -(-height // 2 ** spec.chroma_shift[1]), -(-width // 2 ** spec.chroma_shift[0])
    y = torch.full((1, height, width), codes[0], dtype=dtype)
    return y, torch.full((1, hc, wc), codes[1], dtype=dtype), torch.full((1, hc, wc), codes[2], dtype=dtype)


def flat_rgb(colour, height: int, width: int) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, height, width).contiguous()


def smooth_picture(frames: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Random values on a 4 x 5 grid, bicubically enlarged: smooth, every hue, odd sizes allowed."""
    grid = torch.rand(frames, 3, 4, 5, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("matrix", MATRICES)
def test_flat_decode_matches_reference(matrix: str, full: bool, bits: int) -> None:
    spec = ColourSpec(matrix, full, bits, (1, 1))
    rng = np.random.default_rng(bits + 2 * full)
    top = 2**bits - 1
    codes = [(0, 0, top), (top, top, 0), (16 << (bits - 8), 128 << (bits - 8), 128 << (bits - 8))]
    codes += [tuple(int(c) for c in rng.integers(0, top + 1, 3)) for _ in range(20)]
    for code in codes:
        got = planes_to_rgb(*flat_planes(code, spec, 9, 7), spec)
        assert got.shape == (1, 3, 9, 7) and got.dtype == torch.float32
        want = np.clip(ref_decode(*code, matrix, full, bits), 0, 1)
        err = np.abs(got[0].numpy() - want[:, None, None]).max()
        assert err < 1e-4, (code, err)  # measured: < 1.2e-7


@pytest.mark.parametrize("shift", [(1, 1), (1, 0), (0, 1)])
@pytest.mark.parametrize("size", [(7, 9), (6, 8)])
def test_decode_siting_matches_reference(size: tuple[int, int], shift: tuple[int, int]) -> None:
    """Non-flat chroma: the upsampler reads chroma where left siting puts it, edges clamped."""
    height, width = size
    spec = ColourSpec("bt709", False, 10, shift)
    rng = np.random.default_rng(5)
    hc, wc = spec.chroma_size(height, width)
    y = rng.integers(64, 941, (height, width))
    u, v = rng.integers(64, 961, (2, hc, wc))
    got = planes_to_rgb(*(torch.from_numpy(p)[None] for p in (y, u, v)), spec)[0].numpy()
    want = np.clip(
        ref_decode(y, ref_upsample(u, height, width, shift), ref_upsample(v, height, width, shift), "bt709", False, 10),
        0,
        1,
    )
    assert np.abs(got - want).max() < 1e-4  # measured: < 2e-7


def test_decode_accepts_any_integer_dtype_and_batches() -> None:
    spec = ColourSpec("bt601", False, 10, (1, 1))
    rng = np.random.default_rng(3)
    y, (u, v) = rng.integers(0, 1024, (3, 11, 13)), rng.integers(0, 1024, (2, 3, 6, 7))
    reference = planes_to_rgb(*(torch.from_numpy(p).to(torch.int32) for p in (y, u, v)), spec)
    for dtype in (torch.int16, torch.uint16, torch.int64):
        assert torch.equal(planes_to_rgb(*(torch.from_numpy(p).to(dtype) for p in (y, u, v)), spec), reference)
    # N frames at once give what each frame gives alone.
    for i in range(3):
        alone = planes_to_rgb(*(torch.from_numpy(p[i : i + 1]).to(torch.int32) for p in (y, u, v)), spec)
        assert torch.equal(alone, reference[i : i + 1])
    assert reference.min() >= 0 and reference.max() <= 1  # out-of-gamut codes are clamped


# ---------------------------------------------------------------- encoding


def test_known_values() -> None:
    white, black = flat_rgb((1, 1, 1), 4, 6), flat_rgb((0, 0, 0), 4, 6)
    spec8 = ColourSpec("bt709", False, 8, (1, 1))
    for rgb, luma in ((white, 235), (black, 16)):
        y, u, v = rgb_to_planes(rgb, spec8)
        assert y.dtype == u.dtype == v.dtype == torch.uint8
        assert (y == luma).all() and (u == 128).all() and (v == 128).all()
    assert tuple(u.shape) == (1, 2, 3)
    spec10 = ColourSpec("bt709", False, 10, (1, 1))
    for rgb, luma in ((white, 940), (black, 64)):
        y, u, v = rgb_to_planes(rgb, spec10)
        assert y.dtype == torch.int16  # two bytes a sample, as the encoder takes them
        assert (y == luma).all() and (u == 512).all() and (v == 512).all()
    # And back: the nominal codes decode to exactly black and white.
    assert torch.equal(planes_to_rgb(*flat_planes((235, 128, 128), spec8, 4, 6), spec8), white)
    assert torch.equal(planes_to_rgb(*flat_planes((64, 512, 512), spec10, 4, 6), spec10), black)
    # Full range: white is 255 and grey chroma 128; pure blue's Cb would be 255.5, so it is clamped.
    full8 = ColourSpec("bt709", True, 8, (0, 0))
    y, u, v = rgb_to_planes(white, full8)
    assert (y == 255).all() and (u == 128).all() and (v == 128).all()
    y, u, v = rgb_to_planes(flat_rgb((0, 0, 1), 2, 2), full8)
    assert (y == 18).all() and (u == 255).all()  # 255 * 0.0722 = 18.4
    # 8-bit limited BT.601 primaries (well-known table values).
    spec601 = ColourSpec("bt601", False, 8, (0, 0))
    primaries = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    codes = [[int(p[0, 0, 0]) for p in rgb_to_planes(flat_rgb(c, 1, 1), spec601)] for c in primaries]
    assert codes == [[81, 90, 240], [145, 54, 34], [41, 240, 110]]


@pytest.mark.parametrize("shift", [(1, 1), (1, 0), (0, 1)])
@pytest.mark.parametrize("size", [(7, 9), (6, 8)])
@pytest.mark.parametrize("full", [False, True])
def test_encode_matches_reference(full: bool, size: tuple[int, int], shift: tuple[int, int]) -> None:
    height, width = size
    spec = ColourSpec("bt601", full, 10, shift)
    rgb = np.random.default_rng(7).random((3, height, width))
    got = rgb_to_planes(torch.from_numpy(rgb)[None], spec)  # float64 input is accepted too
    codes = ref_encode(rgb, "bt601", full, 10)
    want = [codes[0], ref_downsample(codes[1], shift), ref_downsample(codes[2], shift)]
    for plane, expected in zip(got, want, strict=True):
        expected = np.clip(np.floor(expected + 0.5), 0, 1023)
        assert plane.shape[1:] == expected.shape
        # float32 against float64 could straddle a .5 only by luck; none does here (measured).
        assert np.array_equal(plane[0].numpy(), expected)


@pytest.mark.parametrize("shift", [(1, 1), (1, 0), (0, 1)])
@pytest.mark.parametrize("size", [(23, 37), (24, 36)])
def test_linear_ramp_round_trip_is_exact_inside(size: tuple[int, int], shift: tuple[int, int]) -> None:
    """Both filters reproduce a linear ramp where they are centred, so away from the edges a ramp
    comes back up to quantisation only. A chroma sample read from the wrong place (a half-pixel
    siting error) would miss by half the ramp's step, ~0.8 of an 8-bit level here."""
    height, width = size
    spec = ColourSpec("bt709", False, 16, shift)
    yy, xx = torch.linspace(0, 1, height).view(height, 1), torch.linspace(0, 1, width).view(1, width)
    rgb = torch.stack([0.2 + 0.6 * xx + 0 * yy, 0.8 - 0.5 * yy + 0 * xx, 0.1 + 0.4 * xx + 0.4 * yy])[None]
    back = planes_to_rgb(*rgb_to_planes(rgb, spec), spec)
    inside = (back - rgb)[:, :, 2:-2, 2:-2].abs().max().item() * 255
    assert inside < 0.02  # measured 0.0060 8-bit levels (16-bit quantisation)


# ---------------------------------------------------------------- round trips

# Measured PSNR (dB, [0, 1] peak) over all three matrices, both ranges, 23x37 and 24x36:
# 4:2:0 36.4-40.0, 4:2:2 39.3-45.7 (chroma detail the subsampling cannot keep: these pictures
# change hue within a few pixels); 4:4:4 8-bit 52.9-54.3, 10-bit 64.9-66.4, 16-bit 100.8-102.6.
PSNR_BARS = {(1, 1): 34.0, (1, 0): 37.0, (0, 0): {8: 51.0, 10: 63.0, 16: 99.0}}


@pytest.mark.parametrize("bits", [8, 10, 16])
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("size", [(23, 37), (24, 36)])
def test_smooth_round_trip(size: tuple[int, int], shift: tuple[int, int], bits: int) -> None:
    height, width = size
    rgb = smooth_picture(2, height, width, seed=bits)
    # The same picture with a flat block in each frame: the block's inside (3 pixels from its
    # border, past both filters' reach) must come back exactly as the same colour does alone.
    colour = (118 / 255, 178 / 255, 232 / 255)
    blocked = rgb.clone()
    blocked[:, :, 4:16, 6:22] = torch.tensor(colour).view(1, 3, 1, 1)
    bar = PSNR_BARS[shift][bits] if shift == (0, 0) else PSNR_BARS[shift]
    for matrix, full in itertools.product(MATRICES, (False, True)):
        spec = ColourSpec(matrix, full, bits, shift)
        y, u, v = rgb_to_planes(rgb, spec)
        assert y.dtype == u.dtype == v.dtype == (torch.uint8 if bits == 8 else torch.int16)
        assert tuple(y.shape) == (2, height, width)
        assert tuple(u.shape) == tuple(v.shape) == (2, *spec.chroma_size(height, width))
        assert psnr(planes_to_rgb(y, u, v, spec), rgb) > bar, (matrix, full)
        back = planes_to_rgb(*rgb_to_planes(blocked, spec), spec)
        alone = planes_to_rgb(*rgb_to_planes(flat_rgb(colour, 1, 1), spec), spec)[0, :, 0, 0]
        assert torch.equal(back[:, :, 7:13, 9:19], alone.view(1, 3, 1, 1).expand(2, 3, 6, 10))


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_flat_codes_round_trip_exactly_at_8_bits(matrix: str, full: bool) -> None:
    """Every 8-bit code triple whose colour is inside the R'G'B' cube survives planes -> RGB ->
    planes unchanged (measured exhaustively over all 2^24 triples: 2.6-4.1 million of them, no
    exception). This is the exact 8-bit round trip: RGB -> planes -> RGB cannot be, see below."""
    spec = ColourSpec(matrix, full, 8, (1, 1))
    grid = np.array(list(itertools.product(range(0, 256, 5), repeat=3)))
    rgb = ref_decode(*grid.T, matrix, full, 8)
    inside = grid[((rgb >= 0) & (rgb <= 1)).all(axis=0)]
    assert len(inside) > 10_000
    # One flat 3 x 5 picture per triple, as N frames.
    y, u, v = (torch.from_numpy(inside[:, i]).to(torch.uint8) for i in range(3))
    y = y.view(-1, 1, 1).expand(-1, 3, 5)
    u, v = (c.view(-1, 1, 1).expand(-1, 2, 3) for c in (u, v))
    back = rgb_to_planes(planes_to_rgb(y, u, v, spec), spec)
    for got, want in zip(back, (y, u, v), strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("matrix", MATRICES)
def test_flat_rgb24_round_trip(matrix: str, full: bool) -> None:
    """8-bit R'G'B' colours: exact through 10-bit planes; through 8-bit planes within the error the
    reference predicts (nearest codes, decoded), at most 2 levels (limited) or 1 (full)."""
    grid = np.array(list(itertools.product(range(0, 256, 15), repeat=3)), np.float64)
    rgb = torch.from_numpy(grid.T / 255).float().view(1, 3, 1, -1)  # one row of flat 1-pixel colours
    for bits in (10, 8):
        spec = ColourSpec(matrix, full, bits, (0, 0))
        back = planes_to_rgb(*rgb_to_planes(rgb, spec), spec)[0, :, 0].double().mul(255).round().numpy()
        if bits == 10:
            assert np.array_equal(back, grid.T)
        else:
            raw = ref_encode(grid.T / 255, matrix, full, 8)
            codes = np.clip(np.floor(raw + 0.5), 0, 255)
            predicted = np.round(np.clip(ref_decode(*codes, matrix, full, 8), 0, 1) * 255)
            # Full range puts many colours exactly on a half code (G = B with R - G odd gives
            # Cr = 128 + (R - G) / 2): float32 may round those either way, so they are left out.
            ties = (np.abs(raw - np.floor(raw) - 0.5) < 1e-6).any(axis=0)
            assert ties.mean() < 0.2
            assert np.array_equal(back[:, ~ties], predicted[:, ~ties])
            assert np.abs(back - grid.T).max() <= (1 if full else 2)


def test_some_rgb24_colours_have_no_8bit_code() -> None:
    """Why the 8-bit RGB -> planes -> RGB round trip is not exact: 8-bit limited Y'CbCr has about
    2.7 million in-gamut code triples for 16.8 million rgb24 colours. (118, 178, 232) under BT.709
    limited is one of the many (84%) that no 8-bit code decodes to; we give back (117, 178, 232)."""
    colour = np.array([118, 178, 232])
    codes = np.floor(ref_encode(colour / 255, "bt709", False, 8) + 0.5)
    near = [codes + d for d in itertools.product(range(-2, 3), repeat=3)]
    decoded = [np.round(ref_decode(*c, "bt709", False, 8) * 255) for c in near]
    assert not any(np.array_equal(d, colour) for d in decoded)
    spec = ColourSpec("bt709", False, 8, (1, 1))
    back = planes_to_rgb(*rgb_to_planes(flat_rgb(colour / 255, 2, 2), spec), spec)[0, :, 0, 0]
    assert back.mul(255).round().tolist() == [117, 178, 232]


# ---------------------------------------------------------------- FFmpeg (swscale) agreement


def av_frame(planes: tuple[torch.Tensor, ...], colorspace: Colorspace, color_range: ColorRange) -> av.VideoFrame:
    """A yuv420p VideoFrame holding our planes, copied row by row into its padded lines."""
    height, width = planes[0].shape[1:]
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, planes, strict=True):
        lines = np.zeros((plane.height, plane.line_size), np.uint8)
        lines[:, : plane.width] = data[0].numpy()
        plane.update(lines)
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


@pytest.mark.parametrize(
    "matrix, colorspace, full",
    [("bt709", Colorspace.ITU709, False), ("bt709", Colorspace.ITU709, True), ("bt601", Colorspace.ITU601, False)],
)
def test_agrees_with_swscale_on_flat_colours(matrix: str, colorspace: Colorspace, full: bool) -> None:
    """swscale, reading the frame's own tags, decodes our planes to what we decode them to:
    within rounding (measured 0.50) with ACCURATE_RND, within 3 levels on its default fast path
    (measured 2.71 BT.709, 2.67 BT.601). So FFmpeg uses the same matrix, range and full-range
    chroma convention. Tagged with the wrong matrix, it is far off, so the check can fail."""
    spec = ColourSpec(matrix, full, 8, (1, 1))
    color_range = ColorRange.JPEG if full else ColorRange.MPEG
    wrong = Colorspace.ITU601 if colorspace == Colorspace.ITU709 else Colorspace.ITU709
    accurate = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    rng = np.random.default_rng(11)
    worst_fast = worst_accurate = worst_wrong = 0.0
    for colour in rng.integers(0, 256, (40, 3)):
        planes = rgb_to_planes(flat_rgb(colour / 255, 6, 8), spec)
        ours = planes_to_rgb(*planes, spec)[0, :, 0, 0].double().mul(255).numpy()
        frame = av_frame(planes, colorspace, color_range)
        fast = frame.to_ndarray(format="rgb24")
        precise = frame.to_ndarray(format="rgb24", interpolation=accurate)
        assert (precise == precise[0, 0]).all()  # flat in, flat out
        worst_fast = max(worst_fast, np.abs(fast - ours).max())
        worst_accurate = max(worst_accurate, np.abs(precise - ours).max())
        other = av_frame(planes, wrong, color_range).to_ndarray(format="rgb24", interpolation=accurate)
        worst_wrong = max(worst_wrong, np.abs(other - ours).max())
    assert worst_accurate < 0.6
    assert worst_fast <= 3
    assert worst_wrong > 10


# ---------------------------------------------------------------- interface


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="matrix"):
        ColourSpec("bt470", False, 8, (1, 1))
    with pytest.raises(ValueError, match="bit depth"):
        ColourSpec("bt709", False, 9, (1, 1))
    with pytest.raises(ValueError, match="chroma_shift"):
        ColourSpec("bt709", False, 8, (2, 2))
    spec = ColourSpec("bt709", False, 8, (1, 1))
    y, u, v = flat_planes((16, 128, 128), spec, 5, 7)
    with pytest.raises(ValueError, match="expected"):
        planes_to_rgb(y, u[:, :, :-1], v[:, :, :-1], spec)
    with pytest.raises(TypeError, match=r"^plane y must hold integer codes, not torch\.float32$"):
        planes_to_rgb(y.float(), u, v, spec)
    with pytest.raises(TypeError, match=r"^rgb must be a float tensor in \[0, 1\], not torch\.uint8$"):
        rgb_to_planes(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), spec)
    # Its own message: unpacking 4 channels into r, g, b would raise a ValueError by itself.
    with pytest.raises(ValueError, match=r"^rgb must be N x 3 x H x W, got shape \(1, 4, 2, 2\)$"):
        rgb_to_planes(torch.zeros(1, 4, 2, 2), spec)


def test_out_of_range_rgb_is_clamped_first() -> None:
    spec = ColourSpec("bt709", False, 8, (1, 1))
    over = flat_rgb((1.3, 1.2, 1.1), 2, 2)
    clamped = rgb_to_planes(over.clamp(0, 1), spec)
    assert all(torch.equal(a, b) for a, b in zip(rgb_to_planes(over, spec), clamped, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    spec = ColourSpec("bt709", False, 10, (1, 1))
    rgb = smooth_picture(2, 23, 37, seed=1)
    cpu = rgb_to_planes(rgb, spec)
    gpu = rgb_to_planes(rgb.cuda(), spec)
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        # Fused multiply-adds on the GPU may tip a value sitting on .5 by one code.
        assert (a - b.cpu()).abs().max() <= 1
    back = planes_to_rgb(*(p.cuda() for p in cpu), spec)
    assert back.device.type == "cuda"
    assert (back.cpu() - planes_to_rgb(*cpu, spec)).abs().max() < 1e-5


def test_16_bit_codes_above_32767_come_back_as_unsigned_int16_bits() -> None:
    """10- to 16-bit planes are int16, two bytes a sample (half of int32's bytes over PCIe): a 16-bit
    code above 32767 is the same bits, read back as uint16 by numpy and by planes_to_rgb."""
    white = flat_rgb((1, 1, 1), 2, 4)
    spec16 = ColourSpec("bt709", True, 16, (1, 1))
    y, u, v = rgb_to_planes(white, spec16)
    assert y.dtype == torch.int16 and y.element_size() == 2
    assert (y.numpy().view(np.uint16) == 65535).all() and (u.numpy().view(np.uint16) == 32768).all()
    assert torch.equal(planes_to_rgb(y, u, v, spec16), white)
    limited = ColourSpec("bt709", False, 16, (1, 1))
    assert (rgb_to_planes(white, limited)[0].numpy().view(np.uint16) == 235 << 8).all()
