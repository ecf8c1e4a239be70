"""A model as data: an ordered list of layer records with their sizes, and the structure around them.

Records hold no formulas: ``hetcalc.core.conventions`` counts them through ``hetcalc.core.kinds``.
Only layers that carry multiply-accumulates or parameters are records: convolutions (of any
kind, with the BatchNorm and Squeeze-and-Excitation attached to them), fully connected layers,
other parameters and (traced models) the multiply-accumulates of operations outside those
layers. The structure a family knows and a builder needs (pooling between layers, residual
blocks, shortcuts) is kept beside them: ``ModelSpec.pools``, ``Conv.block``, ``Conv.shortcut``.
A traced network becomes the same kind of spec, so ``hetcalc.core.analyze`` treats zoo and user
models alike.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace

from .errors import InvalidInput, listing
from .spec import ConvSpec, output_size


@dataclass(frozen=True)
class Conv:
    """A convolution M → N with K×K kernels at its place in a network, built as ``kind``.

    ``spec`` carries M, N, K, the output size (``spec.H`` = D_o), stride and bias; padding is
    K // 2. ``kind`` is a name in ``hetcalc.core.kinds.KINDS`` (standard, hetconv with part ``P``,
    dwc_pwc, gwc_pwc with ``G`` groups and groupwise width ``mid`` (None: M), grouped, …) or
    ``masked`` (an LHC mask). ``norm`` lists the BatchNorm channels after each stage (MobileNet's
    block: (M, N)); ``se`` the reduction of a Squeeze-and-Excitation block on the output.
    ``taps``: the kept weights where they are not the full bank (a mask's kept taps, a
    non-square kernel's weights); ``fixed``: why the layer stays as it is (set by a trace for
    structure no hetcalc layer carries, and by ``analyze`` for a variant that does not fit).
    ``block``: the residual block it belongs to ("" for none); ``shortcut``: it is that block's
    shortcut convolution. ``impl``: HetConv2d's implementation (``kind`` is the kind whose formula
    counts what it runs, ``hetcalc.core.kinds.IMPLS``). ``params``: the learnable parameters as read
    from a traced module (every tensor it holds, once; None: its kind's formula); ``call``: which call
    of its module this record is (a module called twice holds its parameters in its first call only).
    A training step: ``input_grad``, whether its input needs a gradient, as autograd decided in a traced step
    (None: the symbolic rule, ``hetcalc.core.analyze``: no layer before it is trained, as for the first layer);
    ``frozen``, its parameters are not trained (no weight gradient); ``reached``, the loss depends on its output
    (a traced step whose loss leaves it out runs no backward for it).
    ``images``: the images a traced call ran on; its counts are those of one image times ``images``.
    """

    name: str
    spec: ConvSpec
    D_in: int
    kind: str = "standard"
    P: int | None = None
    G: int | None = None
    norm: tuple[int, ...] = ()
    se: int | None = None
    mid: int | None = None
    taps: int | None = None
    fixed: str = ""
    block: str = ""
    shortcut: bool = False
    impl: str | None = None
    params: int | None = None
    call: int = 1
    W_in: int | None = None  # input width where it differs from D_in (a non-square input)
    input_grad: bool | None = None
    frozen: bool = False
    reached: bool = True
    images: int = 1  # the images a traced call ran on (its batch); a zoo record is one image's

    @property
    def M(self) -> int:
        return self.spec.M

    @property
    def N(self) -> int:
        return self.spec.N

    @property
    def K(self) -> int:
        return self.spec.K

    @property
    def setting(self) -> int | None:
        """The kind's parameter: P for HetConv, G for GWC+PWC and grouped convolutions."""
        return self.P if self.kind.startswith("hetconv") else self.G

    def with_(self, **changes) -> Conv:
        return replace(self, **changes)


@dataclass(frozen=True)
class Linear:
    """A fully connected layer ``in_features`` → ``out_features``; ``norm``: BatchNorm1d channels after it.

    ``positions``: the vectors it is applied to (tokens of a sequence; 1 for a classifier; in a traced call, every
    vector of the call, its batch included); ``params``, ``call``, ``input_grad``, ``frozen`` and ``reached`` as
    for ``Conv``.
    """

    name: str
    in_features: int
    out_features: int
    bias: bool = True
    norm: tuple[int, ...] = ()
    positions: int = 1
    params: int | None = None
    call: int = 1
    input_grad: bool | None = None
    frozen: bool = False
    reached: bool = True


@dataclass(frozen=True)
class Other:
    """Learnable parameters outside every recorded layer (BatchNorm, LayerNorm, embeddings, …) of a
    traced model: no multiply-accumulates, never replaced. ``norm``: the BatchNorm channels among
    them (left out under the paper convention, as in the zoo); ``params``: all the others."""

    name: str
    params: int
    norm: tuple[int, ...] = ()


@dataclass(frozen=True)
class Ops:
    """Multiply-accumulates a traced model runs outside its recorded layers, under the module that ran them.

    Attention, functional matmuls (``F.linear``, ``torch.matmul``, ``einsum``), Conv1d/Conv3d and
    transposed convolutions: in every total, carried unchanged by every variant. ``macs`` holds
    (operator family, MACs) pairs (``hetcalc.real.operators.FAMILIES``: convolution, linear, matmul,
    einsum, attention, …), counted at the spec's ``batch``; ``backward`` the same for what autograd ran for them in
    a traced training step; ``activations`` the output elements of their convolutions, linears and matmuls.
    """

    name: str
    macs: tuple[tuple[str, int], ...]
    norm: tuple[int, ...] = ()
    backward: tuple[tuple[str, int], ...] = ()
    activations: int = 0


@dataclass(frozen=True)
class Pool:
    """Pooling before the next layer of a zoo model (K×K window, stride, padding): no MACs, no params."""

    K: int
    stride: int
    padding: int = 0


@dataclass(frozen=True)
class Footprint:
    """What a training step of a real model holds, measured (``hetcalc.real.trace.trace_step``), in bytes.

    ``params`` and ``buffers`` as the model holds them, ``trained`` the parameters that need a gradient (and
    ``trained_tensors`` how many tensors they are), ``saved`` the tensors autograd keeps for backward (unique
    storages, parameters left out), at ``batch`` images in ``dtype``.
    """

    params: int
    buffers: int
    trained: int
    trained_tensors: int
    saved: int
    batch: int
    dtype: str


@dataclass(frozen=True)
class ModelSpec:
    """A network: its input (C, H, W), its layer records in order, and the structure between them.

    ``family`` names the torch wiring in ``hetcalc.real.build`` (None for a traced model);
    ``pools`` maps a layer index to the pooling applied to its input. A traced model also
    carries what its count rests on, as data: ``uncounted`` (operator → calls: operators with no
    formula that may carry multiply-accumulates, not in the totals), ``data_dependent`` (operator →
    calls: the count holds for the input traced), ``counted_on`` ("meta" or "cpu") with the
    ``fallback`` reason where meta could not run it, ``params_unused`` (parameters no operator of the
    traced forward read, in the totals too), and ``notes`` (sentences about single layers).
    ``batch``: the images a trace ran on (its records hold what it counted at that batch: a ``Conv`` its
    ``images``, a ``Linear`` every vector, ``Ops`` their MACs; None: the records are one image's, as the zoo's); ``step``: it was traced through a training step (records carry
    ``input_grad`` and ``frozen``, ``Ops`` their ``backward``), with ``loss`` the output the loss summed
    ("" for all of them) and ``footprint`` what the step held.
    """

    name: str
    input: tuple[int, int, int]
    layers: tuple[Conv | Linear | Ops | Other, ...]
    dataset: str | None = None
    family: str | None = None
    notes: tuple[str, ...] = ()
    params_unused: int = 0
    pools: tuple[tuple[int, Pool], ...] = ()
    uncounted: dict = field(default_factory=dict)
    data_dependent: dict = field(default_factory=dict)
    counted_on: str = ""
    fallback: str = ""
    batch: int | None = None
    step: bool = False
    loss: str = ""
    footprint: Footprint | None = None

    def convs(self) -> list[Conv]:
        return [layer for layer in self.layers if isinstance(layer, Conv)]

    def by_name(self) -> dict[str, Conv | Linear]:
        return {layer.name: layer for layer in self.layers}

    def with_layers(self, layers) -> ModelSpec:
        return replace(self, layers=tuple(layers))


def selects(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (a name or a glob) names ``name`` or a module above it ("layer1" selects "layer1.0.conv1")."""
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def selected(patterns, names, model: str = "the model") -> set[str]:
    """The ``names`` that ``patterns`` select (``selects``); InvalidInput naming ``frozen`` for a pattern selecting none."""
    names = list(names)
    chosen = set()
    for pattern in patterns:
        found = {name for name in names if selects(pattern, name)}
        if not found:
            shown = listing(names, 8) if names else "none"
            raise InvalidInput("frozen", f"{pattern!r} names no layer of {model}; its layers: {shown}")
        chosen |= found
    return chosen


def freeze(spec: ModelSpec, patterns) -> ModelSpec:
    """``spec`` with the layers ``patterns`` select (by module name: every call of a module) marked ``frozen``."""
    trainable = [layer for layer in spec.layers if isinstance(layer, (Conv, Linear))]
    names = list(dict.fromkeys(module_name(layer) for layer in trainable))
    chosen = selected(patterns, names, spec.name)
    return spec.with_layers(
        replace(layer, frozen=True)
        if isinstance(layer, (Conv, Linear)) and module_name(layer) in chosen
        else layer
        for layer in spec.layers
    )


def module_name(layer) -> str:
    """The module a record is a call of: its name without the '#2' of a repeated call."""
    return layer.name.rsplit("#", 1)[0] if layer.call > 1 else layer.name


class Builder:
    """Appends layer records while tracking the feature map (channels, size), as a forward pass would."""

    def __init__(self, channels: int, size: int):
        self.channels, self.size, self.layers, self.pools, self.block = channels, size, [], [], ""

    def conv(
        self,
        name: str,
        N: int,
        K: int = 3,
        stride: int = 1,
        bias: bool = False,
        norm: bool = True,
        kind: str = "standard",
        source: tuple[int, int] | None = None,
    ) -> Conv:
        """A conv of the current map, or of ``source`` = (M, D_in) (a shortcut's input); padding K // 2."""
        M, D_in = source or (self.channels, self.size)
        D_out = output_size(D_in, K, stride)
        norms = (M, N) if kind == "dwc_pwc" and norm else (N,) if norm else ()
        layer = Conv(
            name,
            ConvSpec(M=M, N=N, K=K, H=D_out, stride=stride, bias=bias, name=name),
            D_in,
            kind=kind,
            norm=norms,
            block=self.block,
            shortcut=source is not None,
        )
        self.layers.append(layer)
        self.channels, self.size = N, D_out
        return layer

    def pool(self, K: int, stride: int, padding: int = 0):
        """Pooling of the current map: recorded before the next layer."""
        self.pools.append((len(self.layers), Pool(K, stride, padding)))
        self.size = output_size(self.size, K, stride, padding)

    def linear(
        self,
        name: str,
        out_features: int,
        in_features: int | None = None,
        bias: bool = True,
        norm: bool = False,
    ):
        in_features = self.channels if in_features is None else in_features
        self.layers.append(Linear(name, in_features, out_features, bias, (out_features,) if norm else ()))
        self.channels = out_features
