"""A model spec + a variant → a per-layer report under a convention. No torch, no pandas at import."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from . import conventions, cost, kinds
from . import plan as plan_module
from .cost import saved_pct
from .cost import speedup as eq9_speedup
from .errors import InvalidInput, positive_int
from .plan import P_setting, Plan
from .records import Conv, Footprint, Linear, ModelSpec, Ops, freeze
from .zoo import get_model


def apply_variant(
    spec: ModelSpec, variant: str = "hetconv", P=None, G=None, se=None, impl="exact"
) -> ModelSpec:
    """``spec`` with every convolution the variant fits built as ``variant``, plus SE blocks: the records of
    ``plan.apply(spec, plan.derive(spec, variant, P, G, impl=impl, se=se))``."""
    return plan_module.apply(spec, plan_module.derive(spec, variant, P, G, impl=impl, se=se))


def _number(value):
    """An exact count as int where it is whole, else float (the paper convention scales costs)."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


def _layer_row(before, after, convention: str, batch: int, train: bool, input_grad: bool, size: int) -> dict:
    """One row of the per-layer table; counts stay exact (int or Fraction) here.

    ``flops_before``/``flops_after`` are a training step's where ``train`` (``forward_flops`` + ``backward_flops``
    of the layer as counted); ``activations``, ``bytes`` (``size`` bytes an element) and ``intensity`` (forward
    MACs per byte) are the layer's as counted, for ``batch`` images.
    """
    first, last = (
        conventions.step(layer, convention, batch=batch, train=train, input_grad=input_grad)
        for layer in (before, after)
    )
    conv, linear = isinstance(after, Conv), isinstance(after, Linear)
    kind = after.kind if conv else "linear" if linear else "ops" if isinstance(after, Ops) else "other"
    moved = None if last.moved is None else last.moved * size
    macs = conventions.step(after, "exact", batch=batch).forward
    row = {
        "name": after.name,
        "kind": kind,
        "kind_before": before.kind if conv else kind,
        "changed": conv
        and (before.kind, before.setting, before.impl, before.se)
        != (after.kind, after.setting, after.impl, after.se),
        "M": after.M if conv else after.in_features if linear else None,
        "N": after.N if conv else after.out_features if linear else None,
        "K": after.K if conv else None,
        "stride": after.spec.stride if conv else None,
        "D_out": after.spec.H if conv else after.positions if linear else None,
        "W_out": after.spec.W if conv else 1 if linear else None,
        "note": after.fixed if conv else _ops_text(after) if isinstance(after, Ops) else "",
        "P": after.P if conv else None,
        "G": after.G if conv else None,
        "impl": after.impl if conv else None,
        "se": after.se if conv else None,
        "flops_before": first.forward + (first.backward or 0),
        "flops_after": last.forward + (last.backward or 0),
        "params_before": first.params,
        "params_after": last.params,
        "activations": last.activations,
        "bytes": moved,
        "intensity": float(Fraction(macs, moved)) if moved else None,
    }
    if train:
        row.update(
            forward_flops=last.forward,
            backward_flops=last.backward,
            flops=last.forward + last.backward,
            input_grad=input_grad if conv or linear else None,
            frozen=after.frozen if conv or linear else None,
        )
    return row


COUNTS = ("flops_before", "flops_after", "params_before", "params_after")
STEP = ("forward_flops", "backward_flops")


def _ops_text(layer: Ops) -> str:
    """'matmul 1,024, attention 8,192': the operator families of an Ops record with their MACs."""
    return ", ".join(f"{op} {macs:,}" for op, macs in layer.macs)


def flops_by_op(layers, convention: str, steps=None) -> dict[str, int | float]:
    """FLOPs per operator family: each record's FLOPs split over the operators that run it.

    A convolution's kind runs its MACs as ``hetcalc.core.kinds.families`` says (HetConv2d exact: its
    K×K taps as a convolution, its 1×1 taps as a matmul); under the paper convention its FLOPs are
    split in the same proportion. Linear layers are ``linear``; an Ops record holds its families.
    ``steps``: each record's ``hetcalc.core.conventions.Step`` (a count at a batch, or of a training step,
    whose gradients run on the operators of the forward); None: one image's forward.
    """
    totals: dict[str, Fraction] = {}
    for i, layer in enumerate(layers):
        step = steps[i] if steps else None
        if isinstance(layer, Ops):
            parts = list(layer.macs) + (list(layer.backward) if step and step.backward is not None else [])
        elif isinstance(layer, (Conv, Linear)):
            flops = Fraction(
                step.forward + (step.backward or 0) if step else conventions.measure(layer, convention)[0]
            )
            shares = {"linear": 1} if isinstance(layer, Linear) else kinds.families(layer)
            whole = sum(shares.values())
            parts = [(family, flops * share / whole) for family, share in shares.items()] if whole else []
        else:
            continue
        for op, flops in parts:
            totals[op] = totals.get(op, 0) + flops
    return {op: _number(flops) for op, flops in totals.items() if flops}


@dataclass
class ModelReport:
    """A model under a plan (or a variant) and a convention: totals, reductions against the unmodified model.

    ``plan`` is the plan counted, in its JSON form (``hetcalc.core.plan.Plan.to_dict``): give it to
    ``hetcalc.convert`` to build what was counted. From a traced model's spec (see ``ModelSpec``):
    ``uncounted`` and ``data_dependent`` (operator → calls; ``partial`` is True when operators with
    no formula ran, so the totals may miss MACs), ``counted_on``, ``fallback`` and ``params_unused``;
    ``notes`` are sentences rendered from these fields and the layers' reasons. ``flops_by_op``
    splits ``flops`` by operator family; a layer row's ``note`` says why it stays as it is.

    Counts are for ``batch`` images. With ``train``, ``flops`` (and each row's ``flops_after``) is a training
    step, ``forward_flops`` + ``backward_flops``; ``frozen`` names the layers with no weight gradient, ``loss``
    the output summed into the loss ("" all of them) for a traced model; ``saved_bytes`` is what autograd keeps
    for backward and ``memory`` the step's bytes by part (``hetcalc.core.cost.step_memory``, with ``optimizer``),
    where a footprint was measured. ``activations`` (output elements of convolutions, linears and matmuls),
    ``bytes`` (what the layers read and write, in ``dtype``) and ``intensity`` (forward MACs per byte) are the
    forward's, over the layers with a traffic formula (``bytes`` None in a row without one).
    """

    model: str
    dataset: str | None
    input: list[int]
    variant: str
    P: object
    convention: str
    flops: int | float
    params: int | float
    baseline_flops: int | float
    baseline_params: int | float
    flops_reduction_pct: float
    params_reduction_pct: float
    speedup: float
    layers: list[dict] = field(repr=False)
    G: int | None = None
    se: int | None = None
    impl: str | None = None
    notes: list[str] = field(default_factory=list)
    params_unused: int = 0
    flops_by_op: dict = field(default_factory=dict)
    uncounted: dict = field(default_factory=dict)
    data_dependent: dict = field(default_factory=dict)
    partial: bool = False
    counted_on: str = ""
    fallback: str = ""
    plan: dict = field(default_factory=dict, repr=False)
    batch: int = 1
    train: bool = False
    forward_flops: int | float | None = None
    backward_flops: int | float | None = None
    activations: int = 0
    bytes: int = 0
    intensity: float | None = None
    dtype: str = "float32"
    frozen: list[str] = field(default_factory=list)
    loss: str | None = None
    saved_bytes: int | None = None
    optimizer: str | None = None
    memory: dict | None = None

    def variant_title(self) -> str:
        """'HetConv P=4', 'HetConv P = M per layer (PC)', 'GWC+PWC G=4', 'DWC+PWC + SE R=8', 'plan', …"""
        if self.variant == "standard":
            label = "standard (no replacement)"
        elif self.variant == "plan":
            replaced = sum(1 for d in self.plan.get("layers", ()) if d.get("kind"))
            label = f"plan ({replaced} layers replaced)"
        elif self.variant == "hetconv" and (self.P == "C" or isinstance(self.P, list)):
            label = "HetConv " + ("P = M per layer (PC)" if self.P == "C" else "P per layer")
        else:
            label = kinds.get(self.variant).title(self.P if self.variant == "hetconv" else self.G)
        impl = f" ({self.impl})" if self.impl not in (None, "exact") else ""
        return label + impl + (f" + SE R={self.se}" if self.se else "")

    def to_dict(self) -> dict:
        """The JSON object of ``hetcalc model --json``."""
        return {**asdict(self), "unit": conventions.UNIT[self.convention]}

    def frame(self):
        """The layers as a pandas DataFrame (pandas imported here); context in ``.attrs``."""
        import pandas as pd

        df = pd.DataFrame(self.layers)
        df.attrs.update({k: v for k, v in self.to_dict().items() if k != "layers"})
        return df


def analyze(
    model,
    *,
    dataset=None,
    variant: str | None = None,
    P=None,
    G=None,
    se=None,
    impl: str = "exact",
    plan: Plan | None = None,
    convention: str = "paper",
    batch: int | None = None,
    train: bool = False,
    frozen=(),
    dtype: str = "float32",
    optimizer: str | None = None,
    footprint=None,
) -> ModelReport:
    """Count ``model`` (a zoo name or a ModelSpec) as ``plan`` builds it, or as ``variant`` (default
    hetconv: the plan ``hetcalc.core.plan.derive`` makes), under ``convention``, for ``batch`` images.

    Baseline: the same model unmodified (no replacement, no SE), counted the same way. ``train``: a training
    step, forward + backward (``hetcalc.core.conventions.step``): a layer's input needs a gradient where autograd
    said so in a traced step (``hetcalc.real.trace.trace_step``), else (a zoo model) where a layer before it is
    trained, so the first layer computes none; ``frozen`` (names or globs of layers, and of the modules above
    them) computes no weight gradient. ``dtype`` sizes the bytes each layer moves. ``footprint``: what a step
    of the real model counted holds (a ``Footprint``, or a function of the records counted and the plan that
    measures one: ``hetcalc.real.load.zoo_footprint``), for ``saved_bytes`` and, with ``optimizer``, ``memory``;
    a traced step's own where the plan changes nothing.
    """
    conventions.check(convention)
    if dtype not in cost.DTYPES:
        raise InvalidInput("dtype", f"must be one of {', '.join(cost.DTYPES)}, got {dtype!r}")
    if optimizer is not None and not train:
        raise InvalidInput("optimizer", "applies to a training step (train) only")
    if optimizer is not None and optimizer not in cost.OPTIMIZERS:
        raise InvalidInput("optimizer", f"must be one of {', '.join(cost.OPTIMIZERS)}, got {optimizer!r}")
    spec = model if isinstance(model, ModelSpec) else get_model(model, dataset)
    batch = _batch(spec, batch)
    if frozen and not train:
        raise InvalidInput("frozen", "applies to a training step (train) only")
    if train:
        spec = _trainable(spec, frozen)
    if plan is not None:
        given = [name for name, value in (("variant", variant), ("P", P), ("G", G), ("se", se)) if value]
        if given:
            raise InvalidInput(given[0], "give a plan or a variant, not both")
        variant = "plan"
    else:
        variant = variant or "hetconv"
        plan = plan_module.derive(spec, variant, P, G, impl=impl, se=se)
    after = plan_module.apply(spec, plan)
    P = P_setting(P) if variant == "hetconv" else None
    flags = input_grads(spec) if train else [True] * len(spec.layers)
    size = cost.DTYPES[dtype]
    times = batch if spec.batch is None else 1  # a traced spec's records hold its batch already
    rows = [
        _layer_row(b, a, convention, times, train, flag, size)
        for b, a, flag in zip(spec.layers, after.layers, flags)
    ]
    steps = [
        conventions.step(a, convention, batch=times, train=train, input_grad=flag)
        for a, flag in zip(after.layers, flags)
    ]
    keep = [r["kind"] != "other" or any(r[key] for key in COUNTS) for r in rows]
    rows = [r for r, kept in zip(rows, keep) if kept]
    base_flops, flops, base_params, params = (sum(r[key] for r in rows) for key in COUNTS)
    forward, backward = (sum(r[key] for r in rows) if train else None for key in STEP)
    moved = sum(r["bytes"] for r in rows if r["bytes"] is not None)
    macs = sum(
        conventions.step(a, "exact", batch=times).forward for a, r in zip(after.layers, rows) if r["bytes"]
    )
    changed = any(r["changed"] for r in rows)
    footprint = _footprint(spec, after, plan, footprint, changed, dtype) if train else None
    rows = [{k: _number(v) if k in COUNTS + STEP + ("flops",) else v for k, v in r.items()} for r in rows]
    return ModelReport(
        model=spec.name,
        dataset=spec.dataset,
        input=list(spec.input),
        variant=variant,
        P=P,
        convention=convention,
        flops=_number(flops),
        params=_number(params),
        baseline_flops=_number(base_flops),
        baseline_params=_number(base_params),
        flops_reduction_pct=saved_pct(flops, base_flops),
        params_reduction_pct=saved_pct(params, base_params),
        speedup=eq9_speedup(Fraction(flops) / base_flops if flops and base_flops else 1),
        layers=rows,
        G=G if variant == "gwc_pwc" else None,
        se=se,
        impl=impl if variant == "hetconv" else None,
        notes=notes(spec) + _nothing_replaced(variant, rows, P) + _step_notes(train, footprint),
        params_unused=spec.params_unused,
        flops_by_op=flops_by_op(after.layers, convention, steps),
        uncounted=dict(spec.uncounted),
        data_dependent=dict(spec.data_dependent),
        partial=bool(spec.uncounted),
        counted_on=spec.counted_on,
        fallback=spec.fallback,
        plan=plan.to_dict(),
        batch=batch,
        train=train,
        forward_flops=None if forward is None else _number(forward),
        backward_flops=None if backward is None else _number(backward),
        activations=sum(r["activations"] for r in rows),
        bytes=moved,
        intensity=float(Fraction(macs, moved)) if moved else None,
        dtype=dtype,
        frozen=[r["name"] for r in rows if r.get("frozen")],
        loss=spec.loss if train and spec.step else None,
        saved_bytes=footprint.saved if train and footprint else None,
        optimizer=(optimizer or "sgd") if train else None,
        memory=_memory(footprint, optimizer or "sgd") if train and footprint else None,
    )


def _batch(spec: ModelSpec, batch) -> int:
    """The batch to count ``spec`` at: as given, else the one it was traced at (1 for the zoo); a traced spec's
    operators were counted at its own batch only."""
    if batch is None:
        return spec.batch or 1
    batch = positive_int("batch", batch)
    if spec.batch is not None and batch != spec.batch:
        raise InvalidInput(
            "batch", f"{spec.name} was traced at batch {spec.batch}: trace it at batch {batch} to count that"
        )
    return batch


def _trainable(spec: ModelSpec, frozen) -> ModelSpec:
    """``spec`` ready for a training step: its ``frozen`` layers marked, checked to have something to train."""
    if spec.counted_on and not spec.step:
        raise InvalidInput(
            "train",
            f"{spec.name} was traced without a training step: trace it with hetcalc.real.trace.trace_step",
        )
    if frozen and spec.step:
        raise InvalidInput("frozen", f"{spec.name} was traced as a step: freeze its layers when tracing it")
    spec = freeze(spec, frozen) if frozen else spec
    if not any(conventions.measure(layer, "exact")[1] for layer in spec.layers):
        raise InvalidInput("train", f"{spec.name} has no parameters: a training step has nothing to train")
    held = [layer for layer in spec.layers if isinstance(layer, (Conv, Linear)) and layer.call == 1]
    others = any(not isinstance(layer, (Conv, Linear, Ops)) and layer.params for layer in spec.layers)
    if held and all(layer.frozen for layer in held) and not (spec.step and others):
        raise InvalidInput(
            "frozen", f"freezes every layer of {spec.name}: a training step has nothing to train"
        )
    return spec


def input_grads(spec: ModelSpec) -> list[bool]:
    """Whether each record's input needs a gradient: as a traced step says (``input_grad``), else where a layer
    before it in call order is trained (the zoo's networks are chains: every earlier layer feeds it), so the
    first layer, fed by data, computes none."""
    flags, upstream = [], False
    for layer in spec.layers:
        known = getattr(layer, "input_grad", None)
        flags.append(upstream if known is None else known)
        if isinstance(layer, (Conv, Linear)):
            upstream = upstream or not layer.frozen
    return flags


def _footprint(spec: ModelSpec, after: ModelSpec, plan: Plan, given, changed: bool, dtype: str):
    """The footprint of the model counted: a traced step's own where nothing changed, else ``given`` (or what it
    measures); checked to be in ``dtype``."""
    found = (
        spec.footprint if spec.footprint and not changed else given(after, plan) if callable(given) else given
    )
    if found is not None and found.dtype != dtype:
        raise InvalidInput("dtype", f"the step of {spec.name} was measured in {found.dtype}, not {dtype}")
    return found


def _memory(footprint: Footprint, optimizer: str) -> dict[str, int]:
    f = footprint
    return cost.step_memory(f.params, f.buffers, f.trained, f.trained_tensors, f.saved, optimizer)


def _step_notes(train: bool, footprint) -> list[str]:
    """Where a training step's memory is not counted, why."""
    if not train or footprint:
        return []
    return ["saved_bytes and memory are measured on the real model counted: no footprint given, not counted"]


def notes(spec: ModelSpec) -> list[str]:
    """Sentences for the reader, rendered from what a traced spec's count rests on (its fields)."""
    said = []
    if spec.fallback:
        said.append(f"counted on the CPU: the meta device cannot run it ({spec.fallback})")
    said += list(spec.notes)
    if spec.params_unused:
        said.append(
            f"{spec.params_unused:,} parameters are never read by this forward pass (in the totals, as params_unused)"
        )
    if spec.uncounted:
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(spec.uncounted.items()))
        said.append(
            f"Warning: operators with no MAC formula, which may carry multiply-accumulates, are not in the totals: {ops}"
        )
    if spec.data_dependent:
        C, H, W = spec.input
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(spec.data_dependent.items()))
        said.append(
            f"counted on this input ({spec.batch or 1}×{C}×{H}×{W} of zeros): data-dependent operators ({ops}) decide what runs, "
            "so another input may run other operations"
        )
    return said


def _nothing_replaced(variant: str, rows: list[dict], P=None) -> list[str]:
    """A note where a variant changes nothing: P = 1, no convolution at all, or none it fits."""
    if variant in ("standard", "plan") or any(r["changed"] for r in rows):
        return []
    if P == 1:
        return ["nothing changes: HetConv with P = 1 is the standard convolution"]
    if not any(r["kind"] not in ("linear", "ops", "other") for r in rows):
        return [f"nothing to replace: the model has no nn.Conv2d for the {variant} variant"]
    return [f"nothing replaced: the {variant} variant fits none of the convolutions (see each layer's note)"]


def exact_counts(model, dataset=None, variant: str = "standard", **options) -> tuple[int, int]:
    """(multiply-accumulates, parameters) under the exact convention: what fvcore and
    ``sum(p.numel() for p in module.parameters())`` report for ``hetcalc.real.build.build_model``."""
    report = analyze(model, dataset=dataset, variant=variant, convention="exact", **options)
    return report.flops, report.params
