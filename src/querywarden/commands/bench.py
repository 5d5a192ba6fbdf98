"""``querywarden bench --profile ci|full --out DIR``: the red-team benchmark.

Runs every registered attack in three variants against victims trained on the spot,
interleaved with benign customers, and writes ``DIR/results.json``, ``DIR/results.md``,
``DIR/detection-delay.png`` and every traffic file (with a config to replay it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from querywarden.errors import QueryWardenError

_PROFILES = ("ci", "full")


def bench(
    profile: Annotated[str, typer.Option("--profile", help="ci (a few minutes, in the test suite) or full.")] = "ci",
    out: Annotated[Path, typer.Option("--out", help="Directory for results, plots and traffic files.")] = Path(
        "bench-out"
    ),
    attack: Annotated[
        list[str] | None,
        typer.Option("--attack", help="Run only this attack (repeatable); default: every registered attack."),
    ] = None,
) -> None:
    """Run the red-team benchmark and write results.json, results.md, a plot and the traffic files."""
    console = Console(stderr=True)
    if profile not in _PROFILES:
        console.print(f"[red]error:[/red] unknown profile {profile!r}; allowed: {', '.join(_PROFILES)}")
        raise typer.Exit(2)
    os.environ.setdefault("MPLBACKEND", "Agg")
    # imported here: the benchmark pulls in scikit-learn and ART, which other commands never need
    from querywarden.bench.report import markdown, write_all
    from querywarden.bench.runner import PROFILES, Runner

    try:
        runner = Runner(PROFILES[profile], out, log=lambda msg: console.print(msg, highlight=False))
        results = runner.run(attack or None)
    except QueryWardenError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    paths = write_all(results, out)
    typer.echo(markdown(results).split("## Benign customers")[0].rstrip())
    typer.echo("")
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")
