"""The ``querywarden`` command line: a thin list of subcommands.

Each subcommand lives in ``querywarden.commands.<name>``; adding one is adding a module
there and one line below. Commands import their heavy dependencies inside the function,
so ``querywarden --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

import querywarden
from querywarden.commands.bench import bench
from querywarden.commands.calibrate import calibrate_command
from querywarden.commands.console import console_command
from querywarden.commands.demo import demo_command
from querywarden.commands.profile import profile_command
from querywarden.commands.replay import replay_command
from querywarden.commands.serve import serve_command
from querywarden.commands.stix import stix_command

app = typer.Typer(
    name="querywarden",
    help="Catch model inversion, extraction, membership inference and training-data extraction in API traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("replay")(replay_command)
app.command("profile")(profile_command)
app.command("bench")(bench)
app.command("calibrate")(calibrate_command)
app.command("demo")(demo_command)
app.command("serve")(serve_command)
app.command("console")(console_command)
app.command("stix")(stix_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"querywarden {querywarden.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """QueryWarden watches how callers question a model and stops them walking off with it."""
