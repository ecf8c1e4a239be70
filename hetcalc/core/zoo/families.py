"""The families (VGG, ResNet for CIFAR, ResNet for ImageNet, MobileNet v1) and their entrypoints.

A family builder turns a few arguments into a ModelSpec by walking the network as a forward
pass would; the entrypoints below are the zoo. Definitions follow the community's: Li et al.
2017 for CIFAR VGG, He et al. 2016 for CIFAR ResNet, torchvision for ImageNet models.
"""

from __future__ import annotations

from ..records import Builder, ModelSpec
from .registry import register_model

DATASETS = {"cifar10": ((3, 32, 32), 10), "imagenet": ((3, 224, 224), 1000)}

VGG_CFG = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}
# MobileNet v1 after the stem: (output channels, stride) of the 13 depthwise-separable blocks.
MOBILENET_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def _spec(builder: Builder, dataset: str, family: str) -> ModelSpec:
    return ModelSpec(
        "", DATASETS[dataset][0], tuple(builder.layers), dataset, family, pools=tuple(builder.pools)
    )


def vgg(dataset: str, depth: int) -> ModelSpec:
    """3×3 convs with bias; max-pool 2×2 at each "M". CIFAR-10: BatchNorm after every conv and the
    first linear, classifier 512 → 512 → 10 (Li et al. 2017). ImageNet: torchvision's vgg (no
    BatchNorm), adaptive average pool to 7×7, classifier 25088 → 4096 → 4096 → 1000."""
    (C, H, _), classes = DATASETS[dataset]
    cifar = dataset == "cifar10"
    b = Builder(C, H)
    convs = 0
    for width in VGG_CFG[depth]:
        if width == "M":
            b.pool(2, 2)
        else:
            convs += 1
            b.conv(f"conv{convs}", width, 3, bias=True, norm=cifar)
    if cifar:
        b.linear("fc1", 512, b.channels * b.size**2, norm=True)
        b.linear("fc2", classes)
    else:
        b.linear("fc1", 4096, b.channels * 7 * 7)
        b.linear("fc2", 4096)
        b.linear("fc3", classes)
    return _spec(b, dataset, "vgg")


def resnet_cifar(dataset: str, depth: int) -> ModelSpec:
    """He et al.'s CIFAR ResNet: stem 3→16, three stages of (depth − 2)/6 basic blocks of 16, 32, 64
    channels, option-A shortcuts (stride-2 subsampling, zero-padded channels: no convolution),
    no conv bias, BatchNorm, global average pooling, Linear(64, classes)."""
    (C, H, _), classes = DATASETS[dataset]
    blocks = (depth - 2) // 6
    b = Builder(C, H)
    b.conv("conv1", 16)
    for stage, width in enumerate((16, 32, 64), 1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            b.block = f"layer{stage}.{block}"
            b.conv(f"layer{stage}.{block}.conv1", width, 3, stride)
            b.conv(f"layer{stage}.{block}.conv2", width, 3)
    b.block = ""
    b.linear("fc", classes)
    return _spec(b, dataset, "resnet_cifar")


def resnet(dataset: str, layers: tuple[int, ...], bottleneck: bool) -> ModelSpec:
    """torchvision's ResNet: 7×7 stride-2 stem, 3×3 stride-2 max-pool, four stages (64…512 wide);
    a 1×1 conv + BatchNorm shortcut where the shape changes; bottlenecks (ResNet-50) stride on
    the 3×3 conv and expand 4×; no conv bias; global average pooling; fc with bias."""
    (C, H, _), classes = DATASETS[dataset]
    expansion = 4 if bottleneck else 1
    b = Builder(C, H)
    b.conv("conv1", 64, 7, 2)
    b.pool(3, 2, 1)
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), layers), 1):
        for block in range(count):
            stride, source, name = (
                (2 if stage > 1 and block == 0 else 1),
                (b.channels, b.size),
                f"layer{stage}.{block}",
            )
            b.block = name
            if bottleneck:
                b.conv(f"{name}.conv1", width, 1)
                b.conv(f"{name}.conv2", width, 3, stride)
                b.conv(f"{name}.conv3", width * expansion, 1)
            else:
                b.conv(f"{name}.conv1", width, 3, stride)
                b.conv(f"{name}.conv2", width, 3)
            if stride != 1 or source[0] != width * expansion:
                b.conv(f"{name}.downsample.0", width * expansion, 1, stride, source=source)
    b.block = ""
    b.linear("fc", classes)
    return _spec(b, dataset, "resnet")


def mobilenet_v1(dataset: str) -> ModelSpec:
    """MobileNet v1: 3×3 stem 3 → 32 (stride 1 on CIFAR-10, 2 on ImageNet), 13 depthwise-separable
    blocks (depthwise 3×3 + BN + ReLU, pointwise 1×1 + BN + ReLU), no biases, global average
    pooling, Linear(1024, classes)."""
    (C, H, _), classes = DATASETS[dataset]
    b = Builder(C, H)
    b.conv("conv1", 32, 3, 1 if dataset == "cifar10" else 2)
    for i, (width, stride) in enumerate(MOBILENET_BLOCKS, 1):
        b.conv(f"block{i}", width, 3, stride, kind="dwc_pwc")
    b.linear("fc", classes)
    return _spec(b, dataset, "mobilenet")


# The zoo.


@register_model("cifar10", "imagenet")
def vgg16(dataset):
    """VGG-16: CIFAR-10 as Li et al. 2017 (BN, 512→512→10), ImageNet as torchvision (224×224)."""
    return vgg(dataset, depth=16)


@register_model("cifar10", "imagenet")
def vgg19(dataset):
    """VGG-19: CIFAR-10 as Li et al. 2017 (BN, 512→512→10), ImageNet as torchvision (224×224)."""
    return vgg(dataset, depth=19)


@register_model("cifar10")
def resnet56(dataset):
    """ResNet-56 for CIFAR-10 (He et al. 2016): 3 stages of 9 basic blocks, option-A shortcuts."""
    return resnet_cifar(dataset, depth=56)


@register_model("cifar10")
def resnet110(dataset):
    """ResNet-110 for CIFAR-10 (He et al. 2016): 3 stages of 18 basic blocks, option-A shortcuts."""
    return resnet_cifar(dataset, depth=110)


@register_model("cifar10", "imagenet")
def mobilenet(dataset):
    """MobileNet v1: CIFAR-10 with a stride-1 stem, or ImageNet 224×224 with a stride-2 stem."""
    return mobilenet_v1(dataset)


@register_model("imagenet")
def resnet18(dataset):
    """ResNet-18 (torchvision): basic blocks [2, 2, 2, 2], ImageNet 224×224."""
    return resnet(dataset, layers=(2, 2, 2, 2), bottleneck=False)


@register_model("imagenet")
def resnet34(dataset):
    """ResNet-34 (torchvision): basic blocks [3, 4, 6, 3], ImageNet 224×224."""
    return resnet(dataset, layers=(3, 4, 6, 3), bottleneck=False)


@register_model("imagenet")
def resnet50(dataset):
    """ResNet-50 (torchvision, v1.5): bottlenecks [3, 4, 6, 3], stride on the 3×3 conv, 224×224."""
    return resnet(dataset, layers=(3, 4, 6, 3), bottleneck=True)
