"""The options the commands share: one flag per concept, one help text, one meaning everywhere.

- ``--P`` (HetConv's part), ``--gwc G`` (GWC+PWC's groups), ``--dwc``, ``--impl`` (HetConv2d's
  implementation: exact, fast, grouped_sum), ``--plan FILE`` (a per-layer plan), ``--se``;
- ``NAME`` or ``--module PKG.MOD:FACTORY`` (with ``--input-size``, ``--arg``) wherever a model is taken;
- ``--count-on meta|cpu``: where a model is built and traced to count it; ``--device`` is only ever
  the device a timing runs on (``bench``, ``latency``);
- ``--json`` on every command that prints a table, ``--csv FILE`` beside it;
- ``--train`` (a training step), ``--batch`` (images per pass of a count), ``--frozen``, ``--loss``,
  ``--optimizer``, ``--dtype``: what a count of a step covers (``layer``, ``model``, ``table``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import click

from ..core.cost import DTYPES, OPTIMIZERS
from ..core.errors import InvalidInput, positive_int
from . import needs_torch, working

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of a table."
)
csv_option = click.option(
    "--csv",
    "csv_path",
    default=None,
    metavar="FILE",
    help="Also write the table's rows to FILE (.csv; - for stdout instead of the table).",
)
strict_option = click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when the count is partial (operators with no MAC formula ran) or holds for this input only "
    "(data-dependent operators): the JSON's uncounted and data_dependent.",
)


def convention_option(default: str = "paper"):
    return click.option(
        "--convention",
        type=click.Choice(["paper", "exact"]),
        default=default,
        show_default=True,
        help="paper: MACs + bias adds, replaced layers scaled by their reduction (Table 1's rule); "
        "exact: MACs only, params = every learnable parameter incl. BatchNorm.",
    )


def _stack(options):
    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


P_option = click.option(
    "--P",
    "P",
    default=None,
    help="HetConv part P: a number, C for P = M in each layer (the paper's PC), or one P per replaced layer, "
    "comma-separated.",
)
gwc_option = click.option(
    "--gwc", "G", type=int, default=None, help="GWC+PWC: groupwise (G groups) M → M, then pointwise M → N."
)
dwc_option = click.option("--dwc", is_flag=True, help="DWC+PWC: depthwise, then pointwise.")
impl_option = click.option(
    "--impl",
    type=click.Choice(["exact", "fast", "grouped_sum"]),
    default="exact",
    show_default=True,
    help="HetConv2d's implementation, whose MACs are counted: exact (Eq. 4), fast or grouped_sum "
    "(a grouped K×K conv plus a dense 1×1 kernel: 1/P + 1/K²).",
)
plan_option = click.option(
    "--plan",
    "plan_file",
    default=None,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="A per-layer plan (JSON, as 'hetcalc search --out' or 'model --json' write it) instead of --P, "
    "--gwc or --dwc.",
)

variant_options = _stack(
    [
        click.option(
            "--dataset",
            default=None,
            help="cifar10 or imagenet  [default: the model's own; see 'hetcalc zoo'].",
        ),
        P_option,
        gwc_option,
        dwc_option,
        impl_option,
        plan_option,
        click.option(
            "--se",
            type=int,
            default=None,
            help="Add Squeeze-and-Excitation with reduction R after each replaced layer.",
        ),
        convention_option(),
    ]
)
"""What a model is counted as: --dataset, --P, --gwc, --dwc, --impl, --plan, --se, --convention."""

module_options = _stack(
    [
        click.option(
            "--module",
            default=None,
            metavar="PKG.MOD:FACTORY",
            help="Your own nn.Module instead of a zoo model: FACTORY() builds it (or path/to/file.py:FACTORY), "
            "e.g. torchvision.models:resnet50 or timm:create_model --arg model_name=resnet50.",
        ),
        click.option(
            "--input-size",
            type=int,
            nargs=3,
            default=None,
            metavar="C H W",
            help="With --module: the input of one image, e.g. 3 224 224  [default: the model's own (timm's "
            "pretrained_cfg, torchvision's weights), else required].",
        ),
        click.option(
            "--arg",
            "arguments",
            multiple=True,
            metavar="NAME=VALUE",
            help="With --module: a keyword argument of FACTORY (repeatable); VALUE is read as a Python literal "
            "(False, 10, (3, 224, 224)), otherwise as a string; never run as code.",
        ),
    ]
)
"""--module, --input-size and --arg: a user's nn.Module instead of a zoo model."""

count_on_option = click.option(
    "--count-on",
    "count_on",
    type=click.Choice(["meta", "cpu"]),
    default="meta",
    show_default=True,
    help="With --module: build and trace the model on meta (no weights, no compute; where a model cannot run "
    "there it is counted on the CPU, if it fits in memory, and the output says so) or on cpu (LHC masks' "
    "kept taps).",
)

timing_options = _stack(
    [
        click.option("--batch", type=int, default=8, show_default=True, help="Batch size."),
        click.option(
            "--threads",
            type=int,
            default=None,
            help="CPU threads (torch.set_num_threads)  [default: torch's].",
        ),
        click.option(
            "--repeats", type=int, default=5, show_default=True, help="Interleaved timing rounds (at least)."
        ),
        click.option(
            "--min-time",
            "min_time",
            type=float,
            default=0.0,
            show_default=True,
            help="Keep timing for at least this many seconds.",
        ),
        click.option(
            "--channels-last",
            "channels_last",
            is_flag=True,
            help="Input and weights in channels-last (NHWC) memory, for every network alike.",
        ),
    ]
)
"""--batch, --threads, --repeats, --min-time, --channels-last: how a timing runs (bench, latency)."""


train_option = click.option(
    "--train",
    is_flag=True,
    help="Count one training step: forward + backward (each layer's input and weight gradients; none of the input "
    "for the first layer, none of the weights for a frozen one), and, for a model, the step's memory.",
)
batch_option = click.option(
    "--batch", type=int, default=None, help="Images per pass; counts are for the whole batch  [default: 1]."
)
dtype_option = click.option(
    "--dtype",
    type=click.Choice(list(DTYPES)),
    default="float32",
    show_default=True,
    help="Element type of parameters, gradients, optimizer state and activations: the bytes each layer moves "
    "and a step holds.",
)
frozen_option = click.option(
    "--frozen",
    multiple=True,
    metavar="NAME",
    help="With --train: a layer (name or glob; a module and everything below it) whose parameters are not "
    "trained, so it computes no weight gradient; repeat it or separate names with commas.",
)
loss_option = click.option(
    "--loss",
    default=None,
    metavar="NAME",
    help="With --train and --module: the output the loss sums (a dict key, a named-tuple field or an "
    "index)  [default: every output].",
)
optimizer_option = click.option(
    "--optimizer",
    type=click.Choice(list(OPTIMIZERS)),
    default=None,
    help="With --train: the optimizer whose state the memory counts: sgd (none), momentum (a buffer per "
    "parameter), adam (two moments)  [default: sgd].",
)


@dataclass(frozen=True)
class Step:
    """What a count covers, from ``--train``, ``--batch``, ``--frozen``, ``--loss``, ``--optimizer``, ``--dtype``."""

    train: bool = False
    batch: int = 1
    frozen: tuple[str, ...] = ()
    loss: str | None = None
    optimizer: str | None = None
    dtype: str = "float32"

    def counted(self, traced: bool) -> dict:
        """The options ``hetcalc.core.analyze`` takes (a traced step was frozen as it was traced)."""
        frozen = {} if traced else {"frozen": list(self.frozen)}
        return {
            "train": self.train,
            "batch": self.batch,
            "optimizer": self.optimizer,
            "dtype": self.dtype,
            **frozen,
        }


STEP_OPTIONS = {"frozen": frozen_option, "loss": loss_option, "optimizer": optimizer_option}


def step_options(*names: str, train_batch: int = 1):
    """--train, --batch and --dtype, and those of --frozen, --loss, --optimizer that ``names`` names, given to the
    command as one ``step`` (a ``Step``), checked: each of the others needs --train; --batch defaults to 1, and
    to ``train_batch`` with --train."""

    def decorate(command):
        @functools.wraps(command)
        def run(*args, train, batch, dtype, frozen=(), loss=None, optimizer=None, **kwargs):
            for flag, value in (("--frozen", frozen), ("--loss", loss), ("--optimizer", optimizer)):
                if value and not train:
                    raise InvalidInput(flag, "applies to a training step: add --train")
            batch = positive_int("--batch", (train_batch if train else 1) if batch is None else batch)
            frozen = tuple(name.strip() for value in frozen for name in value.split(",") if name.strip())
            return command(*args, step=Step(train, batch, frozen, loss, optimizer, dtype), **kwargs)

        return _stack([train_option, batch_option, *(STEP_OPTIONS[n] for n in names), dtype_option])(run)

    return decorate


def refuse_module_options(name: str, given) -> None:
    """InvalidInput for the first (flag, value) of ``given`` set with zoo model ``name``: options of --module only."""
    for option, value in given:
        if value:
            raise InvalidInput(option, f"applies to --module only; zoo model {name} has its own input")


def chosen_variant(P, G, dwc, plan_file=None) -> str:
    """The variant the options ask for; at most one of --P, --gwc, --dwc, --plan."""
    given = [
        flag
        for flag, on in (
            ("--P", P is not None),
            ("--gwc", G is not None),
            ("--dwc", dwc),
            ("--plan", plan_file),
        )
        if on
    ]
    if len(given) > 1:
        raise InvalidInput(given[1], f"give one of --P, --gwc, --dwc, --plan, not {' and '.join(given)}")
    return {"--P": "hetconv", "--gwc": "gwc_pwc", "--dwc": "dwc_pwc", "--plan": "plan"}.get(
        given[0] if given else None, "standard"
    )


def read_plan(plan_file):
    """The plan in ``--plan FILE`` (None without one)."""
    if plan_file is None:
        return None
    from ..core.plan import Plan

    return Plan.read(plan_file)


def traced(module, input_size, count_on, arguments=(), step: Step | None = None):
    """The ModelSpec of a user's model (``--module``): torch is imported here, only when asked for.

    ``step``: with ``train``, the model is traced through a training step (``hetcalc.real.trace.trace_step``),
    at its batch, converted to its dtype first.
    """
    needs_torch("--module")
    from ..real.load import factory_arguments, load_factory, trace_factory

    step = step or Step()
    factory = load_factory(module)
    with working(f"tracing {module}"):
        return trace_factory(
            factory,
            input_size or None,
            name=module,
            device=count_on,
            arguments=factory_arguments(arguments),
            batch=step.batch,
            train=step.train,
            frozen=step.frozen,
            loss=step.loss,
            dtype=step.dtype,
        )


def model_source(name, module, input_size, dataset, count_on="meta", arguments=(), step: Step | None = None):
    """What to count: zoo model NAME (returned as is) or ``--module`` (its traced ModelSpec), exactly one."""
    if (name is None) == (module is None):
        raise InvalidInput(
            "MODEL",
            "give a zoo model NAME or --module PKG.MOD:FACTORY (or path/to/file.py:FACTORY)"
            + (", not both" if name else ""),
        )
    if name is not None:
        refuse_module_options(
            name, (("--input-size", input_size), ("--count-on", count_on != "meta"), ("--arg", arguments))
        )
        if step and step.loss:
            raise InvalidInput("--loss", "applies to --module only: a zoo model returns one output")
        return name
    if dataset is not None:
        raise InvalidInput("--dataset", "applies to zoo models only, not to --module")
    return traced(module, input_size, count_on, arguments, step)


def footprint_of(source, module=None, arguments=(), step: Step | None = None):
    """How the memory of a counted step is measured (``hetcalc.core.analyze``'s ``footprint``): a function of the
    records counted and their plan that builds that model on meta and runs its step; None without torch."""
    import importlib.util

    if step is None or not step.train or importlib.util.find_spec("torch") is None:
        return None
    if module is None:
        from ..real.load import zoo_footprints

        return zoo_footprints(batch=step.batch, dtype=step.dtype)
    from ..real.load import module_footprint

    return lambda after, plan: module_footprint(
        module,
        plan,
        source,
        arguments=arguments,
        batch=step.batch,
        frozen=step.frozen,
        loss=step.loss,
        dtype=step.dtype,
    )


def analysed(source, dataset, P, G, dwc, impl, plan_file, se, convention, step=None, footprint=None):
    """``hetcalc.core.analyze`` of ``source`` (a zoo name or a traced spec) as the variant and step options ask;
    ``footprint``: how its step's memory is measured (``footprint_of``)."""
    from ..core.analyze import analyze
    from ..core.records import ModelSpec

    variant = chosen_variant(P, G, dwc, plan_file)
    plan = read_plan(plan_file)
    step = step or Step()
    return analyze(
        source,
        dataset=dataset,
        variant=None if plan else variant,
        P=P,
        G=G,
        se=se,
        impl=impl,
        plan=plan,
        convention=convention,
        footprint=footprint,
        **step.counted(isinstance(source, ModelSpec)),
    )


def counted(
    name,
    module,
    input_size,
    arguments,
    count_on,
    dataset,
    P,
    G,
    dwc,
    impl,
    plan_file,
    se,
    convention,
    step=None,
):
    """The ModelReport the model, variant and step options ask for (``model``, ``plot model``): zoo model NAME
    or ``--module``, counted by ``hetcalc.core.analyze`` as --P, --gwc, --dwc or --plan builds it."""
    source = model_source(name, module, input_size, dataset, count_on, arguments, step)
    footprint = footprint_of(source, module, arguments, step)
    return analysed(source, dataset, P, G, dwc, impl, plan_file, se, convention, step, footprint)
