"""Zoo models as torch modules, built from the same layer records that are counted.

``build_model(name, variant=..., P=...)`` applies the variant to the spec (``hetcalc.core.analyze``),
then wires the family around one module per record: the record decides M, N, K, stride, bias,
kind and its BatchNorm (its layer from ``hetcalc.core.kinds``), the spec's ``pools`` and the
records' ``block``/``shortcut`` decide pooling and residual blocks, so the module holds exactly
what the exact convention counts. ``units(model)`` maps each record to the modules built for it (its
convolution or linear layer, BatchNorm and SE), by qualified name. torch is imported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.analyze import apply_variant
from ..core.records import Conv, Linear, ModelSpec
from ..core.zoo import get_model
from .layers import build_layer


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al.): global average pool, Linear(C, C/R), ReLU, Linear(C/R, C), sigmoid, rescale."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1, self.fc2 = (
            nn.Linear(channels, channels // reduction),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x):
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1).flatten(1)))))
        return x * scale[:, :, None, None]


def conv_layer(layer: Conv) -> nn.Module:
    """The convolution of ``layer`` as built: its kind's real layer (MobileNet's own DWC+PWC block: the two
    stages with BatchNorm and ReLU between them)."""
    M, N, K, s, bias = layer.M, layer.N, layer.K, layer.spec.stride, layer.spec.bias
    if layer.kind == "dwc_pwc" and len(layer.norm) == 2:
        return nn.Sequential(
            nn.Conv2d(M, M, K, s, K // 2, groups=M, bias=bias),
            nn.BatchNorm2d(M),
            nn.ReLU(inplace=True),
            nn.Conv2d(M, N, 1, bias=bias),
        )
    kind, impl = ("hetconv", layer.impl) if layer.impl else (layer.kind, "exact")
    return build_layer(kind, M, N, K, layer.setting, stride=s, bias=bias, impl=impl, mid=layer.mid)


def after(layer: Conv) -> nn.Module:
    """What follows a convolution record: its BatchNorm on the output, then SE (nn.Identity for neither)."""
    modules = [nn.BatchNorm2d(layer.N)] if layer.norm else []
    modules += [SqueezeExcite(layer.N, layer.se)] if layer.se else []
    return nn.Sequential(*modules) if modules else nn.Identity()


def pooling(pool) -> nn.Module:
    return nn.MaxPool2d(pool.K, pool.stride, pool.padding)


class Network(nn.Module):
    """A zoo network whose layers sit at their records' names (``layer1.0.conv1`` is ``model.layer1[0].conv1``),
    so that a plan names them alike, counted from the records or traced from the module. What follows each
    convolution (BatchNorm, SE) is in ``after``, keyed by its record's name (dots as underscores)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.records = [layer for layer in spec.layers if isinstance(layer, (Conv, Linear))]
        self.after = nn.ModuleDict()
        for layer in self.records:
            self._place(layer.name, conv_layer(layer) if isinstance(layer, Conv) else _linear(layer))
            if isinstance(layer, Conv):
                self.after[_key(layer.name)] = after(layer)

    def _place(self, name: str, module: nn.Module) -> None:
        parent = self
        *path, leaf = name.split(".")
        for part in path:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        parent.add_module(leaf, module)

    def unit(self, layer: Conv, x):
        """The convolution of record ``layer`` on ``x``, then its BatchNorm and SE."""
        return self.after[_key(layer.name)](self.get_submodule(layer.name)(x))


def _key(name: str) -> str:
    return name.replace(".", "_")


def units(model: Network) -> dict[str, list[str]]:
    """Record name → the qualified names of the modules ``build_model`` built for it: its layer, and what
    follows it (a convolution's BatchNorm and SE in ``after``, a classifier layer's BatchNorm1d in ``norms``)."""
    norms = getattr(model, "norms", {})
    found = {}
    for layer in model.records:
        key = _key(layer.name)
        follows = f"after.{key}" if isinstance(layer, Conv) else f"norms.{key}" if key in norms else None
        found[layer.name] = [layer.name] + ([follows] if follows else [])
    return found


def _linear(layer: Linear) -> nn.Module:
    return nn.Linear(layer.in_features, layer.out_features, layer.bias)


class VGG(Network):
    """Convs with ReLU and the spec's max-pools; adaptive average pool to the classifier's input; classifier
    (BatchNorm1d, if any, ReLU and dropout between its layers)."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.pools = nn.ModuleDict({str(i): pooling(pool) for i, pool in spec.pools})
        self.order = [
            (str(i) if str(i) in self.pools else None, layer) for i, layer in enumerate(spec.layers)
        ]
        convs = [layer for layer in self.records if isinstance(layer, Conv)]
        linears = [layer for layer in self.records if isinstance(layer, Linear)]
        self.norms = nn.ModuleDict(
            {_key(layer.name): nn.BatchNorm1d(n) for layer in linears[:-1] for n in layer.norm}
        )
        self.avgpool = nn.AdaptiveAvgPool2d(round((linears[0].in_features // convs[-1].N) ** 0.5))
        self.dropout = nn.Dropout()

    def forward(self, x):
        flat = False
        for pool, layer in self.order:
            if isinstance(layer, Linear) and not flat:
                x = torch.flatten(self.avgpool(self.pools[pool](x) if pool else x), 1)
                flat = True
            elif pool:
                x = self.pools[pool](x)
            if isinstance(layer, Conv):
                x = F.relu(self.unit(layer, x))
            elif isinstance(layer, Linear):
                x = self.get_submodule(layer.name)(x)
                if layer is not self.order[-1][1]:
                    x = self.norms[_key(layer.name)](x) if _key(layer.name) in self.norms else x
                    x = self.dropout(F.relu(x))
        return x


class ResNet(Network):
    """Stem (+ the spec's pooling), residual blocks as the records name them (each: its convs with ReLU
    between, plus a shortcut convolution or an option-A shortcut), global average pooling, fc."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.stem, *rest, self.fc_layer = spec.layers
        self.pool = pooling(dict(spec.pools)[1]) if 1 in dict(spec.pools) else nn.Identity()
        blocks: dict[str, list[Conv]] = {}
        for layer in rest:
            blocks.setdefault(layer.block, []).append(layer)
        self.blocks = [
            ([c for c in convs if not c.shortcut], next((c for c in convs if c.shortcut), None))
            for convs in blocks.values()
        ]

    def forward(self, x):
        x = self.pool(F.relu(self.unit(self.stem, x)))
        for convs, shortcut in self.blocks:
            y = x
            for i, conv in enumerate(convs):
                y = self.unit(conv, y)
                y = F.relu(y) if i < len(convs) - 1 else y
            if shortcut is not None:
                x = self.unit(shortcut, x)
            else:  # option A: subsample, zero channels where the width grows
                first, last = convs[0], convs[-1]
                stride = 1 if first.D_in == last.spec.H else first.D_in // last.spec.H
                x = x[:, :, ::stride, ::stride]
                pad = last.N - first.M
                x = F.pad(x, (0, 0, 0, 0, pad // 2, pad - pad // 2)) if pad else x
            x = F.relu(y + x)
        return self.get_submodule(self.fc_layer.name)(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MobileNet(Network):
    """Stem and blocks, each followed by ReLU; global average pooling; fc."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        *self.convs, self.fc_layer = spec.layers

    def forward(self, x):
        for layer in self.convs:
            x = F.relu(self.unit(layer, x))
        return self.get_submodule(self.fc_layer.name)(F.adaptive_avg_pool2d(x, 1).flatten(1))


FAMILIES = {"vgg": VGG, "resnet_cifar": ResNet, "resnet": ResNet, "mobilenet": MobileNet}


def build_model(
    name, dataset: str | None = None, variant: str = "standard", P=None, G=None, se=None
) -> nn.Module:
    """Zoo model ``name`` (or a ModelSpec with a family) as an ``nn.Module``, with ``variant`` applied.

    variant: standard, hetconv (P: a number, "C", or one per replaced layer), gwc_pwc (G),
    dwc_pwc; ``se``: SE reduction after each replaced layer. Counts match
    ``hetcalc.core.analyze.exact_counts`` (fvcore MACs without BatchNorm; all parameters).
    Layers the variant does not fit stay as they are (``hetcalc.core.kinds.kept``), as they are counted.
    """
    spec = name if isinstance(name, ModelSpec) else get_model(name, dataset)
    if spec.family not in FAMILIES:
        raise ValueError(f"{spec.name}: no torch wiring for family {spec.family!r}")
    model = FAMILIES[spec.family](apply_variant(spec, variant, P, G, se))
    model.hetcalc_input_size = tuple(spec.input)  # its input, for hetcalc.convert and trace_factory
    return model
