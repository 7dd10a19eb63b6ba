"""`remaster presets`: the presets in a table, or one preset's settings."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from remaster.commands.options import command_parser

NAME = "presets"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="list the presets")
    parser.add_argument("--show", metavar="NAME", help="print one preset's settings")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from remaster.models.catalog import packaged_models
    from remaster.presets import get_preset, load_presets
    from remaster.resources import user_dir

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
    table = Table(title=f"Presets (yours go in {user_dir('presets')})")
    for column in ("name", "scale", "variant", "denoise", "use"):
        table.add_column(column)
    for preset in load_presets().values():
        model = packaged.get(preset.model)
        if model is None:  # a user's checkpoint, or a packaged model whose package is missing
            table.add_row(preset.name, "?", "?", "?", f"model {preset.model}; {preset.description}")
        else:
            table.add_row(preset.name, f"{model.scale}x", model.variant, model.denoise, preset.description)
    console.print(table)
    return 0
