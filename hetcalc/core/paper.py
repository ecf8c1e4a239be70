"""The paper's Table 1 (VGG-16 on CIFAR-10), as published, and its reproduction by hetcalc.

The published numbers are Table 1 of Singh et al., "HetConv: Heterogeneous Kernel-Based
Convolutions for Deep CNNs" (CVPR 2019), VGG-16 on CIFAR-10. Each row's variant follows from its name by the
paper's naming rule (XXX_Pα, XXX_Pα_SE, XXX_GWCβ_PWC, XXX_DWC_PWC, XXX_PC); every row is
computed by ``hetcalc.core.analyze`` under one convention, with no per-row adjustment. A value
reproduces when it lies within ``TOLERANCE`` of the published one: one unit in the last
published digit (0.01M, 0.01 percentage points), which covers rounding and truncation alike.
"""

from __future__ import annotations

import re
from fractions import Fraction

from . import cost
from .analyze import analyze, apply_variant
from .conventions import costs
from .errors import InvalidInput
from .plan import candidates
from .zoo import get_model

MODEL, DATASET = "vgg16", "cifar10"
SE_REDUCTION = 8  # the paper: "XXX_Pα_SE" rows add Squeeze-and-Excitation with reduction ratio 8
TOLERANCE = 0.01
COLUMNS = ("flops", "flops_reduction_pct", "params", "params_reduction_pct")

# Table 1 of the paper: row, FLOPs (M), FLOPs reduced (%), params (M), params reduced (%); None: "—".
TABLE1 = (
    ("VGG-16_P1", 313.74, None, 15.00, None),
    ("VGG-16_P2", 175.23, 44.15, 8.45, 43.68),
    ("VGG-16_P4", 105.98, 66.22, 5.17, 65.45),
    ("VGG-16_P8", 71.35, 77.26, 3.54, 76.40),
    ("VGG-16_P16", 54.04, 82.78, 2.72, 81.86),
    ("VGG-16_P32", 45.38, 85.54, 2.31, 84.58),
    ("VGG-16_P64", 41.05, 86.92, 2.11, 85.95),
    ("VGG-16_GWC4_PWC", 107.67, 65.68, 5.42, None),
    ("VGG-16_DWC_PWC", 38.53, 87.72, 1.97, None),
    ("VGG-16_PC", 38.18, 87.83, 1.93, None),
    ("VGG-16_P1_SE", 314.19, None, 15.22, None),
    ("VGG-16_P4_SE", 106.42, 66.08, 5.41, 64.48),
    ("VGG-16_P32_SE", 45.82, 85.39, 2.54, 83.28),
)


def row_options(row: str) -> dict:
    """The paper's naming rule: "VGG-16_P4_SE" → {"variant": "hetconv", "P": 4, "se": 8}."""
    suffix = row.split("_", 1)[1] if "_" in row else ""
    if m := re.fullmatch(r"P(\d+|C)(_SE)?", suffix):
        P = m[1] if m[1] == "C" else int(m[1])
        return {"variant": "hetconv", "P": P, "se": SE_REDUCTION if m[2] else None}
    if m := re.fullmatch(r"GWC(\d+)_PWC", suffix):
        return {"variant": "gwc_pwc", "G": int(m[1])}
    if suffix == "DWC_PWC":
        return {"variant": "dwc_pwc"}
    raise InvalidInput(
        "row", f"{row!r} does not follow the paper's naming (XXX_Pα[_SE], XXX_GWCβ_PWC, XXX_DWC_PWC, XXX_PC)"
    )


def _implied(
    options: dict, report, published_flops_M: float, published_params_M: float, misses: list[str]
) -> list[str]:
    """What the published FLOPs/params imply under the paper convention, from the closed forms.

    Each replaced layer costs c·r (c: its standard cost, r: its layer-level reduction), so the
    published FLOPs give the mean r they imply, and for a uniform HetConv P, Eq. 5 solved for P.
    For a row with SE blocks, the SE cost it implies gives their reduction R (2·N²/R weights).
    Params that are off are set beside the network's BatchNorm parameters, which this
    convention leaves out.
    """
    spec = get_model(MODEL, DATASET)
    after = apply_variant(spec, **{k: v for k, v in options.items() if v is not None})
    names = {layer.name for layer in candidates(spec)}
    targets = [i for i, layer in enumerate(spec.layers) if layer.name in names]
    kept = sum((costs(layer).built for i, layer in enumerate(spec.layers) if i not in targets), cost.ZERO)
    S = sum(costs(spec.layers[i]).standard.flops for i in targets)
    se = sum((costs(after.layers[i]).se for i in targets), cost.ZERO)
    pub_flops, pub_params = (Fraction(str(v)) * 10**6 for v in (published_flops_M, published_params_M))
    notes = []
    if "flops" in misses:
        r, ours = ((flops - kept.flops - se.flops) / S for flops in (pub_flops, Fraction(report.flops)))
        notes.append(
            f"published FLOPs imply replaced layers at {float(r):.4f} of standard (here {float(ours):.4f})"
        )
        Ks = {spec.layers[i].K for i in targets}
        if options["variant"] == "hetconv" and isinstance(options["P"], int) and len(Ks) == 1:
            P = cost.hetconv_P_for(r, Ks.pop())
            notes.append(f"P ≈ {float(P):.2f} by Eq. 5" if P else "no P gives that by Eq. 5")
    if "params" in misses:
        bn = sum(costs(layer).norm.params for layer in spec.layers)
        notes.append(
            f"published params are {round(pub_params - Fraction(report.params)):+,} from ours "
            f"(BatchNorm, left out, holds {bn:,})"
        )
    if options.get("se"):
        widths = [spec.layers[i].N for i in targets]
        for column, published, ours, se_part in (
            ("flops", pub_flops, report.flops, se.flops),
            ("params", pub_params, report.params, se.params),
        ):
            extra = published - (Fraction(ours) - se_part)
            if column in misses and extra > 0:
                notes.append(
                    f"published {'FLOPs' if column == 'flops' else column} imply SE blocks of "
                    f"{float(extra) / 1e3:.0f}K, i.e. reduction R ≈ "
                    f"{float(cost.squeeze_excitation_reduction_for(widths, extra)):.1f} "
                    f"(here {options['se']}: {float(se_part) / 1e3:.0f}K)"
                )
    return notes


def table1(convention: str = "paper") -> list[dict]:
    """Every row of Table 1: published, reproduced (``convention``), delta, and whether it reproduces.

    FLOPs and params in millions, reductions in % of the unmodified VGG-16. Per column:
    ``published_<c>``, ``<c>``, ``delta_<c>``, ``<c>_ok`` (None where the paper prints "—");
    ``reproduces``: every published value of the row within ``TOLERANCE``; ``note``: what is off
    and what the published numbers imply.
    """
    rows = []
    for row, *published in TABLE1:
        options = row_options(row)
        report = analyze(MODEL, dataset=DATASET, convention=convention, **options)
        ours = (
            report.flops / 1e6,
            report.flops_reduction_pct,
            report.params / 1e6,
            report.params_reduction_pct,
        )
        entry = {"row": row, **{k: v for k, v in options.items() if v is not None}}
        misses = []
        for column, pub, value in zip(COLUMNS, published, ours):
            delta = None if pub is None else value - pub
            ok = None if pub is None else abs(delta) <= TOLERANCE + 1e-9
            entry.update(
                {f"published_{column}": pub, column: value, f"delta_{column}": delta, f"{column}_ok": ok}
            )
            if ok is False:
                misses.append(column)
        entry["reproduces"] = not misses
        entry["note"] = _note(options, report, published, misses, convention)
        rows.append(entry)
    return rows


def _note(options: dict, report, published, misses: list[str], convention: str) -> str:
    if not misses:
        return f"reproduces within ±{TOLERANCE}"
    words = {
        "flops": "FLOPs",
        "params": "params",
        "flops_reduction_pct": "FLOPs reduction",
        "params_reduction_pct": "params reduction",
    }
    notes = ["off: " + ", ".join(words[m] for m in misses)]
    if convention == "paper":
        notes += _implied(options, report, published[0], published[2], misses)
    return "; ".join(notes)


def table1_frame(convention: str = "paper"):
    """``table1()`` as a pandas DataFrame (pandas imported here)."""
    import pandas as pd

    return pd.DataFrame(table1(convention))


HETCONV_ROWS = (
    "P1",
    "P2",
    "P4",
    "P8",
    "P16",
    "P32",
    "P64",
)  # Table 1's HetConv rows: `hetcalc table`'s default


def variant_table(
    model, variants=HETCONV_ROWS, convention: str = "paper", dataset=None, **step
) -> list[dict]:
    """Table 1 for any model: one row per variant in the paper's naming (P4, PC, P4_SE, GWC4_PWC, DWC_PWC).

    ``model``: a zoo name or a ModelSpec. Counts are ``hetcalc.core.analyze``'s, exact (int or float
    under the paper convention); reductions in % are against the first row (None there). ``step``: the options of
    a training step (``train``, ``batch``, ``frozen``, ``dtype``, ``optimizer``, ``footprint``), as ``analyze``
    takes them: ``flops`` is then a step's (``forward_flops`` + ``backward_flops``), and ``memory`` the bytes the
    step holds (None where no footprint was measured).
    """
    rows, first = [], None
    for name in variants:
        try:
            options = row_options(f"X_{name}")
        except InvalidInput:
            raise InvalidInput(
                "variant",
                f"{name!r} is not in the paper's naming: P<n>, PC, P<n>_SE, GWC<n>_PWC or DWC_PWC",
            ) from None
        report = analyze(model, dataset=dataset, convention=convention, **options, **step)
        first = first or report
        row = {
            "variant": name,
            "flops": report.flops,
            "params": report.params,
            "flops_reduction_pct": None if report is first else cost.saved_pct(report.flops, first.flops),
            "params_reduction_pct": None if report is first else cost.saved_pct(report.params, first.params),
        }
        if report.train:
            memory = report.memory["total"] if report.memory else None
            base = first.memory["total"] if first.memory else None
            row.update(
                forward_flops=report.forward_flops,
                backward_flops=report.backward_flops,
                memory=memory,
                saved_bytes=report.saved_bytes,
                memory_reduction_pct=None
                if report is first or memory is None
                else cost.saved_pct(memory, base),
            )
        rows.append(row)
    return rows
