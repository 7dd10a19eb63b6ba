"""What `remaster compare` puts side by side by default: a module of its own, without numpy or
PIL, so that the command's options are built without importing the grid's machinery."""

from __future__ import annotations

# The announcement's systems at each scale, in its order (waifu2x, Real-ESRGAN, Real-CUGAN), one
# preset each: waifu2x upconv_7 art (its best on clean cel art: 38.8 dB in the table,
# and the fast waifu2x), realesr-animevideov3 (the video tools' default), Real-CUGAN conservative
# (remaster's default). Every family's "no denoise"-like model, so that the columns differ by
# method, not by how much noise each removes.
ANNOUNCEMENT: dict[int, tuple[str, ...]] = {
    2: ("2x-waifu2x-art-no-denoise", "2x-esrgan-animevideo", "2x-conservative"),
    3: ("3x-esrgan-animevideo", "3x-conservative"),
    4: ("4x-esrgan-animevideo", "4x-conservative"),
}
DEFAULT_SCALE = 2
DEFAULT_CROPS = 2  # crop rows under the whole frame: two detail-rich places
MAX_CROPS = 4  # more rows make a sheet taller than a screen at the default crop size
