"""Modes are `enum.StrEnum`s, defined next to what they describe and parsed once, at the command line.

A StrEnum member is a str: it compares equal to its value and is written as it in JSON and in the
manifest, so files stay the same. `parse_mode` makes an argparse `type=` that turns a wrong value into
a one-line UsageError listing the valid ones (argparse would print its usage lines as well).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from remaster.core.errors import UsageError

Mode = TypeVar("Mode", bound=StrEnum)


def parse_mode(kind: type[Mode], option: str) -> Callable[[str], Mode]:
    """An argparse `type=` for `option` (`--reuse`) that takes a value of `kind`."""

    def parse(value: str) -> Mode:
        try:
            return kind(value)
        except ValueError:
            raise UsageError(f"{option} {value!r}: want one of {', '.join(kind)}") from None

    return parse
