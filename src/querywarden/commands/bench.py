"""``querywarden bench --profile ci|full|holdout --out DIR [--seed N]``: the red-team benchmark.

Runs every registered attack in three variants against victims trained on the spot,
interleaved with benign customers, and writes ``DIR/results.json``, ``DIR/results.md``,
``DIR/detection-delay.png`` and every traffic file (with a config to replay it).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from querywarden.errors import QueryWardenError

_PROFILES = ("ci", "full", "holdout")
_SUITES = ("all", "classifier", "llm")


def bench(
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="ci (a few minutes, in the test suite), full, or holdout (held-out victims, attack settings and "
            "benign habits; classifier suite only).",
        ),
    ] = "ci",
    out: Annotated[Path, typer.Option("--out", help="Directory for results, plots and traffic files.")] = Path(
        "bench-out"
    ),
    attack: Annotated[
        list[str] | None,
        typer.Option("--attack", help="Run only this attack (repeatable); default: every registered attack."),
    ] = None,
    suite: Annotated[
        str, typer.Option("--suite", help="classifier, llm (the fintech assistant, written to OUT/llm) or all.")
    ] = "all",
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed for victims, benign customers, attacks and variants (default: the profile's own, 4); "
            "recorded in results.json.",
        ),
    ] = None,
) -> None:
    """Run the red-team benchmark and write results.json, results.md, a plot and the traffic files."""
    console = Console(stderr=True)
    if profile not in _PROFILES:
        console.print(f"[red]error:[/red] unknown profile {profile!r}; allowed: {', '.join(_PROFILES)}")
        raise typer.Exit(2)
    if suite not in _SUITES:
        console.print(f"[red]error:[/red] unknown suite {suite!r}; allowed: {', '.join(_SUITES)}")
        raise typer.Exit(2)
    if seed is not None and seed < 0:
        console.print(f"[red]error:[/red] --seed must be a non-negative integer, got {seed}")
        raise typer.Exit(2)
    if profile == "holdout" and suite != "classifier":
        if suite == "llm":
            console.print("[red]error:[/red] the holdout profile has no LLM suite; use --suite classifier")
            raise typer.Exit(2)
        console.print("the holdout profile runs the classifier suite only")
        suite = "classifier"
    os.environ.setdefault("MPLBACKEND", "Agg")
    llm_attacks = _llm_attacks(attack or [], suite, console)
    if suite != "llm" and (not attack or len(llm_attacks or ()) < len(attack)):
        # imported here: the benchmark pulls in scikit-learn and ART, which other commands never need
        from querywarden.bench.report import markdown, write_all
        from querywarden.bench.runner import PROFILES, Runner

        chosen = PROFILES[profile] if seed is None else dataclasses.replace(PROFILES[profile], seed=seed)
        try:
            runner = Runner(chosen, out, log=lambda msg: console.print(msg, highlight=False))
            results = runner.run([a for a in attack if a not in (llm_attacks or ())] if attack else None)
        except QueryWardenError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        paths = write_all(results, out)
        typer.echo(markdown(results).split("## Benign customers")[0].rstrip())
        typer.echo("")
        for kind, path in paths.items():
            typer.echo(f"{kind}: {path}")
    if llm_attacks is not None and (not attack or llm_attacks):
        from querywarden.bench.llm_report import markdown as llm_markdown
        from querywarden.bench.llm_runner import run_llm_bench

        try:
            llm = run_llm_bench(
                profile,
                out / "llm",
                log=lambda msg: console.print(msg, highlight=False),
                attacks=llm_attacks or None,
                seed=seed,
            )
        except QueryWardenError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        typer.echo(llm_markdown(llm).split("## Benign chat users")[0].rstrip())
        typer.echo(f"llm results: {out / 'llm' / 'results.json'}")


def _llm_attacks(attack: list[str], suite: str, console: Console) -> list[str] | None:
    """The LLM attacks among ``--attack`` (all of them when none is named), or None to skip the LLM suite."""
    if suite == "classifier":
        return None
    try:
        from querywarden.bench.llm_attacks import llm_attack_names
    except ImportError as exc:  # the fintech assistant needs the llm extra (Faker)
        if suite == "llm":
            console.print(f"[red]error:[/red] the LLM benchmark needs the llm extra: {exc}")
            raise typer.Exit(2) from None
        console.print(f"LLM benchmark skipped (install the llm extra): {exc}")
        return None
    names = llm_attack_names()
    if suite == "llm" and attack:
        return list(attack)  # an unknown name is then reported by the LLM runner
    return [a for a in attack if a in names] if attack else names
