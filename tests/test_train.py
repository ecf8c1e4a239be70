"""A training step: hand-counted nets, symbolic == traced on every kind and zoo model, activations, saved bytes, memory.

Unit: multiply-accumulates. A step is the forward pass plus what ``loss.backward()`` runs: each layer's input
gradient (none for a layer fed by data or by frozen layers only) and weight gradient (none for a frozen layer).
"""

from __future__ import annotations

import copy

import pytest
import torch
from fvcore.nn import ActivationCountAnalysis
from torch import nn

from hetcalc.core import kinds
from hetcalc.core.analyze import analyze
from hetcalc.core.errors import InvalidInput
from hetcalc.core.records import Conv, Linear, ModelSpec
from hetcalc.core.spec import ConvSpec
from hetcalc.core.zoo import get_model, list_models
from hetcalc.real.build import build_model, units
from hetcalc.real.counter import MacCounter
from hetcalc.real.layers import DwPwConv2d, GwPwConv2d, HetConv2d, build_layer
from hetcalc.real.load import converted_footprint, zoo_footprint
from hetcalc.real.trace import ForwardFailed, trace, trace_step

DEVICES = ["meta", "cpu"]


def on(model: nn.Module, device: str) -> nn.Module:
    return copy.deepcopy(model).to(device)


def counted(model: nn.Module, size, batch: int = 1) -> MacCounter:
    """The counter of a training step of ``model`` on ``batch`` zeros (the test's own step: sum, backward)."""
    x = torch.zeros(batch, *size, device=next(model.parameters()).device)
    with MacCounter(model) as counter:
        model.train()(x).sum().backward()
    return counter


def step_report(model, size, batch=1, **options):
    spec = trace_step(model, size, batch=batch, **options)
    return spec, analyze(spec, variant="standard", convention="exact", train=True)


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 10),
    )


# Batch 2 of 3×6×6. conv1 2·36·4·3·9 = 7,776; conv2 2·36·8·4·9 = 20,736; linear 2·288·10 = 5,760.
CONV1, CONV2, FC = 7_776, 20_736, 5_760


@pytest.mark.parametrize("device", DEVICES)
def test_conv_relu_conv_linear_by_hand(device):
    spec, report = step_report(on(net(), device), (3, 6, 6), batch=2)
    # backward: conv1 is fed by data, its weights' gradient only; conv2 and the linear layer both gradients
    assert report.forward_flops == CONV1 + CONV2 + FC == 34_272
    assert report.backward_flops == CONV1 + 2 * CONV2 + 2 * FC == 60_768
    assert report.flops == 95_040
    rows = {r["name"]: r for r in report.layers}
    assert [rows[n]["backward_flops"] for n in ("0", "2", "4")] == [CONV1, 2 * CONV2, 2 * FC]
    assert [rows[n]["input_grad"] for n in ("0", "2", "4")] == [False, True, True]
    assert counted(on(net(), device), (3, 6, 6), 2).total == 95_040  # what the counter saw, summed
    assert not spec.notes


def test_the_symbolic_rule_counts_the_same_net_from_records():
    """The same net as records (no torch): the first layer computes no input gradient by the rule."""
    records = (
        Conv("0", ConvSpec(M=3, N=4, K=3, H=6, bias=True), 6),
        Conv("2", ConvSpec(M=4, N=8, K=3, H=6, bias=True), 6),
        Linear("4", 288, 10),
    )
    spec = ModelSpec("net", (3, 6, 6), records)
    report = analyze(spec, variant="standard", convention="exact", train=True, batch=2)
    assert (report.forward_flops, report.backward_flops) == (34_272, 60_768)
    frozen = analyze(spec, variant="standard", convention="exact", train=True, batch=2, frozen=["2"])
    assert frozen.backward_flops == CONV1 + CONV2 + 2 * FC and frozen.frozen == ["2"]


@pytest.mark.parametrize("device", DEVICES)
def test_a_frozen_layer_by_hand(device):
    # conv2 frozen: its input still needs a gradient (conv1 is trained), its weights none
    _, report = step_report(on(net(), device), (3, 6, 6), batch=2, frozen=["2"])
    assert report.backward_flops == CONV1 + CONV2 + 2 * FC == 40_032
    # conv1 frozen: nothing before conv2 is trained, so conv2 computes no input gradient either
    _, report = step_report(on(net(), device), (3, 6, 6), batch=2, frozen=["0"])
    assert report.backward_flops == CONV2 + 2 * FC == 32_256
    assert [r["frozen"] for r in report.layers if r["kind"] != "other"] == [True, False, False]
    frozen_by_the_model = on(net(), device)
    frozen_by_the_model[0].requires_grad_(False)  # requires_grad=False as the user's code sets it
    assert step_report(frozen_by_the_model, (3, 6, 6), batch=2)[1].backward_flops == 32_256
    assert all(p.requires_grad for p in net().parameters())  # trace_step leaves the model as it was


@pytest.mark.parametrize("impl", ["exact", "fast", "grouped_sum"])
def test_hetconv2d_of_each_impl_by_hand(impl):
    # 1×1 conv 3 → 8 on 4×4 (16·8·3 = 384, its weights' gradient only), then HetConv2d 8 → 8, 3×3, P = 2: its
    # grouped K×K conv 16·8·(8/2)·9 = 4,608 and its 1×1 taps, exact 16·8·(8 − 4) = 512, fast and grouped_sum a
    # dense 1×1 kernel 16·8·8 = 1,024; each twice in backward (input and weight gradients)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), HetConv2d(8, 8, 3, 2, impl=impl)).to("meta")
    ones = 512 if impl == "exact" else 1_024
    spec, report = step_report(model, (3, 4, 4))
    assert report.forward_flops == 384 + 4_608 + ones
    assert report.backward_flops == 384 + 2 * (4_608 + ones)
    assert counted(model, (3, 4, 4)).total == report.flops and not spec.notes
    first = step_report(HetConv2d(8, 8, 3, 2, impl=impl).to("meta"), (8, 4, 4))[1]
    assert first.backward_flops == 4_608 + ones  # as a first layer: its weights' gradient only


def test_dwc_pwc_and_gwc_pwc_by_hand():
    # DWC+PWC 4 → 6 on 5×5 as a first layer: depthwise 25·4·9 = 900 (weights only); the pointwise conv reads the
    # depthwise output, which needs a gradient: 25·4·6 = 600 for its input and 600 for its weights
    spec, report = step_report(DwPwConv2d(4, 6, 3).to("meta"), (4, 5, 5))
    assert (report.forward_flops, report.backward_flops) == (900 + 600, 900 + 600 + 600)
    assert not spec.notes
    # GWC+PWC 8 → 8, G = 4 on 2×2 after a trained 1×1 conv 2 → 8 (4·8·2 = 64): groupwise 4·8·2·9 = 576,
    # pointwise 4·8·8 = 256, each both gradients
    model = nn.Sequential(nn.Conv2d(2, 8, 1), GwPwConv2d(8, 8, 3, 4)).to("meta")
    spec, report = step_report(model, (2, 2, 2))
    assert (report.forward_flops, report.backward_flops) == (64 + 576 + 256, 64 + 2 * 576 + 2 * 256)
    assert not spec.notes


@pytest.mark.parametrize("device", DEVICES)
def test_a_transposed_conv_by_hand(device):
    # conv 2 → 4, 1×1 on 3×3 (9·4·2 = 72, weights only), then ConvTranspose2d 4 → 2, 3×3, stride 2: each of the
    # 9·4 input elements scattered through 2·9 taps = 648, again for its input's and its weight's gradients
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ConvTranspose2d(4, 2, 3, stride=2)).to(device)
    spec, report = step_report(model, (2, 3, 3))
    assert (report.forward_flops, report.backward_flops) == (72 + 648, 72 + 2 * 648)
    ops = next(layer for layer in spec.layers if layer.name == "1")
    assert ops.macs == (("convolution", 648),) and ops.backward == (("convolution", 1_296),)


class Attention(nn.Module):
    """Self-attention as transformers run it in training: no attention weights returned (SDPA)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("device", DEVICES)
def test_an_attention_block_by_hand(device):
    # batch 2, 6 tokens of 16, 4 heads of 4. Forward: the packed q, k, v projection 12·16·48 = 9,216; QKᵀ and A·V
    # 2·4·6·6·(4 + 4) = 2,304; the output projection 12·16·16 = 3,072. Backward: the tokens are data, so the
    # packed projection's weights only (9,216); the CPU's flash backward, recomputing QKᵀ, then dV, dP, dQ, dK:
    # 2·4·6·6·(3·4 + 2·4) = 5,760; the output projection's input and weights, 2 · 3,072
    torch.manual_seed(0)
    model = on(Attention(), device)
    with MacCounter(model) as counter:
        model(torch.zeros(2, 6, 16, device=device)).sum().backward()
    assert sum(counter.by_op.values()) == 9_216 + 2_304 + 3_072
    assert counter.backward == 9_216 + 5_760 + 2 * 3_072
    assert counter.backward_by_op["attention"] == 5_760 and not counter.uncounted


# Symbolic == traced.


@pytest.mark.parametrize(
    "name,impl",
    [(name, None) for name in kinds.KINDS if name != "hetconv_grouped_sum"] + [("hetconv", "fast")],
)
@pytest.mark.parametrize("first", [True, False])
def test_every_kind_symbolic_equals_traced(name, impl, first):
    """Each kind's formula (cost.backward of its stages) equals what autograd runs on its real layer."""
    kind = kinds.get(name)
    value = {"P": 2, "G": 2, None: None}[kind.parameter]
    layer = build_layer(name, 8, 8, 3, value, stride=2, bias=True, impl=impl or "exact")
    model = (layer if first else nn.Sequential(nn.Conv2d(4, 8, 1), layer)).to("meta")
    size = (8 if first else 4, 7, 7)
    spec, report = step_report(model, size, batch=2)
    assert report.flops == counted(model, size, 2).total and not spec.notes
    records = tuple(r.with_(input_grad=None, images=1) for r in spec.layers if isinstance(r, Conv))
    symbolic = analyze(
        ModelSpec("layer", size, records), variant="standard", convention="exact", train=True, batch=2
    )
    assert symbolic.flops == report.flops


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_symbolic_equals_traced(name):
    """The zoo's formulas (first layer: no input gradient) equal what autograd runs on the built model."""
    with torch.device("meta"):
        model = build_model(name)
    total = counted(model, model.hetcalc_input_size, batch=2).total
    assert analyze(name, variant="standard", convention="exact", train=True, batch=2).flops == total


@pytest.mark.parametrize("variant,options", [("hetconv", {"P": 4}), ("gwc_pwc", {"G": 2}), ("dwc_pwc", {})])
def test_zoo_variants_symbolic_equal_traced(variant, options):
    with torch.device("meta"):
        model = build_model("resnet56", variant=variant, **options)
    total = counted(model, (3, 32, 32), batch=2).total
    report = analyze("resnet56", variant=variant, convention="exact", train=True, batch=2, **options)
    assert report.flops == total


def test_frozen_zoo_layers_equal_the_built_model_frozen():
    report = analyze(
        "vgg16", variant="standard", convention="exact", train=True, batch=2, frozen=["conv1", "conv2"]
    )
    with torch.device("meta"):
        model = build_model("vgg16")
    for name in units(model)["conv1"] + units(model)["conv2"]:  # each record's modules: conv, BatchNorm
        model.get_submodule(name).requires_grad_(False)
    assert report.flops == counted(model, (3, 32, 32), batch=2).total
    rows = {r["name"]: r for r in report.layers}
    assert (rows["conv2"]["input_grad"], rows["conv3"]["input_grad"]) == (False, False)


# Activations, as fvcore counts them.


def fvcore_activations(model, size) -> int:
    analysis = ActivationCountAnalysis(model.eval(), (torch.zeros(1, *size),))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()


@pytest.mark.parametrize("name", ["vgg16", "resnet56", "mobilenet"])
def test_activations_equal_fvcore_on_zoo_cnns(name):
    model = build_model(name)
    assert analyze(name, variant="standard").activations == fvcore_activations(
        model, model.hetcalc_input_size
    )


@pytest.mark.parametrize("name,impl", [(name, "exact") for name in kinds.KINDS] + [("hetconv", "fast")])
def test_activations_of_every_kind_equal_fvcore(name, impl):
    value = {"P": 2, "G": 2, None: None}[kinds.get(name).parameter]
    layer = build_layer(name, 8, 8, 3, value, impl=impl)
    spec = trace(on(layer, "meta"), (8, 5, 5))
    assert analyze(spec, variant="standard").activations == fvcore_activations(layer, (8, 5, 5))


# What autograd saves, and the step's memory.


def cpu_saved_bytes(model: nn.Module, x) -> int:
    """The test's own measurement on a real CPU run: unique storages (by address) autograd saves, the model's own
    tensors left out."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            kept[storage.data_ptr()] = (storage.nbytes(), t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model.train()(x)
    out.sum().backward()
    return sum(nbytes for nbytes, _ in kept.values())


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            DwPwConv2d(8, 16, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        return self.fc(self.features(x))


class SmallTransformer(nn.Module):
    def __init__(self, dropout: float):
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(32)

    def forward(self, x):
        return self.norm(self.encoder(self.embed(x.flatten(2).transpose(1, 2))))


@pytest.mark.parametrize(
    "model", [SmallCNN(), SmallTransformer(0.0), SmallTransformer(0.1)], ids=["cnn", "transformer", "dropout"]
)
def test_saved_bytes_on_meta_equal_a_cpu_run_to_the_byte(model):
    torch.manual_seed(0)
    x = torch.randn(4, 8, 4, 4) if isinstance(model, SmallTransformer) else torch.randn(4, 3, 8, 8)
    cpu = cpu_saved_bytes(copy.deepcopy(model), x)
    meta = trace_step(on(model, "meta"), tuple(x.shape[1:]), batch=4).footprint.saved
    assert meta == cpu > 0


@pytest.mark.parametrize(
    "optimizer,cls,options",
    [
        ("sgd", torch.optim.SGD, {}),
        ("momentum", torch.optim.SGD, {"momentum": 0.9}),
        ("adam", torch.optim.Adam, {}),
    ],
)
def test_memory_is_what_torch_optim_holds(optimizer, cls, options):
    torch.manual_seed(0)
    model = SmallCNN()
    model.features[0].requires_grad_(False)
    spec = trace_step(on(model, "meta"), (3, 8, 8), batch=4)
    memory = analyze(spec, variant="standard", train=True, optimizer=optimizer).memory
    trained = [p for p in model.parameters() if p.requires_grad]
    step = cls(trained, lr=0.1, **options)
    model.train()(torch.randn(4, 3, 8, 8)).sum().backward()
    step.step()
    size = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)
    state = [t for s in step.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    assert memory["params"] == size(model.parameters())
    assert memory["buffers"] == size(model.buffers())
    assert memory["grads"] == size(p.grad for p in trained)
    assert memory["optimizer"] == size(state)
    assert memory["activations"] == spec.footprint.saved
    assert memory["total"] == sum(v for k, v in memory.items() if k != "total")


def test_bfloat16_halves_parameters_and_the_footprint_is_measured_in_it():
    float32, bf16 = (zoo_footprint(get_model("resnet56"), batch=2, dtype=d) for d in ("float32", "bfloat16"))
    assert bf16.params * 2 == float32.params and bf16.dtype == "bfloat16"
    assert 0 < bf16.saved < float32.saved


def test_a_converted_module_is_measured_as_converted():
    model = net().to("meta")
    spec = trace_step(model, (3, 6, 6), batch=2)
    report = analyze(
        spec,
        variant="hetconv",
        P=2,
        train=True,
        footprint=lambda after, plan: converted_footprint(model, plan, (3, 6, 6), batch=2),
    )
    assert report.layers[1]["changed"] and report.saved_bytes != spec.footprint.saved
    unchanged = analyze(spec, variant="standard", train=True)
    assert unchanged.saved_bytes == spec.footprint.saved


# Named outputs and bad input.


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 4, 1)  # 16·4·3 = 192 on 4×4
        self.main, self.aux = nn.Linear(64, 10), nn.Linear(64, 2)  # 640 and 128

    def forward(self, x):
        y = self.body(x).flatten(1)
        return {"main": self.main(y), "aux": self.aux(y)}


def test_the_loss_of_a_named_output():
    # every output: body's weights 192, main and aux each both gradients; "main" only: aux runs no backward
    _, both = step_report(TwoHeads().to("meta"), (3, 4, 4))
    assert both.backward_flops == 192 + 2 * 640 + 2 * 128
    _, main = step_report(TwoHeads().to("meta"), (3, 4, 4), loss="main")
    assert main.backward_flops == 192 + 2 * 640 and main.loss == "main"
    with pytest.raises(
        InvalidInput, match="^loss: the model has no output named 'logits'; its outputs: main, aux$"
    ):
        trace_step(TwoHeads().to("meta"), (3, 4, 4), loss="logits")


def test_bad_input_is_one_line():
    with pytest.raises(
        InvalidInput, match=r"^frozen: 'conv9' names no layer of Sequential; its layers: 0, 1, 2"
    ):
        trace_step(net().to("meta"), (3, 6, 6), frozen=["conv9"])
    with pytest.raises(InvalidInput, match="^frozen: freezes every parameter"):
        trace_step(net().to("meta"), (3, 6, 6), frozen=["*"])
    with pytest.raises(InvalidInput, match="^train: ReLU has no parameters: nothing to train$"):
        trace_step(nn.ReLU(), (3, 6, 6))
    with pytest.raises(
        InvalidInput, match=r"^frozen: 'fc9' names no layer of vgg16; its layers: conv1, conv2"
    ):
        analyze("vgg16", train=True, frozen=["fc9"])
    with pytest.raises(InvalidInput, match="^train: Sequential was traced without a training step"):
        analyze(trace(net().to("meta"), (3, 6, 6)), train=True)
    with pytest.raises(InvalidInput, match="^batch: Sequential was traced at batch 1: trace it at batch 8"):
        analyze(trace(net().to("meta"), (3, 6, 6)), batch=8)
    with pytest.raises(InvalidInput, match="^optimizer: applies to a training step"):
        analyze("vgg16", optimizer="adam")
    bn = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.BatchNorm1d(4)).to("meta")
    with pytest.raises(ForwardFailed, match="Expected more than 1 value per channel when training"):
        trace_step(bn, (1, 1, 4))
