"""Rendering: readable units and rich tables. No counting happens here."""

from __future__ import annotations

import json
import sys

_PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))


def si(value, digits: int = 2) -> str:
    """1234567 → '1.23M' (decimal prefixes, as papers print FLOPs and params)."""
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f}{prefix}"
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def console(stderr: bool = False):
    from rich.console import Console

    out = Console(stderr=stderr, soft_wrap=False)
    if not out.is_terminal:  # piped or captured: do not squeeze tables to 80 columns
        out = Console(stderr=stderr, soft_wrap=False, width=140)
    return out


def table(title: str, columns: list[tuple[str, str]], rows: list[list], caption: str | None = None):
    """A rich Table; ``columns`` are (header, justify) pairs, numbers right-justified."""
    from rich.table import Table

    t = Table(title=title, caption=caption, caption_justify="left")
    for header, justify in columns:
        t.add_column(header, justify=justify)
    for row in rows:
        t.add_row(*[str(cell) for cell in row])
    return t


def print_json(payload) -> None:
    """One JSON object on stdout, nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    from fractions import Fraction

    if isinstance(value, Fraction):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
