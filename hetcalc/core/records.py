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

from dataclasses import dataclass, field, replace

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

    ``positions``: the vectors it is applied to (tokens of a sequence; 1 for a classifier);
    ``params`` and ``call`` as for ``Conv``.
    """

    name: str
    in_features: int
    out_features: int
    bias: bool = True
    norm: tuple[int, ...] = ()
    positions: int = 1
    params: int | None = None
    call: int = 1


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
    einsum, attention, …).
    """

    name: str
    macs: tuple[tuple[str, int], ...]
    norm: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pool:
    """Pooling before the next layer of a zoo model (K×K window, stride, padding): no MACs, no params."""

    K: int
    stride: int
    padding: int = 0


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

    def convs(self) -> list[Conv]:
        return [layer for layer in self.layers if isinstance(layer, Conv)]

    def by_name(self) -> dict[str, Conv | Linear]:
        return {layer.name: layer for layer in self.layers}

    def with_layers(self, layers) -> ModelSpec:
        return replace(self, layers=tuple(layers))


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
