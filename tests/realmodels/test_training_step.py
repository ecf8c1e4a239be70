"""A training step of torchvision's models: hetcalc's traced count against torch's FlopCounterMode, on meta.

FlopCounterMode counts 2 FLOPs per multiply-accumulate, forward and backward, so its total / 2 is a step's MACs.
hetcalc's count equals it, or differs by exactly what FlopCounterMode counts otherwise, each difference named
here with its hand count:

* a grouped convolution's weight gradient: FlopCounterMode counts it as the ungrouped convolution's
  (``conv_backward_flop`` passes the weight's full input channels), G times the products it runs, so it counts
  (G − 1) × the forward's MACs too many for every grouped convolution (MobileNetV3, EfficientNet: depthwise);
* the CPU's attention kernels (``_scaled_dot_product_flash_attention_for_cpu`` and its backward), which it has
  no formula for: it misses B·H·L·S·(E + Ev) forward and B·H·L·S·(3·E + 2·Ev) backward per attention call (ViT).

Both count the same run: ``hetcalc.real.counter.cpu_attention`` makes meta take the kernel the CPU takes.
"""

from __future__ import annotations

from functools import partial

import pytest

torchvision = pytest.importorskip("torchvision")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision import models  # noqa: E402

from hetcalc.core.analyze import analyze  # noqa: E402
from hetcalc.real.counter import MacCounter, cpu_attention  # noqa: E402
from hetcalc.real.load import build  # noqa: E402
from hetcalc.real.trace import trace_step  # noqa: E402

BATCH = 2


def built(name: str) -> nn.Module:
    return build(partial(models.get_model_builder(name), weights=None), "meta").train()


def flop_counter_macs(model: nn.Module, size) -> int:
    """FlopCounterMode's count of the same step (forward, sum, backward), in MACs."""
    with cpu_attention(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(BATCH, *size, device="meta")).sum().backward()
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


def per_call(model: nn.Module, size, kind: type, macs) -> int:
    """The sum of ``macs(module, input, output)`` over every call of a ``kind`` module in one forward (no grad)."""
    found = []
    handles = [
        m.register_forward_hook(lambda module, args, output: found.append(macs(module, args[0], output)))
        for m in model.modules()
        if isinstance(m, kind)
    ]
    with torch.no_grad():
        model(torch.zeros(BATCH, *size, device="meta"))
    for handle in handles:
        handle.remove()
    return sum(found)


def grouped_weight_gradients(conv, x, output) -> int:
    """(G − 1) × the forward MACs of a grouped convolution: what FlopCounterMode adds to its weight gradient. Its
    forward, by hand: images · output positions · Cout · Cin/G · k²."""
    forward = output.shape[0] * output.shape[2] * output.shape[3] * conv.weight.numel()
    return (conv.groups - 1) * forward


def cpu_attention_macs(attention, x, output) -> int:
    """The attention FlopCounterMode misses in a nn.MultiheadAttention call on B×L×E tokens with H heads of E/H:
    forward B·H·L·L·(E/H + E/H), backward B·H·L·L·(3·E/H + 2·E/H) (the CPU kernel recomputes QKᵀ)."""
    b, length, e = x.shape
    head = e // attention.num_heads
    return b * attention.num_heads * length * length * (2 * head + 5 * head)


@pytest.mark.parametrize(
    "name,size,missed",
    [
        ("resnet18", (3, 224, 224), None),
        ("vgg11", (3, 224, 224), None),
        ("swin_t", (3, 224, 224), None),
        ("mobilenet_v3_small", (3, 224, 224), "grouped"),
        ("efficientnet_b0", (3, 224, 224), "grouped"),
        ("vit_b_16", (3, 224, 224), "attention"),
    ],
)
def test_traced_step_equals_flop_counter_mode(name, size, missed):
    model = built(name)
    with MacCounter(model) as counter:
        model(torch.zeros(BATCH, *size, device="meta")).sum().backward()
    ours = counter.total
    theirs = flop_counter_macs(built(name), size)
    if missed == "grouped":
        assert theirs - ours == per_call(built(name), size, nn.Conv2d, grouped_weight_gradients) > 0
    elif missed == "attention":
        assert ours - theirs == per_call(built(name), size, nn.MultiheadAttention, cpu_attention_macs) > 0
        assert counter.backward_by_op["attention"] > 0
    else:
        assert ours == theirs
    spec = trace_step(built(name), size, name, batch=BATCH)
    report = analyze(spec, variant="standard", convention="exact", train=True)
    assert report.flops == ours and not spec.uncounted and not spec.notes
