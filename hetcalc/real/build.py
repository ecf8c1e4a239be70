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


def conv_unit(layer: Conv) -> nn.Module:
    """The convolution of ``layer`` as built (its kind's layer), each stage followed by its BatchNorm, then SE."""
    M, N, K, s, bias = layer.M, layer.N, layer.K, layer.spec.stride, layer.spec.bias
    if (
        layer.kind == "dwc_pwc" and len(layer.norm) == 2
    ):  # MobileNet's own block: BN + ReLU between the stages
        modules = [
            nn.Conv2d(M, M, K, s, K // 2, groups=M, bias=bias),
            nn.BatchNorm2d(M),
            nn.ReLU(inplace=True),
            nn.Conv2d(M, N, 1, bias=bias),
        ]
    else:
        kind, impl = ("hetconv", layer.impl) if layer.impl else (layer.kind, "exact")
        modules = [build_layer(kind, M, N, K, layer.setting, stride=s, bias=bias, impl=impl, mid=layer.mid)]
    modules += [nn.BatchNorm2d(N)] if layer.norm else []
    modules += [SqueezeExcite(N, layer.se)] if layer.se else []
    return nn.Sequential(*modules)


def pooling(pool) -> nn.Module:
    return nn.MaxPool2d(pool.K, pool.stride, pool.padding)


def classifier(layers: list[Linear], units: dict | None = None) -> nn.Sequential:
    """Linear layers, each but the last followed by its BatchNorm1d (if any), ReLU and dropout; ``units``
    gains each record's modules."""
    modules = []
    for i, layer in enumerate(layers):
        own = [nn.Linear(layer.in_features, layer.out_features, layer.bias)]
        if i < len(layers) - 1:
            own += [nn.BatchNorm1d(n) for n in layer.norm]
            modules += own + [nn.ReLU(inplace=True), nn.Dropout()]
        else:
            modules += own
        if units is not None:
            units[layer.name] = own
    return nn.Sequential(*modules)


def units(model: nn.Module) -> dict[str, list[str]]:
    """Record name → the qualified names of the modules ``build_model`` built for it (its unit, its BatchNorm)."""
    names = {id(module): name for name, module in model.named_modules()}
    return {record: [names[id(m)] for m in modules] for record, modules in model.hetcalc_units.items()}


class VGG(nn.Module):
    """Convs with ReLU and the spec's max-pools; adaptive average pool to the classifier's input; classifier."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        pools, features, linears, built = dict(spec.pools), [], [], {}
        for i, layer in enumerate(spec.layers):
            if isinstance(layer, Linear):
                linears.append(layer)
                features += [pooling(pools[i])] if i in pools and len(linears) == 1 else []
                continue
            built[layer.name] = [conv_unit(layer)]
            features += ([pooling(pools[i])] if i in pools else []) + [
                built[layer.name][0],
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*features)
        side = round((linears[0].in_features // spec.convs()[-1].N) ** 0.5)
        self.avgpool = nn.AdaptiveAvgPool2d(side)
        self.classifier = classifier(linears, built)
        self.hetcalc_units = built

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Block(nn.Module):
    """A residual block: its convs (ReLU between), plus a downsample conv or an option-A shortcut."""

    def __init__(self, convs: list[Conv], downsample: Conv | None):
        super().__init__()
        self.convs = nn.ModuleList(conv_unit(layer) for layer in convs)
        self.downsample = conv_unit(downsample) if downsample else None
        self.units = {layer.name: [unit] for layer, unit in zip(convs, self.convs)}
        self.units.update({downsample.name: [self.downsample]} if downsample else {})
        first, last = convs[0], convs[-1]
        self.stride = 1 if first.D_in == last.spec.H else first.D_in // last.spec.H
        self.pad = last.N - first.M  # option A: zero channels where the width grows

    def forward(self, x):
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = F.relu(y)
        if self.downsample is not None:
            shortcut = self.downsample(x)
        else:
            shortcut = x[:, :, :: self.stride, :: self.stride]
            if self.pad:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(y + shortcut)


class ResNet(nn.Module):
    """Stem (+ the spec's pooling), residual blocks as the records name them, global average pooling, fc."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        stem, *rest, fc = spec.layers
        self.stem = nn.Sequential(conv_unit(stem), nn.ReLU(inplace=True))
        self.pool = pooling(dict(spec.pools)[1]) if 1 in dict(spec.pools) else nn.Identity()
        blocks: dict[str, list[Conv]] = {}
        for layer in rest:
            blocks.setdefault(layer.block, []).append(layer)
        self.blocks = nn.Sequential(
            *(
                Block([c for c in convs if not c.shortcut], next((c for c in convs if c.shortcut), None))
                for convs in blocks.values()
            )
        )
        self.fc = nn.Linear(fc.in_features, fc.out_features, fc.bias)
        self.hetcalc_units = {stem.name: [self.stem[0]], fc.name: [self.fc]}
        for block in self.blocks:
            self.hetcalc_units.update(block.units)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.pool(self.stem(x))), 1).flatten(1))


class MobileNet(nn.Module):
    """Stem and blocks, each followed by ReLU; global average pooling; fc."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        *convs, fc = spec.layers
        built = {layer.name: [conv_unit(layer)] for layer in convs}
        self.features = nn.Sequential(
            *(m for (unit,) in built.values() for m in (unit, nn.ReLU(inplace=True)))
        )
        self.fc = nn.Linear(fc.in_features, fc.out_features, fc.bias)
        self.hetcalc_units = {**built, fc.name: [self.fc]}

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


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
