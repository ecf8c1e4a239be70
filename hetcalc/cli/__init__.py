"""The ``hetcalc`` command line: one click group, commands loaded on demand.

Every command shares one error path: ``InvalidInput`` from the core and click's own usage
errors print one line on stderr and exit 2; a failed verification exits 1. No traceback.
The core names its own parameters (``P``, ``D_in``); here each is shown as the flag of the
running command that sets it (``--P``, ``--D-in``).
"""

from __future__ import annotations

import importlib
import sys
from contextlib import nullcontext

import click

from ..core.errors import InvalidInput

# name → "module:attribute"; a command module is imported only when that command runs.
COMMANDS = {
    "layer": "hetcalc.cli.layer:layer",
    "verify": "hetcalc.cli.verify:verify",
    "mask": "hetcalc.cli.mask:mask",
    "plot": "hetcalc.cli.plot:plot",
    "model": "hetcalc.cli.model:model",
    "zoo": "hetcalc.cli.zoo:zoo",
    "paper": "hetcalc.cli.paper:paper",
    "bench": "hetcalc.cli.bench:bench",
    "table": "hetcalc.cli.table:table",
    "latency": "hetcalc.cli.latency:latency",
    "search": "hetcalc.cli.search:search",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return speaking_in_flags(getattr(importlib.import_module(module), attribute))

    def main(self, args=None, prog_name=None, **extra):
        extra["standalone_mode"] = False
        try:
            code = super().main(args=args, prog_name=prog_name or "hetcalc", **extra)
        except click.exceptions.Exit as exit_:
            sys.exit(exit_.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            fail(error.format_message() + hint)
        except click.ClickException as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except InvalidInput as error:
            fail(str(error))
        sys.exit(code if isinstance(code, int) else 0)


def speaking_in_flags(command: click.Command) -> click.Command:
    """``command`` (and its subcommands) re-raising the core's InvalidInput with the flag that sets its parameter."""
    if getattr(command, "speaks_in_flags", False):
        return command
    invoke = command.invoke

    def run(ctx):
        try:
            return invoke(ctx)
        except InvalidInput as error:
            options = [p for p in command.params if isinstance(p, click.Option)]
            flags = {opt.lstrip("-").replace("-", "_"): opt for p in options for opt in p.opts}
            flags.update({p.name: p.opts[0] for p in options})  # the parameter's own name first
            if error.parameter not in flags:
                raise
            raise InvalidInput(flags[error.parameter], error.reason) from None

    command.invoke, command.speaks_in_flags = run, True
    for sub in getattr(command, "commands", {}).values():
        speaking_in_flags(sub)
    return command


def fail(message: str, code: int = 2):
    """Print one line on stderr and exit (2: bad input)."""
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="hetcalc")
def cli():
    """Exact FLOPs and parameters of heterogeneous-kernel convolutions (HetConv, LHC).

    FLOPs are multiply-accumulates (1 multiply-add = 1 FLOP), the unit of the HetConv paper
    and of fvcore. Bias additions, where a layer has bias, are counted as one FLOP each.
    """


def main():
    cli.main()


# Shared option bundles.

TORCH_EXTRA = "pip install 'hetcalc[torch]'"


class TorchMissing(click.ClickException):
    """A command that needs torch (or fvcore) ran where it is not installed: one line, exit 2."""

    exit_code = 2


def working(message: str):
    """A transient status line on stderr while a slow step runs; nothing when stderr is not interactive."""
    from ..render import console

    err = console(stderr=True)
    return err.status(message) if err.is_interactive else nullcontext()


def progress(description: str, total: int | None = None):
    """A wrapper of an iteration with a transient progress bar on stderr; a plain iteration when not a terminal."""
    from rich.progress import track

    from ..render import console

    err = console(stderr=True)
    return lambda jobs: track(
        jobs, description=description, total=total, console=err, transient=True, disable=not err.is_terminal
    )


def needs_torch(what: str, modules: tuple[str, ...] = ("torch",)) -> None:
    """Import ``modules`` (under a status line) or stop with one line naming the extra to install."""
    with working(f"importing {', '.join(modules)}"):
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError:
                raise TorchMissing(f"{what} needs {module}, which is not installed: {TORCH_EXTRA}") from None
