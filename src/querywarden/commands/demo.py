"""``querywarden demo``: the bundled traffic sample through the engine into SQLite.

The sample (``querywarden/data/demo``) is a digits classifier's traffic: benign customers
(browsing, retries, edited photos, a batch job, a shared NAT) and attackers running real
attacks from the red-team benchmark. It is replayed exactly as ``querywarden replay``
would, stored in a fresh SQLite database, and the findings are read back from the store
and printed beside who each principal really was, so the result can be judged at a glance.
"""

from __future__ import annotations

import json
from importlib.resources import as_file, files
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from querywarden.config import load_config
from querywarden.core.records import Finding, Severity
from querywarden.errors import QueryWardenError
from querywarden.findings_out import FindingsWriter
from querywarden.replay import RejectsFile, replay


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo's database and findings.")] = Path(
        "querywarden-demo"
    ),
) -> None:
    """Replay the bundled demo traffic into SQLite and show what QueryWarden found."""
    from querywarden.store import open_store

    console = Console(width=None if Console().is_terminal else 160)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "demo.db"
    for stale in (db_path, out / "demo.db-wal", out / "demo.db-shm"):
        stale.unlink(missing_ok=True)  # the demo's own database: start fresh each run
    data = files("querywarden.data.demo")
    with as_file(data / "traffic.jsonl.gz") as traffic, as_file(data / "config.toml") as config_path:
        truth: dict[str, dict[str, Any]] = json.loads((data / "principals.json").read_text(encoding="utf-8"))
        try:
            cfg = load_config(config_path)
            engine = cfg.engine()
            store = open_store(f"sqlite:///{db_path}", retention="sketch")
        except QueryWardenError as exc:
            console.print(f"[red]error:[/red] {exc.located()}")
            raise typer.Exit(2) from None
        findings_path = out / "findings.jsonl"
        with findings_path.open("wb") as fh, store:
            rejects = RejectsFile(out / "rejects.jsonl")
            stats = replay(traffic, engine, FindingsWriter(fh), rejects=rejects, recorder=store)
            rejects.close()
            findings = store.findings(limit=1000)
    console.print(
        f"Replayed {stats.interactions:,} interactions from {len(truth):,} principals "
        f"({stats.rate:,.0f} interactions/s) into {db_path}."
    )
    console.print(_findings_table(findings, truth))
    _scorecard(console, findings, truth)
    console.print(
        f"\nFindings (JSON lines): {findings_path}\n"
        f"Browse them: .venv/bin/querywarden console --db sqlite:///{db_path}\n"
        "Replay the same traffic yourself: "
        f".venv/bin/querywarden replay {_shown(traffic)} --config {_shown(config_path)}",
        highlight=False,
        soft_wrap=True,
    )


MAX_ROWS = 30


def _findings_table(findings: list[Finding], truth: dict[str, dict[str, Any]]) -> Table:
    shown = sorted(findings, key=lambda f: (-f.severity, f.technique["id"], f.principals))[:MAX_ROWS]
    more = f" ({len(findings) - MAX_ROWS} more in findings.jsonl)" if len(findings) > MAX_ROWS else ""
    table = Table(title=f"Findings, read back from the store{more}", show_lines=False)
    for col in ("severity", "technique", "principals", "who they really are", "detectors", "queries", "action"):
        table.add_column(col, justify="right" if col == "queries" else "left", overflow="fold")
    for f in shown:
        roles = sorted({truth.get(p, {}).get("role", "unknown") for p in f.principals})
        who = f.actor + f" ({len(f.principals)} keys)" if f.actor else ", ".join(f.principals)
        table.add_row(
            _severity(f.severity),
            f"{f.technique['id']} {f.technique['name']}",
            who,
            "; ".join(roles),
            ", ".join(f.detectors),
            str(f.queries_at_detection),
            f.action,
        )
    return table


def _scorecard(console: Console, findings: list[Finding], truth: dict[str, dict[str, Any]]) -> None:
    flagged = {p for f in findings if f.severity >= Severity.MEDIUM for p in f.principals}
    attacks: dict[str, set[str]] = {}
    benign = set()
    for principal, info in truth.items():
        if info.get("attack"):
            attacks.setdefault(info["attack"], set()).add(principal)
        else:
            benign.add(principal)
    caught = [name for name, keys in attacks.items() if keys & flagged]
    missed = sorted(set(attacks) - set(caught))
    console.print(
        f"\nAttacks caught at medium or above: {len(caught)}/{len(attacks)}"
        + (f" (missed: {', '.join(missed)})" if missed else "")
        + f". Benign customers flagged at medium or above: {len(benign & flagged)}/{len(benign)}.",
        highlight=False,
    )


def _severity(sev: Severity) -> str:
    colour = {Severity.CRITICAL: "bold red", Severity.HIGH: "red", Severity.MEDIUM: "yellow"}.get(sev, "dim")
    return f"[{colour}]{sev.label}[/{colour}]"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
