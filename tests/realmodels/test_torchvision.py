"""Real models: hetcalc's counts of torchvision's models against torchvision's published numbers.

Every classification model that ``torchvision.models.list_models(module=torchvision.models)``
returns is built with ``weights=None`` as its DEFAULT weights build it, traced at the weights'
crop size, and compared with ``weights.meta``:

* ``num_params`` — exactly (every learnable tensor once, including modules eval never runs:
  inception_v3's AuxLogits).
* ``_ops`` — GFLOPs with fvcore's unit, one multiply-accumulate = one FLOP (resnet50: 4.089 for
  its 4,089,184,256 conv + linear MACs), BatchNorm, pooling and activations left out, attention
  and every matmul in (vit_b_16's 17.564 holds 715,327,488 MACs of Q·Kᵀ and A·V). It is the MAC
  count rounded to nearest at 3 decimals, not truncated: of the 80 models 30 have a count whose
  truncation differs from ``_ops`` (vit_b_16 17.563828 → 17.564), and every count lies within
  half a unit of the last digit (largest gap 0.000493, mnasnet0_75). So the test asks
  ``|MACs − _ops·10⁹| ≤ 0.5·10⁶``, in integers.

Models are built on the meta device (no weights allocated, nothing computed). RegNet cannot be
*built* there (``BlockParams.from_init_params`` computes its widths with tensors and reads them
back); it is built with its widths computed on the CPU and every parameter and buffer created
on meta (``hetcalc.real.trace.build``), so regnet_y_128gf (644.8M parameters) is never materialised.

Detection and segmentation models (no weights downloaded) are counted for completeness of the
totals, and converted CNNs are checked against fvcore to the integer.
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import partial

import pytest

torchvision = pytest.importorskip("torchvision")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torchvision import models  # noqa: E402
from torchvision.models import detection, segmentation  # noqa: E402

import hetcalc  # noqa: E402
from hetcalc.core.analyze import analyze  # noqa: E402
from hetcalc.real import fvcount  # noqa: E402
from hetcalc.real.load import build, trace_factory  # noqa: E402
from hetcalc.real.trace import trace  # noqa: E402

CLASSIFICATION = models.list_models(module=models)

# Arguments the published DEFAULT weights' builder sets that ``weights=None`` would not.
BUILD_ARGS = {
    # torchvision builds GoogLeNet with aux heads to load the weights, then drops them
    # (aux_logits=False, aux1 = aux2 = None): num_params 6,624,904 holds no aux head.
    "googlenet": {"aux_logits": False, "init_weights": False},
    # Inception v3's weights keep AuxLogits: num_params 27,161,264 counts them; eval never runs them.
    "inception_v3": {"aux_logits": True, "init_weights": False},
}


def build_args(name: str, weights) -> dict:
    """The keyword arguments that build ``name`` as its published weights do (less the weights)."""
    args = {"num_classes": len(weights.meta["categories"]), **BUILD_ARGS.get(name, {})}
    if name.startswith("vit_"):  # ViT's position embedding is sized by the weights' min_size (vit_h_14: 518)
        args["image_size"] = weights.meta["min_size"][0]
    return args


def published(name: str):
    """(DEFAULT weights, builder keyword arguments, square input side) of a classification model."""
    weights = models.get_model_weights(name).DEFAULT
    return weights, build_args(name, weights), weights.transforms().crop_size[0]


def build_on_meta(builder, **args) -> nn.Module:
    """``builder(weights=None, **args)`` with no weight allocated, as ``hetcalc model --module`` builds it.

    ``hetcalc.real.trace.build`` builds on the meta device, or, for a factory that computes with real
    tensors while it builds (RegNet), on the CPU with every parameter and buffer moved to meta
    as it is registered.
    """
    model = build(partial(builder, weights=None, **args), "meta")
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()]), "a tensor was materialised"
    return model


def exact(model: nn.Module, input_size):
    return analyze(trace(model, input_size), convention="exact", variant="standard")


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields each shared tensor once


# Published counts.


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_published_params_and_flops(name):
    """hetcalc's exact counts reproduce ``num_params`` exactly and ``_ops`` to its last printed digit."""
    weights, args, side = published(name)
    model = build_on_meta(models.get_model_builder(name), **args)
    report = exact(model, (3, side, side))
    assert report.params == weights.meta["num_params"]
    gmacs = Decimal(repr(weights.meta["_ops"]))
    assert abs(report.flops - int(gmacs * 10**9)) <= 500_000, (
        f"{name} at {side}×{side}: {report.flops / 1e9:.6f} GMACs, published {gmacs} (rounded to 3 decimals)"
    )


def test_inception_v3_aux_head_is_counted_in_params_and_reported_unused():
    """num_params counts AuxLogits, which eval never runs: hetcalc reports those parameters as unused."""
    weights, args, side = published("inception_v3")
    model = build_on_meta(models.inception_v3, **args)
    report = exact(model, (3, side, side))
    assert report.params == weights.meta["num_params"]
    summary = report.to_dict()
    if "params_unused" not in summary:
        pytest.skip("this hetcalc reports no params_unused")
    assert summary["params_unused"] == params(model.AuxLogits) > 0


# Detection and segmentation: data-dependent heads, counted on one input.

DENSE = {  # builder, input (C, H, W), whether its forward runs data-dependent box selection
    # 34,858,153,472 MACs at 300×300 (all convolutions; its published COCO _ops is 34.858).
    "ssd300_vgg16": (detection.ssd300_vgg16, (3, 300, 300), True),
    # Its transform resizes the image to 800×800; the box head's cost follows the proposals NMS keeps.
    # (Its published _ops, 4.494, is the convolutions up to the RPN's box selection: 4,493,592,256.)
    "fasterrcnn_mobilenet_v3_large_fpn": (detection.fasterrcnn_mobilenet_v3_large_fpn, (3, 320, 320), True),
    "deeplabv3_resnet50": (segmentation.deeplabv3_resnet50, (3, 224, 224), False),
}


def conv_macs(model: nn.Module, within: nn.Module, input_size) -> int:
    """MACs of the nn.Conv2d calls inside ``within`` during ``model``'s forward on the meta device (shapes only).

    A detection model's forward stops on meta at its first data-dependent operator (nonzero,
    after the backbone has run); the convolutions before it are all that is counted here.
    """
    total = 0

    def add(conv, inputs, output):
        nonlocal total
        total += output.numel() * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)

    hooks = [m.register_forward_hook(add) for m in within.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device="meta"))
    except NotImplementedError:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    return total


@pytest.mark.parametrize("name", list(DENSE))
def test_detection_and_segmentation_count(name):
    """Counted whole, params each tensor once; a data-dependent forward is counted on this input, and says so.

    Built on meta: box selection (nonzero, NMS) has no meta kernel, so hetcalc's trace reruns
    such a forward on the CPU, on its all-zero input, and its report notes it was "counted on
    this input". DeepLabV3 runs on meta to the end.
    """
    builder, input_size, data_dependent = DENSE[name]
    torch.manual_seed(0)
    model = build_on_meta(builder, weights_backbone=None)
    spec = trace_factory(builder, input_size, arguments={"weights": None, "weights_backbone": None})
    report = analyze(spec, convention="exact", variant="standard")
    assert report.params == params(model)
    if data_dependent:  # meta has no nonzero kernel: counted on the CPU, and said so first
        assert report.notes[0].startswith("counted on the CPU: the meta device cannot run it"), report.notes
    backbone = conv_macs(model, model.backbone, input_size)
    assert backbone > 0
    assert report.flops >= backbone
    on_this_input = [note for note in report.notes if "counted on this input" in note]
    if data_dependent:
        assert on_this_input, report.notes
    else:  # DeepLabV3: nothing but convolutions, all static; no note claims otherwise
        assert not on_this_input, report.notes
        assert report.flops == conv_macs(model, model, input_size)


# Converted CNNs against fvcore, to the integer.

# fvcore's by-operator names of the handles that count MACs; any other counted operator fails the check.
FVCORE_MAC_OPERATORS = {"conv", "linear", "addmm", "mm", "matmul", "bmm", "einsum"}
CONVERSION_MAX_PARAMS = (
    150_000_000  # larger models are not built on the CPU here (time and memory); VGG is in
)
CONVERSION_SIDE = 64  # or the weights' min_size where it is larger (inception_v3: 75, maxvit_t: 224)


class _EinsumMacs(TorchFunctionMode):
    """Exact MACs of every two-operand ``torch.einsum`` run under it: the product of all its index sizes."""

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.einsum:
            equation, *operands = args
            if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
                operands = list(operands[0])
            inputs = equation.replace(" ", "").split("->")[0].split(",")
            assert len(operands) == 2 and "." not in equation, f"no exact MAC rule for einsum {equation!r}"
            sizes = {letter: n for term, x in zip(inputs, operands) for letter, n in zip(term, x.shape)}
            self.macs += math.prod(sizes.values())
        return func(*args, **(kwargs or {}))


def einsum_macs(model: nn.Module, input_size) -> int:
    """Exact MACs of the einsums in ``model``'s forward (a meta model: shapes only).

    fvcore 0.1.5 counts a generic einsum (maxvit_t's attention) from the text of
    ``numpy.einsum_path``, whose "Optimized FLOP count" is printed as %.3e: 4 significant digits
    of 2·MACs (maxvit_t at 224: 177,022,000 for 177,020,928). The check puts this exact count
    in place of fvcore's einsum entry.
    """
    counter = _EinsumMacs()
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, *input_size, device="meta"))
    return counter.macs


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_converted_model_matches_fvcore(name):
    """``convert(model, 4)`` runs what hetcalc counts: fvcore's MACs (non-MAC handles zeroed) == exact FLOPs."""
    weights, args, _ = published(name)
    if weights.meta["num_params"] > CONVERSION_MAX_PARAMS:
        pytest.skip(
            f"{weights.meta['num_params'] / 1e6:.0f}M parameters > {CONVERSION_MAX_PARAMS // 10**6}M: not built on the CPU here"
        )
    builder = models.get_model_builder(name)
    side = max(CONVERSION_SIDE, weights.meta["min_size"][0])
    on_meta, decided = hetcalc.convert(
        build_on_meta(builder, **args), P=4, input_size=(3, side, side), return_report=True
    )
    if not decided.replaced:
        pytest.skip("convert(model, P=4) replaces no Conv2d (depthwise, grouped, 1×1 or first only)")
    torch.manual_seed(0)
    converted, conversion = hetcalc.convert(builder(weights=None, **args), decided.plan, return_report=True)
    assert conversion.replaced == decided.replaced  # the plan derived on meta, built on the CPU
    converted.eval()
    x = torch.randn(1, 3, side, side)
    # fvcore's handles of operators that carry no MAC (BatchNorm, LayerNorm on maxvit_t, pooling) zeroed
    macs, by_operator, _ = fvcount.count(converted, (x,), uncounted=tuple(fvcount.NOT_MACS))
    assert {op for op, n in by_operator.items() if n} <= FVCORE_MAC_OPERATORS, by_operator
    if by_operator.get("einsum"):
        macs += einsum_macs(on_meta, (3, side, side)) - by_operator["einsum"]
    assert exact(converted, (3, side, side)).flops == macs, by_operator


@pytest.mark.parametrize("name,side", [("resnet18", 224), ("inception_v3", 299), ("vit_h_14", 518)])
def test_the_input_size_is_read_from_the_weights(name, side):
    """A torchvision builder needs no --input-size: its DEFAULT weights' transforms say the crop size."""
    from hetcalc.real.load import default_input_size

    builder = models.get_model_builder(name)
    assert default_input_size(nn.Module(), builder) == (3, side, side)
    if name == "resnet18":
        spec = trace_factory(builder, None, arguments={"weights": None})
        assert spec.input == (3, 224, 224)
