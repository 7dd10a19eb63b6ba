"""Presets: TOML files naming a model and the encoder defaults for video, built in or the user's.

`[model] name = "..."` names a packaged model (or a weights folder's file by stem); `[model] path =
"..."` a model file of any supported architecture, relative to the preset's folder.

Built-in presets live in `presets/`; a user's go in $REMASTER_HOME/presets or
~/.config/remaster/presets (see `resources.user_dir`), and win over a built-in of the same name.
An `[encoder]` table may leave keys out: they take the values of `EncoderDefaults`.
"""

from __future__ import annotations

import difflib
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from remaster.core.errors import UsageError
from remaster.core.resources import named_tomls, search_dirs


@dataclass(frozen=True)
class EncoderDefaults:
    codec: str = "x265"
    crf: float = 16
    speed: str = "medium"
    pix_fmt: str = "yuv420p10le"
    segment_seconds: float = 30


@dataclass(frozen=True)
class Preset:
    name: str
    model: str  # a packaged model name, a .pth/.safetensors stem in a weights folder, or a path
    description: str
    path: Path
    encoder: EncoderDefaults = EncoderDefaults()


def _encoder(table: object, path: Path) -> EncoderDefaults:
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [encoder] must be a table")
    known = {f.name: f.type for f in fields(EncoderDefaults)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise UsageError(f"{path}: unknown [encoder] keys {', '.join(unknown)} (known: {', '.join(known)})")
    values = {}
    for key, value in table.items():
        want = float if known[key] == "float" else str
        if want is float and isinstance(value, bool) or not isinstance(value, (int, float) if want is float else str):
            raise UsageError(f"{path}: [encoder] {key} = {value!r}: want a {'number' if want is float else 'string'}")
        values[key] = want(value)
    return EncoderDefaults(**values)


def _model(table: object, path: Path) -> str:
    """`[model] name` (a packaged model or a weights folder's stem) or `[model] path` (a model file:
    relative to the preset's folder, `~` expanded), exactly one of them."""
    if not isinstance(table, dict) or ("name" in table) == ("path" in table):
        raise UsageError(f"{path}: [model] wants either name = ... or path = ...")
    value = table.get("name", table.get("path"))
    if not isinstance(value, str) or not value:
        raise UsageError(f"{path}: [model] {'name' if 'name' in table else 'path'} = {value!r}: want a string")
    if "name" in table:
        return value
    return str(path.parent / Path(value).expanduser())  # an absolute path stays as it is


def _read(path: Path) -> Preset:
    try:
        data = tomllib.loads(path.read_text())
        model_table = data["model"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a valid preset ({type(exc).__name__}: {exc})") from None
    model = _model(model_table, path)
    encoder = _encoder(data.get("encoder", {}), path)
    description = str(data.get("description", ""))
    return Preset(name=path.stem, model=str(model), description=description, path=path, encoder=encoder)


def load_presets() -> dict[str, Preset]:
    """Every preset that reads; one that does not (a user's file with a typo) is left out with a
    one-line warning on stderr, so that it blocks no other preset and no listing."""
    presets, broken = _read_all()
    _warn(broken)
    return presets


def get_preset(name: str) -> Preset:
    """The preset called `name`, reading its file alone (not all 42: a run needs one), so that a
    malformed preset is an error only where it is the one asked for."""
    paths = named_tomls(search_dirs("presets"))
    if name not in paths:
        raise UsageError(f"unknown preset {name!r}{did_you_mean(name, list(paths))}; `remaster presets` lists them")
    return _read(paths[name])


def did_you_mean(word: str, names: list[str]) -> str:
    """` (did you mean X?)` for a misspelling or a wrong case of one of `names`, else ""."""
    by_lower = {n.lower(): n for n in names}
    if word.lower() in by_lower:
        return f" (did you mean {by_lower[word.lower()]}?)"
    scores = {n: difflib.SequenceMatcher(None, word.lower(), n).ratio() for n in by_lower}
    best = max(scores.values(), default=0.0)
    if best < 0.8:  # difflib.get_close_matches' own idea of close is 0.6; 0.8 keeps 9x-magic unmatched
        return ""
    close = [by_lower[n] for n, score in scores.items() if score == best]  # ties: each equally likely
    return f" (did you mean {' or '.join(close)}?)"


def _warn(broken: dict[str, UsageError]) -> None:
    for error in broken.values():
        print(f"remaster: warning: {error}; skipped", file=sys.stderr)


def _read_all() -> tuple[dict[str, Preset], dict[str, UsageError]]:
    presets: dict[str, Preset] = {}
    broken: dict[str, UsageError] = {}
    for name, path in named_tomls(search_dirs("presets")).items():
        try:
            presets[name] = _read(path)
        except UsageError as exc:
            broken[name] = exc
    return presets, broken
