"""One plan for every path: derived once from the trace, counted by analyze, built by convert, checked by fvcore.

The property test generates models that are not ``nn.Sequential``: modules registered in another
order than they are called, a convolution called twice (shared weights) and one registered under
two names, functional convolutions, branches that add, even kernels with "same" padding, grouped
and strided convolutions, and an ``nn.Conv2d`` subclass with a parameter of its own. For each, the
plan's count of the model (``analyze``), the trace of ``convert(model, plan)`` and fvcore's count of
it agree to the integer, the parameters equal ``sum(p.numel())``, and ``convert`` keeps exactly
the layers the plan keeps, with the same reasons.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from hetcalc.core.analyze import analyze
from hetcalc.core.errors import InvalidInput
from hetcalc.core.plan import Decision, Plan, apply, derive
from hetcalc.core.zoo import get_model
from hetcalc.real.conversion import convert
from hetcalc.real.fvcount import NOT_MACS, count
from hetcalc.real.layers import HetConv2d
from hetcalc.real.trace import trace


def fvcore_macs(model, size) -> int:
    return count(model.eval(), (torch.zeros(1, *size),), tuple(NOT_MACS))[0]


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class GainConv(nn.Conv2d):
    """An nn.Conv2d subclass with a learnable per-filter gain (as timm's ScaledStdConv2d has)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))

    def forward(self, x):
        return F.conv2d(
            x, self.weight * self.gain, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class Generated(nn.Module):
    """Modules registered in ``order``; ``program`` says what the forward calls, step by step."""

    def __init__(self, modules: dict, tensors: dict, program: list, order: list, aliases: dict):
        super().__init__()
        for name in order:
            if name in modules:
                self.add_module(name, modules[name])
            else:
                self.register_parameter(name, nn.Parameter(tensors[name]))
        for alias, name in aliases.items():
            self.add_module(alias, modules[name])  # one module under two names
        self.program = program

    def forward(self, x):
        for step, *args in self.program:
            if step == "call":
                x = F.relu(getattr(self, args[0])(x))
            elif step == "norm":
                x = getattr(self, args[0])(x)
            elif step == "branch":
                x = F.relu(getattr(self, args[0])(x) + getattr(self, args[1])(x))
            elif step == "functional":
                x = F.relu(F.conv2d(x, getattr(self, args[0]), stride=args[1], padding=args[2]))
            elif step == "fc":
                x = getattr(self, args[0])(x.mean((2, 3)))
        return x


@st.composite
def models(draw):
    """A random non-Sequential conv net on a small input, and its input size."""
    side = draw(st.integers(6, 12))
    channels, size = 3, side
    modules, tensors, program, aliases = {}, {}, [], {}

    def conv(name, N, *, allow_even=True, fixed_stride=None):
        """A convolution of the current map into N channels, registered as ``name``; its output size."""
        K = draw(st.sampled_from([1, 3, 3, 5, 7] + ([2, 4] if allow_even else [])))
        even = K % 2 == 0
        stride = 1 if even else fixed_stride or draw(st.sampled_from([1, 1, 2]))
        padding = "same" if even else draw(st.sampled_from([K // 2, K // 2, 0])) if size >= K else K // 2
        groups = draw(
            st.sampled_from([1, 1, 1] + [g for g in (2, channels) if channels % g == 0 and N % g == 0])
        )
        cls = GainConv if draw(st.integers(0, 9)) == 0 else nn.Conv2d
        modules[name] = cls(channels, N, K, stride, padding, groups=groups, bias=draw(st.booleans()))
        return size if padding == "same" else (size + 2 * padding - K) // stride + 1

    for i in range(draw(st.integers(2, 6))):
        step = draw(st.sampled_from(["call", "call", "call", "again", "branch", "functional", "norm"]))
        name = f"m{i}"
        if step == "again":  # one conv called twice: shared weights (M = N, same size)
            modules[name] = nn.Conv2d(channels, channels, 3, padding=1, bias=draw(st.booleans()))
            program += [("call", name), ("call", name)]
            if draw(st.booleans()):
                aliases[f"alias{i}"] = name
        elif step == "branch":
            N = draw(st.sampled_from([4, 6, 8, 12]))
            out = conv(name + "a", N, allow_even=False, fixed_stride=1)
            a = modules[name + "a"]
            modules[name + "b"] = nn.Conv2d(channels, N, a.kernel_size, 1, a.padding)  # the same output size
            size, channels = out, N
            program.append(("branch", name + "a", name + "b"))
        elif step == "functional":
            N, K = draw(st.sampled_from([4, 8])), draw(st.sampled_from([1, 3]))
            tensors[name] = torch.randn(N, channels, K, K)
            program.append(("functional", name, 1, K // 2))
            channels = N
        elif step == "norm":
            modules[name] = nn.BatchNorm2d(channels)
            program.append(("norm", name))
        else:
            N = draw(st.sampled_from([2, 3, 4, 6, 8, 12, 16]))
            size, channels = conv(name, N), N
            program.append(("call", name))
        if size < 1:
            return draw(models())  # too small: try another
    modules["fc"] = nn.Linear(channels, 10)
    program.append(("fc", "fc"))
    order = draw(st.permutations(sorted(set(modules) | set(tensors))))
    return Generated(modules, tensors, program, list(order), aliases), (3, side, side)


@st.composite
def variants(draw):
    variant = draw(st.sampled_from(["hetconv", "hetconv", "gwc_pwc", "dwc_pwc"]))
    if variant == "hetconv":
        return variant, {
            "P": draw(st.sampled_from([1, 2, 3, 4, 8])),
            "impl": draw(st.sampled_from(["exact", "fast", "grouped_sum"])),
        }
    return variant, {"G": draw(st.sampled_from([1, 2, 3, 4]))} if variant == "gwc_pwc" else {}


def conv_rows(report):
    return [(r["name"], r["kind"], r["flops_after"], r["params_after"]) for r in report.layers if r["K"]]


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(models(), variants(), st.booleans())
def test_plan_analyze_convert_trace_and_fvcore_agree(generated, variant, keep_first):
    torch.manual_seed(0)
    model, size = generated
    (name, options) = variant
    spec = trace(model, size)
    plan = derive(spec, name, keep_first=keep_first, **options)
    counted = analyze(spec, plan=plan, convention="exact")
    converted, conversion = convert(model, plan, return_report=True)
    assert conversion.skipped == [(d.name, d.keep) for d in plan.layers if not d.replaced]
    assert conversion.replaced == [d.name for d in plan.layers if d.replaced]
    built = analyze(trace(converted, size), variant="standard", convention="exact")
    assert counted.flops == built.flops == fvcore_macs(converted, size)
    assert counted.params == built.params == params(converted)
    assert conv_rows(counted) == conv_rows(built)
    with torch.no_grad():
        assert converted(torch.zeros(2, *size)).shape == model(torch.zeros(2, *size)).shape


# The rules of a plan, by hand.


class Reordered(nn.Module):
    """``head`` is registered before ``stem`` but called after it; ``shared`` is called twice."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(8, 8, 3, padding=1)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.head(self.shared(self.shared(self.stem(x))))


def test_first_is_the_first_called_and_a_shared_module_is_decided_once():
    model = Reordered()
    spec = trace(model, (3, 8, 8))
    plan = derive(spec, "hetconv", 2)
    assert [d.name for d in plan.layers] == ["stem", "shared", "head"]  # call order, each module once
    assert plan["stem"].keep == "first convolution (kept, as in the paper)"
    assert plan["shared"] == Decision("shared", "hetconv", P=2, impl="exact")
    report = analyze(spec, plan=plan, convention="exact")
    # stem 8·8·8·3·9; shared twice and head: 8·8·8·(8·9/2 + 8 − 4) each (Eq. 4)
    assert report.flops == 64 * 8 * 27 + 3 * 64 * 8 * (36 + 4)
    converted = convert(model, plan)
    assert isinstance(converted.shared, HetConv2d) and type(converted.stem) is nn.Conv2d
    assert fvcore_macs(converted, (3, 8, 8)) == report.flops
    assert report.params == params(converted)  # the shared layer's parameters once


def test_plan_json_round_trips_and_is_what_model_json_carries():
    plan = derive(get_model("vgg16"), "hetconv", "2,4,4,8,8,8,16,16,16,16,32,32", impl="fast")
    assert Plan.from_json(plan.to_json()) == plan
    data = json.loads(plan.to_json())
    assert data["format"] == "hetcalc-plan" and data["layers"][0] == {
        "name": "conv1",
        "keep": "first convolution (kept, as in the paper)",
    }
    assert data["layers"][1] == {"name": "conv2", "kind": "hetconv", "P": 2, "impl": "fast"}
    report = analyze("vgg16", plan=plan, convention="exact")
    assert analyze("vgg16", plan=Plan.from_dict(report.plan), convention="exact").flops == report.flops


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"kind": "hetconv"}, 'each layer needs a "name"'),
        ({"name": "x", "kind": "hetconv"}, "x: hetconv needs P"),
        ({"name": "x", "kind": "lhc"}, "variant: must be one of standard, hetconv, dwc_pwc, gwc_pwc"),
        ({"name": "x", "kind": "gwc_pwc", "P": 2, "G": 2}, "x: P does not apply to gwc_pwc"),
        (
            {"name": "x", "kind": "hetconv", "P": 2, "impl": "slow"},
            "x: impl must be one of exact, grouped_sum, fast",
        ),
        ({"name": "x", "kind": "hetconv", "P": 0}, "P: must be a whole number >= 1, got 0"),
        ({"name": "x", "colour": "red"}, "x: unknown field colour"),
    ],
)
def test_bad_plan_entries_are_one_line(entry, message):
    with pytest.raises(InvalidInput, match=message):
        Plan.from_dict({"format": "hetcalc-plan", "model": "m", "input": [3, 8, 8], "layers": [entry]})


def test_a_plan_for_another_model_or_a_layer_it_does_not_fit_is_refused():
    vgg = get_model("vgg16")
    other = Plan("resnet56", (3, 32, 32), (Decision("layer1.0.conv1", "hetconv", P=2, impl="exact"),))
    with pytest.raises(InvalidInput, match=r"^plan: layer 'layer1.0.conv1' is not a convolution of vgg16"):
        apply(vgg, other)
    misfit = Plan("vgg16", (3, 32, 32), (Decision("conv2", "hetconv", P=3, impl="exact"),))
    with pytest.raises(InvalidInput, match=r"^plan: conv2: HetConv P=3 does not fit: P=3 does not divide"):
        apply(vgg, misfit)
    with pytest.raises(InvalidInput, match="^plan: not a hetcalc plan"):
        Plan.from_json('{"layers": []}')
    with pytest.raises(InvalidInput, match="^variant: give a plan or a variant, not both"):
        analyze("vgg16", variant="hetconv", plan=misfit)


@pytest.mark.parametrize("name", ["vgg16", "resnet56", "resnet50"])
def test_a_zoo_plan_names_the_built_modules(name):
    """A plan counted from the zoo's records is the plan of its built module, traced: same names, same count."""
    from hetcalc.real.build import build_model

    records = get_model(name)
    module = build_model(name)
    spec = trace(module, records.input, name)
    plan = derive(records, "hetconv", 4)
    assert plan == derive(spec, "hetconv", 4)
    assert (
        analyze(name, plan=plan, convention="exact").flops
        == analyze(spec, plan=plan, convention="exact").flops
    )
