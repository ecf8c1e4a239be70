"""The tiers of the README's "Where things live", enforced: every import of every module, functions included.

The table is read from the README, so the README and the code cannot disagree: every module of the
package is in exactly one tier, no module imports one of a higher tier, and nothing in
``hetcalc/core`` imports torch (or fvcore) at all.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hetcalc"
TORCH = ("torch", "fvcore", "torchvision", "timm")


def readme_tiers() -> list[tuple[str, list[str]]]:
    """(tier, [module paths relative to hetcalc/]) from the README's table, bottom tier first."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("### Where things live") :].split("\n\n")[2]
    tiers = []
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        tiers.append((cells[0], re.findall(r"`([\w/.]+(?:\.py|/))`", cells[1])))
    return tiers


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tier_of(module: str, tiers) -> int | None:
    """The index of the tier listing ``module`` (a dotted name), or None for a package's bare __init__."""
    relative = module.removeprefix("hetcalc.").replace(".", "/")
    for i, (_, paths) in enumerate(tiers):
        for path in paths:
            if relative + ".py" == path or (path.endswith("/") and (relative + "/").startswith(path)):
                return i
    return None


def imports(path: Path, text: str | None = None) -> set[str]:
    """Every module ``path`` (or ``text`` as that module) imports, anywhere in it, as absolute dotted names."""
    package = module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import kinds`
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_exactly_one_tier():
    tiers = readme_tiers()
    assert [name for name, _ in tiers][:3] == ["input", "formulas", "kinds"]
    listed = [path for _, paths in tiers for path in paths]
    assert len(listed) == len(set(listed))
    for source in SOURCES:
        if source.name in ("__init__.py", "__main__.py") and source.parent != PACKAGE / "cli":
            continue  # a package's docstring (and hetcalc's lazy exports, checked below)
        assert tier_of(module_of(source), tiers) is not None, f"{source.relative_to(ROOT)} is in no tier"


def test_no_module_imports_one_of_a_higher_tier():
    tiers = readme_tiers()
    wrong = []
    for source in SOURCES:
        here = tier_of(module_of(source), tiers)
        if here is None:
            continue
        for target in imports(source):
            there = tier_of(target, tiers) if target.startswith("hetcalc.") else None
            if there is not None and there > here:
                wrong.append(f"{module_of(source)} ({tiers[here][0]}) imports {target} ({tiers[there][0]})")
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_no_torch_anywhere():
    for source in sorted((PACKAGE / "core").rglob("*.py")):
        heavy = [name for name in imports(source) if name.split(".")[0] in TORCH]
        assert not heavy, f"{source.relative_to(ROOT)} imports {heavy}"


def test_the_checker_sees_imports_inside_functions():
    """A lazy import is an import: kinds.py reaching up into real/layers.py inside a function is caught."""
    tiers = readme_tiers()
    source = PACKAGE / "core" / "kinds.py"
    lazy = source.read_text() + "\n\ndef _layer():\n    from ..real.layers import HetConv2d\n"
    assert "hetcalc.real.layers" not in imports(source)
    assert "hetcalc.real.layers" in imports(source, lazy)
    assert tier_of("hetcalc.real.layers", tiers) > tier_of("hetcalc.core.kinds", tiers)
