"""Rendering: readable units, tables that fit the terminal, JSON and CSV. No counting happens here.

Exported numbers (``print_json``, ``write_csv``) follow one rule, ``exported``: whole counts are
integers; a non-integral value (a Fraction, or a float such as a paper-convention count scaled by a
layer's reduction) is written with ``SIGNIFICANT`` significant digits, so no float noise leaks out.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass
from fractions import Fraction

from .core.errors import InvalidInput, existing_folder

_PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"), (1, ""))
SIGNIFICANT = 12  # digits of a non-integral exported number: far above any count's meaning, below float noise
DEFAULT_WIDTH = 80  # columns when the output is not a terminal and COLUMNS is not set


def si(value, digits: int = 2) -> str:
    """1234567 → '1.23M' (decimal prefixes, as papers print FLOPs and params); from 10¹⁵ on, '1.23e15'."""
    if abs(value) >= 10**15:
        exponent = 3 * (int(math.floor(math.log10(abs(value)))) // 3)
        return f"{float(Fraction(value) / 10**exponent):.{digits}f}e{exponent}"
    for scale, prefix in _PREFIXES[:-1]:
        if abs(value) >= scale:
            return f"{float(Fraction(value) / scale):.{digits}f}{prefix}"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}".rstrip("0").rstrip(".")


def prefix_for(values) -> tuple[int, str]:
    """(scale, prefix) of the largest of ``values``, for a column printed in one unit ('M')."""
    top = max((abs(v) for v in values), default=0)
    return next(((scale, prefix) for scale, prefix in _PREFIXES if top >= scale), (1, ""))


def in_unit(value, scale: int, digits: int = 2) -> str:
    """``value`` in units of ``scale`` (from ``prefix_for``): in_unit(105982132, 10**6) → '105.98'."""
    return f"{float(Fraction(value) / scale):.{digits}f}"


def exported(value):
    """A number as JSON and CSV write it: ints stay ints, non-integral values get ``SIGNIFICANT`` digits."""
    if isinstance(value, bool) or isinstance(value, int) or value is None:
        return value
    if isinstance(value, Fraction):
        value = int(value) if value.denominator == 1 else float(value)
        return exported(value)
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}") if math.isfinite(value) else value
    return value


def exported_tree(value):
    if isinstance(value, dict):
        return {k: exported_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exported_tree(v) for v in value]
    return exported(value)


def console(stderr: bool = False):
    """A rich Console as wide as the terminal; piped or captured, ``COLUMNS`` wide (80 if unset)."""
    from rich.console import Console

    out = Console(stderr=stderr, soft_wrap=False)
    if not out.is_terminal:
        columns = os.environ.get("COLUMNS", "")
        out = Console(
            stderr=stderr, soft_wrap=False, width=int(columns) if columns.isdigit() else DEFAULT_WIDTH
        )
    return out


@dataclass(frozen=True)
class Column:
    """A table column: numbers right-justified and never wrapped; ``fold`` columns (names, text) fold
    at dots and spaces to the width left (``wrap``: text that wraps before any column is dropped);
    higher ``drop`` ranks go first when the table is too wide."""

    header: str
    justify: str = "right"
    drop: int = 0
    fold: bool = False
    wrap: bool = False  # text (not a name): wrapping it is preferred to dropping columns


def fold_text(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` cells, after dots and at spaces where it can."""
    tokens, token = [], ""
    for char in text:
        token += char
        if char in ". /_":
            tokens.append(token)
            token = ""
    tokens += [token] if token else []
    lines, line = [], ""
    for token in tokens:
        while len(token) > width:  # a token wider than the column: cut it (fold)
            if line:
                lines.append(line)
                line = ""
            lines.append(token[:width])
            token = token[width:]
        if len((line + token).rstrip()) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    lines.append(line.rstrip())
    return "\n".join(lines)


def _natural_fold_width(cells: list[str], header: str) -> int:
    return max([len(header)] + [len(c) for c in cells])


def _build(title, columns, rows, caption, footer, widths, compact):
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = Table(
        title=title,
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE if compact else box.HEAVY_HEAD,
        show_edge=not compact,
        pad_edge=not compact,
        padding=(0, 0) if compact == "tight" else (0, 1),
        show_footer=footer is not None,
    )
    for i, (column, width) in enumerate(zip(columns, widths)):
        t.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.fold,
            overflow="fold",
            width=width if column.fold else None,
            footer=str(footer[i]) if footer is not None else "",
        )
    for row in rows:
        t.add_row(
            *[
                escape(fold_text(str(cell), width)) if column.fold else str(cell)
                for column, width, cell in zip(columns, widths, row)
            ]
        )
    return t


def fitted(
    title: str,
    columns: list[Column],
    rows: list[list],
    caption: str | None = None,
    footer: list | None = None,
    width: int | None = None,
):
    """A rich Table no wider than ``width`` (default: the console's) with no cell cut short.

    Tries, in order: every column in the boxed style, then the compact style (no edges), then the
    tight one (one space between columns), then the same with the highest ``drop`` rank removed,
    and so on; only then are ``fold`` columns narrowed to the width left.
    """
    from rich.console import Console
    from rich.measure import Measurement

    width = width or console().width
    probe = Console(width=10**4)
    ranks = sorted({c.drop for c in columns if c.drop}, reverse=True)
    layouts = []
    for level in [None, *ranks]:
        keep = [i for i, c in enumerate(columns) if not c.drop or level is None or c.drop < level]
        cols = [columns[i] for i in keep]
        body = [[row[i] for i in keep] for row in rows]
        foot = None if footer is None else [footer[i] for i in keep]
        natural = [
            _natural_fold_width([str(r[j]) for r in body], c.header) if c.fold else None
            for j, c in enumerate(cols)
        ]
        for compact in (False, True, "tight"):
            table = _build(title, cols, body, caption, foot, natural, compact)
            total = Measurement.get(probe, probe.options, table).maximum
            if total <= width:  # first choice: names whole, as many columns as fit
                return table
            layout = (total, cols, body, foot, natural, compact)
            if any(c.wrap for c in cols) and (wrapped := _folded(title, caption, width, *layout)):
                return wrapped
            layouts.append(layout)
    for layout in layouts:  # then: fold names to the width left
        if folded := _folded(title, caption, width, *layout):
            return folded
    _, cols, body, foot, natural, compact = layouts[-1]  # nothing fits: the narrowest layout, rich shrinks it
    return _build(title, cols, body, caption, foot, natural, compact)


def _folded(title, caption, width, total, cols, body, foot, natural, compact):
    """The layout with its first fold column narrowed to fit ``width``, or None if it would be too narrow."""
    folds = [j for j, c in enumerate(cols) if c.fold]
    if not folds:
        return None
    j = folds[0]
    room = natural[j] - (total - width)
    if room < max(20 if cols[j].wrap else 8, *(len(w) for w in cols[j].header.split())):
        return None
    widths = list(natural)
    widths[j] = room
    return _build(title, cols, body, caption, foot, widths, compact)


def table(title: str, columns: list[tuple[str, str]], rows: list[list], caption: str | None = None):
    """A fitted table from (header, justify) pairs: numbers right-justified, text left and folded."""
    cols = [Column(header, justify, fold=justify == "left") for header, justify in columns]
    return fitted(title, cols, rows, caption)


def print_json(payload) -> None:
    """One JSON object on stdout, nothing else; numbers as ``exported`` writes them."""
    sys.stdout.write(json.dumps(exported_tree(payload), indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def csv_text(rows: list[dict]) -> str:
    """``rows`` (dicts) as CSV: the union of their keys in order, numbers as ``exported``, None empty."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_cell(value):
    value = exported(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(exported_tree(value))
    return "" if value is None else value


def write_csv(rows: list[dict], path: str, option: str = "csv_path") -> None:
    """``rows`` as CSV to ``path`` ('-': stdout), written whole or not at all; only .csv files."""
    text = csv_text(rows)
    if path == "-":
        sys.stdout.write(text)
        return
    check_csv_path(path, option)
    partial = f"{path}.part"
    try:
        with open(partial, "w", newline="", encoding="utf-8") as f:
            f.write(text)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def check_csv_path(path: str, option: str = "csv_path") -> str:
    """``path`` if it is '-' or a .csv file in an existing folder, else InvalidInput naming ``option``."""
    if path == "-":
        return path
    if not str(path).lower().endswith(".csv"):
        raise InvalidInput(option, f"writes CSV: give a file ending in .csv (or - for stdout), got {path!r}")
    return existing_folder(option, path)
