"""Text for people: a long line cut where a word ends, never mid-word."""

from __future__ import annotations

__all__ = ["shortened"]


def shortened(text: str, longest: int) -> str:
    """``text`` cut to at most ``longest`` characters at a word's end, with an ellipsis where cut."""
    if len(text) <= longest:
        return text
    cut = text[:longest - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"
