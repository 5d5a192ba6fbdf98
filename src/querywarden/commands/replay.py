"""``querywarden replay TRAFFIC.jsonl``: run a traffic file through the engine.

Findings go to a JSON-lines file (our form, or OCSF), rejects to stderr and a rejects
file, and a summary table to stdout. Exit codes: 0 when the run completed (rejects or
not), 2 for usage and config errors (a located message, never a traceback), 1 when the
store fails mid-run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from querywarden.config import Config, load_config
from querywarden.core.engine import Engine
from querywarden.errors import QueryWardenError, StoreError
from querywarden.findings_out import FORMATS, FindingsWriter
from querywarden.profiling import SAMPLE_PER_MODEL, infer_profiles
from querywarden.replay import Recorder, Reject, RejectsFile, ReplayStats, default_rejects_path, replay

if TYPE_CHECKING:
    from querywarden.exports.dispatcher import Dispatcher

MAX_REJECTS_SHOWN = 200
"""Rejects printed to stderr; every one is in the rejects file."""


def _fail(console: Console, message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _describe(cfg: Config) -> str:
    parts = []
    for p in cfg.profiles.values():
        shape = f"{p.n_features} features" if p.n_features else "text"
        parts.append(f"{p.id} ({p.input_kind.value}, {shape})")
    return ", ".join(parts)


def replay_command(
    traffic: Annotated[Path, typer.Argument(help="Traffic file (JSON lines, optionally .gz).", show_default=False)],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file; without it profiles are inferred.")
    ] = None,
    findings: Annotated[
        Path | None,
        typer.Option(
            "--findings", "-o", help="Findings output, '-' for stdout. Default: <traffic>.findings.jsonl here."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Findings format: json or ocsf.")] = "json",
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Rejects file. Default: <traffic>.rejects.jsonl by the findings.")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Store URL to write interactions, signals, findings and decisions to.")
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", help="Interactions per model used to infer profiles without --config.")
    ] = SAMPLE_PER_MODEL,
    export: Annotated[
        bool, typer.Option("--export", help="Also send findings to the config's \\[\\[exports]] (SIEM, webhook).")
    ] = False,
) -> None:
    """Run a traffic file through the engine and write the findings."""
    err = Console(stderr=True)
    out = Console()
    if fmt not in FORMATS:
        raise _fail(err, f"unknown --format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if not traffic.is_file():
        raise _fail(err, f"{traffic}: traffic file not found")
    if sample < 1:
        raise _fail(err, "--sample must be at least 1")
    try:
        if config is not None:
            cfg = load_config(config)
        else:
            inferred = infer_profiles(traffic, sample)
            if not inferred.profiles:
                raise _fail(err, f"{traffic}: no valid traffic line to infer a model profile from")
            cfg = Config.defaults(inferred.profiles)
            err.print(
                f"No --config given: inferred profiles from the traffic (up to {sample:,} interactions per model): "
                f"{_describe(cfg)}. Draft a config with `querywarden profile {traffic}`.",
                highlight=False,
                soft_wrap=True,
            )
        engine = cfg.engine()
        dispatcher = _dispatcher(config) if export else None
    except QueryWardenError as exc:
        raise _fail(err, exc.located()) from None
    if export and not dispatcher:  # never by default: a trial replay must not page the SOC
        raise _fail(err, escape("--export needs a --config with [[exports]] tables"))

    stdout_findings = findings is not None and str(findings) == "-"
    if findings is None:
        findings = Path(default_rejects_path(traffic, Path.cwd()).name.replace(".rejects.", ".findings."))
    findings_dir = Path.cwd() if stdout_findings else findings.resolve().parent
    rejects_path = rejects or default_rejects_path(traffic, findings_dir)
    if not findings_dir.is_dir():
        raise _fail(err, f"{findings}: directory does not exist")

    store = None
    if db is not None:  # never the config's store.url: a trial replay must not write to the live store
        from querywarden.store import open_store

        try:
            store = open_store(db, retention=cfg.retention)
        except QueryWardenError as exc:
            raise _fail(err, exc.located()) from None

    shown = 0

    def on_reject(r: Reject) -> None:
        nonlocal shown
        shown += 1
        if shown <= MAX_REJECTS_SHOWN:
            err.print(f"{r.location}: {r.reason}", highlight=False, markup=False, soft_wrap=True)

    stream: IO[bytes] = sys.stdout.buffer if stdout_findings else findings.open("wb")
    rejects_file = RejectsFile(rejects_path)
    try:
        writer = _exporting(stream, fmt, dispatcher) if dispatcher else FindingsWriter(stream, fmt)
        stats = _run(traffic, engine, writer, rejects_file, on_reject, store, err)
    except StoreError as exc:
        raise _fail(err, exc.located(), 1) from None
    finally:
        if dispatcher:
            dispatcher.close(timeout=60.0)
            err.print(dispatcher.summary(), highlight=False)
        rejects_file.close()
        if not stdout_findings:
            stream.close()
        if store is not None:
            store.close()
    if stats.rejects > MAX_REJECTS_SHOWN:
        err.print(f"... {stats.rejects - MAX_REJECTS_SHOWN:,} more rejects in {rejects_path}", highlight=False)
    _summary(Console(stderr=True) if stdout_findings else out, stats, None if stdout_findings else findings)


def _dispatcher(config: Path | None) -> Dispatcher:
    from querywarden.exports.settings import load_dispatcher  # exports need the gateway extra (httpx)

    return load_dispatcher(config)


def _exporting(stream: IO[bytes], fmt: str, dispatcher: Dispatcher) -> FindingsWriter:
    from querywarden.exports.edge import ExportingWriter

    return ExportingWriter(stream, fmt, dispatcher)


def _run(
    traffic: Path,
    engine: Engine,
    writer: FindingsWriter,
    rejects: RejectsFile,
    on_reject: Callable[[Reject], None],
    store: Recorder | None,
    err: Console,
) -> ReplayStats:
    """Replay, with a progress bar on stderr when stderr is a terminal."""
    if not err.is_terminal:
        return replay(traffic, engine, writer, rejects=rejects, on_reject=on_reject, recorder=store)
    columns = (TextColumn("replay"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[lines]:,} lines"))
    with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("replay", total=traffic.stat().st_size, lines=0)

        def on_progress(lines: int, position: int) -> None:
            progress.update(task, completed=position, lines=lines)

        return replay(
            traffic, engine, writer, rejects=rejects, on_reject=on_reject, on_progress=on_progress, recorder=store
        )


def _summary(console: Console, stats: ReplayStats, findings: Path | None) -> None:
    table = Table(title="Findings", title_justify="left")
    table.add_column("technique")
    table.add_column("severity")
    table.add_column("findings", justify="right")
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    rows = sorted(stats.by_technique_severity().items(), key=lambda kv: (order[kv[0][2]], kv[0][0]))
    for (tid, name, severity), n in rows:
        table.add_row(f"{tid} {name}", severity, str(n))
    if rows:
        console.print(table)
    else:
        console.print("No findings.")
    facts = Table(show_header=False, box=None)
    facts.add_column(justify="right")
    facts.add_column()
    facts.add_row("interactions", f"{stats.interactions:,}")
    facts.add_row("principals flagged", f"{len(stats.principals_flagged()):,}")
    facts.add_row("finding events", f"{stats.finding_events:,}")
    facts.add_row("rejects", f"{stats.rejects:,}" + (f" ({stats.rejects_path})" if stats.rejects else ""))
    facts.add_row("rate", f"{stats.rate:,.0f} interactions/s over {stats.seconds:.1f} s")
    if findings is not None:
        facts.add_row("findings file", str(findings))
    console.print(facts)
