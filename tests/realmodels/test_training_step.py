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


def grouped_weight_gradients(model: nn.Module, size) -> int:
    """(G − 1) × the forward MACs of every grouped convolution: what FlopCounterMode adds to their weight gradients.

    A convolution's forward, by hand: images · output positions · Cout · Cin/G · k² (its output from a hook)."""
    extra = []

    def hook(conv, args, output):
        if conv.groups > 1:
            forward = output.shape[0] * output.shape[2] * output.shape[3] * conv.weight.numel()
            extra.append((conv.groups - 1) * forward)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(BATCH, *size, device="meta"))
    for handle in handles:
        handle.remove()
    return sum(extra)


def cpu_attention_macs(model: nn.Module, size) -> int:
    """The attention FlopCounterMode misses: per nn.MultiheadAttention call on B×L×E tokens with H heads of
    E/H, forward B·H·L·L·(E/H + E/H) and backward B·H·L·L·(3·E/H + 2·E/H) (the CPU kernel recomputes QKᵀ)."""
    calls = []

    def hook(attention, args, output):
        b, length, e = args[0].shape
        head = e // attention.num_heads
        calls.append(b * attention.num_heads * length * length * (2 * head + 5 * head))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    with torch.no_grad():
        model(torch.zeros(BATCH, *size, device="meta"))
    for handle in handles:
        handle.remove()
    return sum(calls)


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
        assert theirs - ours == grouped_weight_gradients(built(name), size) > 0
    elif missed == "attention":
        assert ours - theirs == cpu_attention_macs(built(name), size) > 0
        assert counter.backward_by_op["attention"] > 0
    else:
        assert ours == theirs
    spec = trace_step(built(name), size, name, batch=BATCH)
    report = analyze(spec, variant="standard", convention="exact", train=True)
    assert report.flops == ours and not spec.uncounted and not spec.notes
