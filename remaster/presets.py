"""Presets: TOML files naming a model (and, later, encoder defaults), built in or the user's.

Built-in presets live in `presets/`; a user's go in $REMASTER_HOME/presets or
~/.config/remaster/presets (see `resources.user_dir`), and win over a built-in of the same name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from remaster.errors import UsageError
from remaster.resources import search_dirs


@dataclass(frozen=True)
class Preset:
    name: str
    model: str  # a packaged model name, a .pth stem in a weights folder, or a path
    description: str
    path: Path


def _read(path: Path) -> Preset:
    try:
        data = tomllib.loads(path.read_text())
        model = data["model"]["name"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a valid preset ({type(exc).__name__}: {exc})") from None
    return Preset(name=path.stem, model=str(model), description=str(data.get("description", "")), path=path)


def load_presets() -> dict[str, Preset]:
    found: dict[str, Preset] = {}
    for folder in reversed(search_dirs("presets")):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = _read(path)
    return dict(sorted(found.items()))


def get_preset(name: str) -> Preset:
    presets = load_presets()
    if name not in presets:
        raise UsageError(f"unknown preset {name!r}; valid presets: {', '.join(presets)}")
    return presets[name]
