"""`remaster presets`: the presets in a table, or one preset's settings."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from remaster.commands.options import command_parser

NAME = "presets"
OTHER = "other"
# When to use each family, one line; the figures behind them are in docs/guide.md.
FAMILY_USE = {
    "realcugan": "Real-CUGAN: the default; denoise levels and Pro weights for old, grainy or noisy sources",
    "realesrgan": "Real-ESRGAN: animevideov3 is the fast one on a GPU (3x Real-CUGAN); no denoise; clean sources",
    "waifu2x": "waifu2x: clean digital sources, and archives made with it; 1x cunet denoises without resizing",
    OTHER: "your own models and presets whose model package is not installed",
}
FAMILY_ORDER = list(FAMILY_USE)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="list the presets")
    parser.add_argument("--show", metavar="NAME", help="print one preset's settings")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from remaster.core.presets import get_preset, load_presets
    from remaster.core.resources import user_dir
    from remaster.models.catalog import packaged_models

    console = Console(soft_wrap=True)
    if args.show:
        preset = get_preset(args.show)
        console.print(f"# {preset.name}, from {preset.path}; command-line options override these", highlight=False)
        text = f'description = "{preset.description}"\n\n[model]\nname = "{preset.model}"\n'
        console.print(text, highlight=False, markup=False)
        console.print("[encoder]", highlight=False, markup=False)
        for key, value in asdict(preset.encoder).items():
            console.print(f"{key} = {value!r}".replace("'", '"'), highlight=False, markup=False)
        return 0
    packaged = packaged_models()
    table = Table(title=f"Presets by family (yours go in {user_dir('presets')})")
    for column in ("name", "scale", "model", "denoise", "use"):
        table.add_column(column)
    groups: dict[str, list[tuple[str, ...]]] = {}
    for preset in load_presets().values():
        model = packaged.get(preset.model)
        if model is None:  # a user's checkpoint, or a packaged model whose package is missing
            row = (preset.name, "?", "?", "?", f"model {preset.model}; {preset.description}")
            groups.setdefault(OTHER, []).append(row)
        else:
            row = (preset.name, f"{model.scale}x", model.variant, model.denoise or "-", preset.description)
            groups.setdefault(model.family, []).append(row)
    for family, rows in sorted(groups.items(), key=lambda item: FAMILY_ORDER.index(item[0])):
        table.add_section()
        table.add_row(f"[bold]{family}[/bold]", "", "", "", f"[bold]{FAMILY_USE[family]}[/bold]")
        for row in rows:
            table.add_row(*row)
    console.print(table)
    return 0
