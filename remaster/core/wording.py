"""Words in messages: "1 segment", "2 segments", never "1 segments"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and the noun, singular for exactly one (English: 0 takes the plural)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
