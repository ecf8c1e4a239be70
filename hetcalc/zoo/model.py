"""A model spec: an ordered list of layer records, each with its name and output size.

Only layers that carry multiply-accumulates or parameters are recorded: convolutions (of any
kind, with the BatchNorm and Squeeze-and-Excitation attached to them) and fully connected
layers. ReLU, pooling and residual additions cost nothing in either convention, so they are
not listed; the torch builder wires them from the family. A traced network becomes the same
kind of spec, so ``hetcalc.analyze`` treats zoo and user models alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import cost
from ..cost import Cost
from ..errors import InvalidInput
from ..spec import ConvSpec, output_size

KINDS = ("standard", "hetconv", "dwc_pwc", "gwc_pwc", "hetconv_grouped_sum", "grouped", "masked")


class _Record:
    """Shared by layer records: the BatchNorm parameters in ``norm``; no SE block unless a Conv has one."""

    norm: tuple[int, ...]

    def norm_cost(self) -> Cost:
        return sum((cost.batchnorm(c) for c in self.norm), cost.ZERO)

    def se_cost(self) -> Cost:
        return cost.ZERO


@dataclass(frozen=True)
class Conv(_Record):
    """A convolution M → N with K×K kernels at its place in a network, built as ``kind``.

    ``spec`` carries M, N, K, the output size (``spec.H`` = D_o), stride and bias; padding is
    K // 2. ``kind``: standard, hetconv (part ``P``), dwc_pwc (depthwise then pointwise, the
    MobileNet block) or gwc_pwc (``G`` groups M → M, then pointwise M → N). ``norm`` lists the
    BatchNorm channels after each stage (MobileNet's block: (M, N)); ``se`` the reduction of a
    Squeeze-and-Excitation block on the output, if any.

    Traced models (``hetcalc.trace``) add: kind hetconv_grouped_sum, grouped (``G`` groups, e.g.
    depthwise) and masked (an LHC mask); ``mid``, gwc_pwc's groupwise output channels (None: M);
    ``taps``, the kept weights where they are not the full bank (a mask's kept taps, a non-square
    kernel's weights: costed by ``cost.masked``); ``fixed``, why no variant replaces the layer.
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

    @property
    def M(self) -> int:
        return self.spec.M

    @property
    def N(self) -> int:
        return self.spec.N

    @property
    def K(self) -> int:
        return self.spec.K

    def standard(self) -> Cost:
        """The standard convolution M → N, K×K in this place (Eq. 1), which a layer's reduction is
        measured against; a grouped or non-square layer (never replaced) is measured against itself,
        a masked one against its dense filter bank."""
        if self.kind == "masked":
            return cost.grouped(self.spec, self.G or 1)
        if self.kind == "grouped" or self.taps is not None:
            return self.conv()
        return cost.standard(self.spec)

    def conv(self) -> Cost:
        """The convolution(s) as built: Eq. 1, Eqs. 2–4, Eq. 6, Eq. 10, a grouped conv or kept taps."""
        if self.taps is not None:
            return cost.masked(self.taps, self.spec.positions, self.N, self.spec.bias)
        if self.kind == "standard":
            return cost.standard(self.spec)
        if self.kind == "hetconv":
            return cost.hetconv(self.spec, self.P)
        if self.kind == "dwc_pwc":
            return cost.dwc_pwc(self.spec)
        if self.kind == "gwc_pwc":
            return cost.gwc_pwc(self.spec, self.G, self.mid)
        if self.kind == "hetconv_grouped_sum":
            return cost.hetconv_grouped_sum(self.spec, self.P)
        if self.kind == "grouped":
            return cost.grouped(self.spec, self.G)
        raise InvalidInput("kind", f"unknown convolution kind {self.kind!r}; known: {', '.join(KINDS)}")

    def se_cost(self) -> Cost:
        return cost.squeeze_excitation(self.N, self.se, name=self.name) if self.se else cost.ZERO


    def with_(self, **changes) -> "Conv":
        return replace(self, **changes)


@dataclass(frozen=True)
class Linear(_Record):
    """A fully connected layer ``in_features`` → ``out_features``; ``norm``: BatchNorm1d channels after it.

    ``positions``: the vectors it is applied to (tokens of a sequence; 1 for a classifier), costed
    as the 1×1 convolution over that many positions.
    """

    name: str
    in_features: int
    out_features: int
    bias: bool = True
    norm: tuple[int, ...] = ()
    positions: int = 1

    def conv(self) -> Cost:
        if self.positions == 1:
            return cost.linear(self.in_features, self.out_features, self.bias)
        return cost.standard(ConvSpec(M=self.in_features, N=self.out_features, K=1, H=self.positions, W=1,
                                      bias=self.bias))



@dataclass(frozen=True)
class Other(_Record):
    """Learnable parameters outside every recorded layer (BatchNorm, LayerNorm, embeddings, …) of a
    traced model: no multiply-accumulates, never replaced. ``norm``: the BatchNorm channels among
    them (left out under the paper convention, as in the zoo); ``params``: all the others."""

    name: str
    params: int
    norm: tuple[int, ...] = ()

    def conv(self) -> Cost:
        return Cost(0, 0, self.params)



@dataclass(frozen=True)
class ModelSpec:
    """A network: its input (C, H, W) and its layer records in order.

    ``family`` names the torch wiring in ``hetcalc.zoo.torch_build`` (None for a traced model).
    A traced model also carries ``notes`` (sentences for the reader: layers whose count needs a
    remark; the one on ``macs_outside_layers`` begins "Warning:") and ``macs_outside_layers``, the
    multiply-accumulates torch counted in operations outside the recorded layers (functional
    matmuls, attention), which are not in the totals.
    """

    name: str
    input: tuple[int, int, int]
    layers: tuple[Conv | Linear | Other, ...]
    dataset: str | None = None
    family: str | None = None
    notes: tuple[str, ...] = ()
    macs_outside_layers: int | None = None

    def convs(self) -> list[Conv]:
        return [layer for layer in self.layers if isinstance(layer, Conv)]

    def by_name(self) -> dict[str, Conv | Linear]:
        return {layer.name: layer for layer in self.layers}

    def with_layers(self, layers) -> "ModelSpec":
        return replace(self, layers=tuple(layers))


class Builder:
    """Appends layer records while tracking the feature map (channels, size), as a forward pass would."""

    def __init__(self, channels: int, size: int):
        self.channels, self.size, self.layers = channels, size, []

    def conv(self, name: str, N: int, K: int = 3, stride: int = 1, bias: bool = False, norm: bool = True,
             kind: str = "standard", source: tuple[int, int] | None = None) -> Conv:
        """A conv of the current map, or of ``source`` = (M, D_in) (a shortcut's input); padding K // 2."""
        M, D_in = source or (self.channels, self.size)
        D_out = output_size(D_in, K, stride)
        norms = (M, N) if kind == "dwc_pwc" and norm else (N,) if norm else ()
        layer = Conv(name, ConvSpec(M=M, N=N, K=K, H=D_out, stride=stride, bias=bias, name=name), D_in,
                     kind=kind, norm=norms)
        self.layers.append(layer)
        self.channels, self.size = N, D_out
        return layer

    def pool(self, K: int, stride: int, padding: int = 0):
        self.size = output_size(self.size, K, stride, padding)

    def linear(self, name: str, out_features: int, in_features: int | None = None, bias: bool = True,
               norm: bool = False):
        in_features = self.channels if in_features is None else in_features
        self.layers.append(Linear(name, in_features, out_features, bias, (out_features,) if norm else ()))
        self.channels = out_features
