"""Where remaster finds its data: the `weights/` and `presets/` folders, built in and the user's."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # remaster/, two up from remaster/core/resources.py


def builtin_dir(name: str) -> Path:
    """`weights` or `presets` as shipped: inside the wheel, or at the top of a source checkout."""
    packaged = _PACKAGE / "_data" / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name


def user_dir(name: str) -> Path:
    """The user's own `weights` or `presets` folder: $REMASTER_HOME/NAME if set, else
    $XDG_CONFIG_HOME/remaster/NAME (~/.config/remaster/NAME)."""
    home = os.environ.get("REMASTER_HOME")
    if home:
        return Path(home) / name
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "remaster" / name


def search_dirs(name: str) -> list[Path]:
    """The user's folder first, so that a user's file of the same name wins."""
    return [user_dir(name), builtin_dir(name)]


def named_tomls(folders: list[Path]) -> dict[str, Path]:
    """NAME -> NAME.toml across `folders` (most important first): a user's file wins over a
    built-in one of the same name. Sorted by name."""
    found: dict[str, Path] = {}
    for folder in reversed(folders):
        if folder.is_dir():
            found.update((path.stem, path) for path in sorted(folder.glob("*.toml")))
    return dict(sorted(found.items()))
