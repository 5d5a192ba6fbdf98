"""``querywarden profile TRAFFIC.jsonl``: draft ``[models.<id>]`` tables from traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from querywarden.errors import QueryWardenError
from querywarden.profiling import SAMPLE_PER_MODEL, infer_profiles, render_toml


def profile_command(
    traffic: Annotated[Path, typer.Argument(help="Traffic file (JSON lines, optionally .gz).", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the TOML here instead of stdout.")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Interactions per model to draft from.")] = SAMPLE_PER_MODEL,
) -> None:
    """Draft model profiles (the models tables of a config) from a traffic file."""
    err = Console(stderr=True)
    if not traffic.is_file():
        err.print(f"[red]error:[/red] {traffic}: traffic file not found", highlight=False)
        raise typer.Exit(2)
    if sample < 1:
        err.print("[red]error:[/red] --sample must be at least 1", highlight=False)
        raise typer.Exit(2)
    try:
        run = infer_profiles(traffic, sample)
    except QueryWardenError as exc:
        err.print(f"[red]error:[/red] {exc.located()}", highlight=False)
        raise typer.Exit(2) from None
    if not run.profiles:
        err.print(f"[red]error:[/red] {traffic}: no valid traffic line to draft a profile from", highlight=False)
        raise typer.Exit(2)
    text = render_toml(run.profiles.values(), source=traffic.name)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    for model, n in run.counts.items():
        err.print(f"{model}: drafted from {n:,} interaction{'' if n == 1 else 's'}", highlight=False)
    if run.rejects:
        err.print(f"{run.rejects:,} bad lines skipped (`querywarden replay` lists them)", highlight=False)
    if out is not None:
        err.print(f"wrote {out}", highlight=False)
