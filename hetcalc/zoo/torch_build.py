"""Zoo models as torch modules, built from the same layer records that are counted.

``build_model(name, variant=..., P=...)`` applies the variant to the spec (``hetcalc.analyze``),
then wires the family (pooling, residuals) around one module per record: the record decides
M, N, K, stride, bias, kind and its BatchNorm, so the module holds exactly what the exact
convention counts. torch is imported here only; the real layers come from ``hetcalc.layers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..analyze import apply_variant
from .model import Conv, Linear, ModelSpec
from .registry import get_model


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al.): global average pool, Linear(C, C/R), ReLU, Linear(C/R, C), sigmoid, rescale."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, channels // reduction), nn.Linear(channels // reduction, channels)

    def forward(self, x):
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1).flatten(1)))))
        return x * scale[:, :, None, None]


def conv_unit(layer: Conv) -> nn.Module:
    """The convolution of ``layer`` as built (by kind), each stage followed by its BatchNorm, then SE."""
    from ..layers import DwPwConv2d, GwPwConv2d, HetConv2d

    M, N, K, s, bias = layer.M, layer.N, layer.K, layer.spec.stride, layer.spec.bias
    if layer.kind == "dwc_pwc" and len(layer.norm) == 2:  # MobileNet's own block: BN + ReLU between the stages
        modules = [nn.Conv2d(M, M, K, s, K // 2, groups=M, bias=bias), nn.BatchNorm2d(M), nn.ReLU(inplace=True),
                   nn.Conv2d(M, N, 1, bias=bias)]
    elif layer.kind == "standard":
        modules = [nn.Conv2d(M, N, K, s, K // 2, bias=bias)]
    elif layer.kind == "hetconv":
        modules = [HetConv2d(M, N, K, layer.P, stride=s, bias=bias)]
    elif layer.kind == "dwc_pwc":
        modules = [DwPwConv2d(M, N, K, stride=s, bias=bias)]
    elif layer.kind == "gwc_pwc":
        modules = [GwPwConv2d(M, N, K, layer.G, stride=s, bias=bias)]
    else:
        raise ValueError(f"no torch module for kind {layer.kind!r}")
    modules += [nn.BatchNorm2d(N)] if layer.norm else []
    modules += [SqueezeExcite(N, layer.se)] if layer.se else []
    return nn.Sequential(*modules)


def classifier(layers: list[Linear]) -> nn.Sequential:
    """Linear layers, each but the last followed by its BatchNorm1d (if any), ReLU and dropout."""
    modules = []
    for i, layer in enumerate(layers):
        modules.append(nn.Linear(layer.in_features, layer.out_features, layer.bias))
        if i < len(layers) - 1:
            modules += [nn.BatchNorm1d(n) for n in layer.norm] + [nn.ReLU(inplace=True), nn.Dropout()]
    return nn.Sequential(*modules)


class VGG(nn.Module):
    """Convs with ReLU, a 2×2 max-pool wherever the map halves and after the last conv; adaptive pool; classifier."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        convs, linears = spec.convs(), [layer for layer in spec.layers if isinstance(layer, Linear)]
        features = []
        for i, layer in enumerate(convs):
            if i and layer.D_in < convs[i - 1].spec.H:
                features.append(nn.MaxPool2d(2))
            features += [conv_unit(layer), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*features, nn.MaxPool2d(2))
        side = round((linears[0].in_features // convs[-1].N) ** 0.5)
        self.avgpool = nn.AdaptiveAvgPool2d(side)
        self.classifier = classifier(linears)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Block(nn.Module):
    """A residual block: its convs (ReLU between), plus a downsample conv or an option-A shortcut."""

    def __init__(self, convs: list[Conv], downsample: Conv | None):
        super().__init__()
        self.convs = nn.ModuleList(conv_unit(layer) for layer in convs)
        self.downsample = conv_unit(downsample) if downsample else None
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
            shortcut = x[:, :, ::self.stride, ::self.stride]
            if self.pad:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(y + shortcut)


class ResNet(nn.Module):
    """Stem (+ 3×3 max-pool for ImageNet), blocks grouped by their names ("layer1.0.conv1" …), GAP, fc."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        stem, *rest = spec.layers
        self.stem = nn.Sequential(conv_unit(stem), nn.ReLU(inplace=True))
        blocks: dict[str, list[Conv]] = {}
        for layer in rest[:-1]:
            blocks.setdefault(layer.name.split(".conv")[0].split(".downsample")[0], []).append(layer)
        first_D_in = rest[0].D_in
        self.pool = nn.MaxPool2d(3, 2, 1) if first_D_in < stem.spec.H else nn.Identity()
        self.blocks = nn.Sequential(*(Block([c for c in convs if ".conv" in c.name],
                                            next((c for c in convs if ".downsample" in c.name), None))
                                      for convs in blocks.values()))
        self.fc = nn.Linear(rest[-1].in_features, rest[-1].out_features, rest[-1].bias)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.pool(self.stem(x))), 1).flatten(1))


class MobileNet(nn.Module):
    """Stem and blocks, each followed by ReLU; global average pooling; fc."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        *convs, fc = spec.layers
        self.features = nn.Sequential(*(m for layer in convs for m in (conv_unit(layer), nn.ReLU(inplace=True))))
        self.fc = nn.Linear(fc.in_features, fc.out_features, fc.bias)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


FAMILIES = {"vgg": VGG, "resnet_cifar": ResNet, "resnet": ResNet, "mobilenet": MobileNet}


def build_model(name, dataset: str | None = None, variant: str = "standard", P=None, G=None, se=None) -> nn.Module:
    """Zoo model ``name`` (or a ModelSpec with a family) as an ``nn.Module``, with ``variant`` applied.

    variant: standard, hetconv (P: a number, "C", or one per replaced layer), gwc_pwc (G),
    dwc_pwc; ``se``: SE reduction after each replaced layer. Counts match
    ``hetcalc.analyze.exact_counts`` (fvcore MACs without BatchNorm; all parameters).
    """
    spec = name if isinstance(name, ModelSpec) else get_model(name, dataset)
    if spec.family not in FAMILIES:
        raise ValueError(f"{spec.name}: no torch wiring for family {spec.family!r}")
    return FAMILIES[spec.family](apply_variant(spec, variant, P, G, se))
