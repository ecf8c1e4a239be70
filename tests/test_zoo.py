"""The model zoo: every registered model, hand arithmetic on a small one, and torch modules built from it."""

import pytest

from hetcalc.core import cost
from hetcalc.core.analyze import analyze, apply_variant, exact_counts
from hetcalc.core.conventions import costs
from hetcalc.core.errors import InvalidInput
from hetcalc.core.plan import candidates
from hetcalc.core.spec import ConvSpec
from hetcalc.core.zoo import Conv, Linear, ModelSpec, get_model, list_models, model_datasets

# Community counts: torchvision's documented parameters and GFLOPS (multiply-accumulates) at 224×224,
# and the CIFAR-10 ResNets of He et al. (0.85M / 1.7M parameters; 125.49M MACs for ResNet-56).
KNOWN_PARAMS = {
    ("resnet18", "imagenet"): 11_689_512,
    ("resnet34", "imagenet"): 21_797_672,
    ("resnet50", "imagenet"): 25_557_032,
    ("vgg16", "imagenet"): 138_357_544,
    ("vgg19", "imagenet"): 143_667_240,
    ("mobilenet", "imagenet"): 4_231_976,
    ("resnet56", "cifar10"): 853_018,
    ("resnet110", "cifar10"): 1_727_962,
}
KNOWN_GMACS = {
    ("resnet18", "imagenet"): 1.81,
    ("resnet34", "imagenet"): 3.66,
    ("resnet50", "imagenet"): 4.09,
    ("vgg16", "imagenet"): 15.47,
    ("vgg19", "imagenet"): 19.63,
    ("mobilenet", "imagenet"): 0.57,
}


def test_list_models_is_natural_and_filters():
    names = list_models()
    assert names.index("resnet18") < names.index("resnet56") < names.index("resnet110")
    assert set(names) >= {
        "vgg16",
        "vgg19",
        "resnet56",
        "resnet110",
        "mobilenet",
        "resnet18",
        "resnet34",
        "resnet50",
    }
    assert list_models("vgg*") == ["vgg16", "vgg19"]


@pytest.mark.parametrize("name", list_models())
def test_every_model_on_every_dataset(name):
    for dataset in model_datasets(name):
        spec = get_model(name, dataset)
        assert spec.name == name and spec.dataset == dataset
        assert isinstance(spec.layers[0], Conv) and isinstance(spec.layers[-1], Linear)
        assert len({layer.name for layer in spec.layers}) == len(spec.layers)
        assert spec.layers[-1].out_features == (10 if dataset == "cifar10" else 1000)
        report = analyze(name, dataset=dataset, variant="hetconv", P=2)
        standard_convs = analyze(name, dataset=dataset, variant="hetconv", P=1)  # P = 1: the standard conv
        assert 0 < report.flops < standard_convs.flops and report.params < standard_convs.params
        assert report.layers[0]["flops_after"] == report.layers[0]["flops_before"]  # the first conv stays


@pytest.mark.parametrize("key", sorted(KNOWN_PARAMS))
def test_known_parameter_and_mac_counts(key):
    macs, params = exact_counts(*key)
    assert params == KNOWN_PARAMS[key]
    if key in KNOWN_GMACS:
        assert round(macs / 1e9, 2) == KNOWN_GMACS[key]


def test_resnet56_by_hand():
    spec = get_model("resnet56")
    by_name = spec.by_name()
    stem, first, down, fc = (
        by_name["conv1"],
        by_name["layer1.0.conv1"],
        by_name["layer2.0.conv1"],
        by_name["fc"],
    )
    assert costs(stem).built == cost.Cost(
        macs=32 * 32 * 3 * 16 * 9, params=3 * 16 * 9
    )  # 442,368 MACs, 432 weights
    assert costs(first).built.macs == 32 * 32 * 16 * 16 * 9 == 2_359_296
    assert (down.M, down.N, down.spec.stride, down.spec.H) == (16, 32, 2, 16)  # stride 2, no shortcut conv
    assert costs(down).built.macs == 16 * 16 * 16 * 32 * 9 == 1_179_648
    assert costs(fc).built == cost.Cost(640, 10, 650)
    assert len(spec.convs()) == 55 and len(candidates(spec)) == 54
    # HetConv P = 4 in layer1.0.conv1: 32²·16 filters · (16·9/4 K×K taps + 16 − 4 one-by-one taps)
    het = apply_variant(spec, "hetconv", P=4).by_name()["layer1.0.conv1"]
    assert costs(het).built.macs == 1024 * 16 * (36 + 12) == 786_432
    # exact params: conv weights + BN (2 per channel) + fc; here stem, one block conv, fc
    exact = analyze("resnet56", variant="standard", convention="exact").layers
    assert exact[0]["params_after"] == 432 + 32 and exact[-1]["params_after"] == 650


def test_replacement_rule():
    """Every conv but the first; 1×1 convs (ResNet-50's and its downsample) stay; MobileNet pairs become one."""
    r50 = get_model("resnet50", "imagenet")
    targets = [layer.name for layer in candidates(r50)]
    assert len(targets) == 16 and all(name.endswith(".conv2") for name in targets)
    mobile = apply_variant(get_model("mobilenet"), "hetconv", P=4)
    block = mobile.by_name()["block2"]
    assert (block.kind, block.M, block.N, block.spec.stride, block.norm) == ("hetconv", 64, 128, 2, (128,))
    assert costs(block).built == cost.hetconv(ConvSpec(64, 128, 3, H=16, stride=2, name="block2"), 4)
    # --dwc on MobileNet changes nothing: its blocks already are DWC+PWC
    assert analyze("mobilenet", variant="dwc_pwc").flops_reduction_pct == 0


def test_per_layer_P_and_PC():
    spec = get_model("vgg16")
    Ps = [2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 32, 32]
    after = apply_variant(spec, "hetconv", P=",".join(map(str, Ps)))
    assert [layer.P for layer in after.layers[1:13]] == Ps
    PC = apply_variant(spec, "hetconv", P="C")
    assert [layer.P for layer in PC.layers[1:13]] == [layer.M for layer in spec.layers[1:13]]
    with pytest.raises(InvalidInput, match="got 3 values for 12 replaceable layers"):
        apply_variant(spec, "hetconv", P=[2, 4, 4])


def test_bad_input():
    with pytest.raises(InvalidInput, match="known models: mobilenet, resnet18"):
        get_model("alexnet")
    with pytest.raises(InvalidInput, match="resnet50 is defined for imagenet, not 'cifar10'"):
        get_model("resnet50", "cifar10")
    with pytest.raises(InvalidInput, match="does not apply to the dwc_pwc variant"):
        analyze("vgg16", variant="dwc_pwc", P=4)
    with pytest.raises(InvalidInput, match="needs P"):
        analyze("vgg16")


def test_a_P_that_fits_no_layer_keeps_every_layer_with_the_reason():
    """P = 3 divides no VGG-16 width: every layer stays standard, each with the same reason, nothing raises."""
    report = analyze("vgg16", P=3)
    assert report.flops == report.baseline_flops and report.flops_reduction_pct == 0
    convs = [row for row in report.layers if row["kind"] != "linear"]
    assert all(row["kind"] == "standard" and not row["changed"] for row in convs)
    assert convs[0]["note"].startswith("first convolution")
    assert all(
        row["note"] == "P=3 does not divide the input channels M (64); valid values: 1, 2, 4, 8, 16, 32, 64"
        for row in convs[1:3]
    )


def test_P_1_is_the_standard_convolution_and_says_so():
    report = analyze("vgg16", P=1)
    assert report.flops == report.baseline_flops and not any(row["changed"] for row in report.layers)
    assert report.layers[1]["note"] == "P=1: HetConv with P = 1 is the standard convolution"
    assert report.notes == ["nothing changes: HetConv with P = 1 is the standard convolution"]


def test_a_user_spec_is_analysed_like_a_zoo_model():
    layers = (
        Conv("stem", ConvSpec(3, 8, 3, H=8, name="stem"), 8, norm=(8,)),
        Conv("body", ConvSpec(8, 8, 3, H=8, name="body"), 8, norm=(8,)),
        Linear("head", 8, 2),
    )
    report = analyze(ModelSpec("tiny", (3, 8, 8), layers), P=2, convention="exact")
    assert report.flops == 64 * 3 * 8 * 9 + 64 * 8 * (4 * 9 + 4) + 16
    assert report.params == 216 + 16 + 8 * (4 * 9 + 4) + 16 + 18


# Torch modules built from the same records: fvcore's MACs (BatchNorm and pooling handles zeroed:
# fvcore 0.1.5 keeps a default handle even when set to None) and parameters equal the exact convention.


@pytest.mark.parametrize(
    "name,options",
    [
        ("resnet56", {}),
        ("resnet56", {"variant": "hetconv", "P": 4}),
        ("vgg16", {}),
        ("vgg16", {"variant": "hetconv", "P": 4}),
        ("mobilenet", {}),
        ("mobilenet", {"variant": "hetconv", "P": 4}),
        ("vgg16", {"variant": "dwc_pwc"}),
        ("vgg16", {"variant": "gwc_pwc", "G": 4}),
        ("vgg16", {"variant": "hetconv", "P": "C", "se": 8}),
    ],
)
def test_torch_module_matches_exact_counts(name, options):
    torch = pytest.importorskip("torch")
    fvcore_nn = pytest.importorskip("fvcore.nn")
    from hetcalc.real.build import build_model

    model = build_model(name, **options).eval()
    analysis = (
        fvcore_nn.FlopCountAnalysis(model, torch.zeros(1, *get_model(name).input))
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
    )
    zero = lambda inputs, outputs: 0  # noqa: E731
    analysis.set_op_handle("aten::batch_norm", zero, "aten::adaptive_avg_pool2d", zero)
    with torch.no_grad():
        traced = analysis.total()
    assert (traced, sum(p.numel() for p in model.parameters())) == exact_counts(name, **options)


def test_se_and_batchnorm_costs_by_hand():
    # SE on 64 channels, R = 8: Linear(64, 8) + Linear(8, 64), with biases
    assert cost.squeeze_excitation(64, 8) == cost.Cost(64 * 8 * 2, 8 + 64, 64 * 8 * 2 + 8 + 64)
    assert cost.batchnorm(64) == cost.Cost(0, 0, 128)
    with pytest.raises(InvalidInput, match="se: 3 does not divide"):
        cost.squeeze_excitation(64, 3)
