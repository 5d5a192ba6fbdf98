"""``querywarden calibrate BENIGN.jsonl``: set detector thresholds from benign traffic.

With ``--config`` the thresholds are written into that file's ``[detectors.<name>]``
tables, keeping everything else. Without it, profiles are inferred from the traffic and a
new config is written to ``--out``. Bad lines are reported as ``file:line: reason`` and
skipped; the run goes on. Exit 2 for usage and config errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from querywarden.calibrate import CalibrationResult, calibrate
from querywarden.config import Config, load_config, write_detector_params
from querywarden.core.traffic import TrafficParser
from querywarden.errors import QueryWardenError
from querywarden.profiling import SAMPLE_PER_MODEL, infer_profiles, render_toml
from querywarden.replay import Reject, read_interactions


def calibrate_command(
    benign: Annotated[Path, typer.Argument(help="Benign traffic (JSON lines, optionally .gz).", show_default=False)],
    target_fpr: Annotated[
        float, typer.Option("--target-fpr", help="Share of benign principals allowed over each threshold.")
    ] = 0.001,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config to update in place (its models are used).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a new config here instead (default without --config).")
    ] = None,
) -> None:
    """Calibrate every detector's thresholds on benign traffic for a target false-positive rate."""
    err = Console(stderr=True)
    if not benign.is_file():
        _fail(err, f"{benign}: traffic file not found")
    target = out or config or Path("querywarden.toml")
    if config is None and target.exists():
        _fail(err, f"{target} exists; pass --config {target} to update it, or --out to write elsewhere")
    rejects = 0

    def on_reject(r: Reject) -> None:
        nonlocal rejects
        rejects += 1
        err.print(f"{r.location}: {r.reason}", highlight=False, markup=False, soft_wrap=True)

    try:
        if config is not None:
            cfg = load_config(config)
        else:
            cfg = Config.defaults(infer_profiles(benign, SAMPLE_PER_MODEL).profiles)
            if not cfg.profiles:
                _fail(err, f"{benign}: no valid traffic line to infer a model profile from")
        parser = TrafficParser(cfg.profiles, str(benign))
        result = calibrate(
            read_interactions(benign, parser, on_reject), cfg.profiles, cfg.detector_specs, target_fpr=target_fpr
        )
        if config is None or out is not None:
            base = config.read_text(encoding="utf-8") if config is not None else render_toml(cfg.profiles.values())
            target.write_text(base, encoding="utf-8")
        write_detector_params(target, result.params_by_detector())
    except QueryWardenError as exc:
        _fail(err, exc.located())
    _summary(result, target, rejects, target_fpr)


def _fail(err: Console, message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _summary(result: CalibrationResult, target: Path, rejects: int, target_fpr: float) -> None:
    table = Table(title=f"Thresholds for a {target_fpr:.2%} benign false-positive rate, written to {target}")
    for col in ("detector", "model", "parameter", "was", "now", "benign principals", "quantile"):
        table.add_column(col, justify="right" if col in {"was", "now", "benign principals", "quantile"} else "left")
    for t in result.thresholds:
        was = f"{t.old:.4g}" if isinstance(t.old, int | float) else str(t.old)
        table.add_row(t.detector, t.model, t.param, was, f"{t.value:.4g}", str(t.principals), f"{t.quantile:g}")
    console = Console()
    console.print(table)
    console.print(
        f"{result.interactions:,} interactions from {result.principals:,} principals; {rejects:,} rejected lines."
    )
    if result.principals * target_fpr < 1:
        console.print(
            f"[yellow]note:[/yellow] {result.principals:,} principals cannot resolve a {target_fpr:.2%} rate: each "
            "threshold sits just above the most extreme benign principal. Calibrate on at least "
            f"{int(1 / target_fpr):,} principals for the rate to be measured rather than bounded.",
            soft_wrap=True,
        )
