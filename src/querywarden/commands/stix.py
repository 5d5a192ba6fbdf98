"""``querywarden stix --db URL``: the store's findings as a STIX 2.1 bundle.

For threat-intel platforms and other QueryWarden deployments: each finding becomes an
indicator on its principals plus a sighting (see ``querywarden.intel.export``). Exit
codes: 0 written, 2 for usage errors and a store or package that cannot be opened.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from querywarden.core.records import Finding, Severity
from querywarden.errors import QueryWardenError

PAGE = 1_000


def stix_command(
    db: Annotated[str, typer.Option("--db", help="Store URL, e.g. sqlite:///querywarden.db.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Bundle file; stdout when absent.")] = None,
    min_severity: Annotated[
        str, typer.Option("--min-severity", help="Lowest finding severity exported (medium: attack patterns).")
    ] = "medium",
    since: Annotated[
        float | None, typer.Option("--since", help="Only findings updated at or after this epoch time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most recently updated findings exported at most.")] = 10_000,
    deployment: Annotated[
        str, typer.Option("--deployment", help="Name of this deployment in the bundle's identity.")
    ] = "querywarden",
) -> None:
    """Export findings from a store as STIX 2.1 indicators and sightings."""
    err = Console(stderr=True)
    try:
        severity = Severity.parse(min_severity)
    except ValueError as exc:
        err.print(f"[red]error:[/red] --min-severity: {escape(str(exc))}")
        raise typer.Exit(2) from None
    if limit < 1:
        err.print("[red]error:[/red] --limit must be at least 1")
        raise typer.Exit(2)
    try:
        from querywarden.intel.export import findings_bundle
    except ImportError as exc:
        err.print(f"[red]error:[/red] STIX export needs the intel extra (pip install 'querywarden\\[intel]'): {exc}")
        raise typer.Exit(2) from None
    from querywarden.store import open_store

    try:
        with open_store(db) as store:
            findings: list[Finding] = []
            while len(findings) < limit:
                page = store.findings(
                    severity_at_least=severity,
                    since=since,
                    limit=min(PAGE, limit - len(findings)),
                    offset=len(findings),
                )
                findings.extend(page)
                if len(page) < PAGE:
                    break
    except QueryWardenError as exc:
        err.print(f"[red]error:[/red] {escape(exc.located())}")
        raise typer.Exit(2) from None
    text = findings_bundle(findings, deployment=deployment).serialize(pretty=True)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n", encoding="utf-8")
    err.print(f"{len(findings):,} findings exported as STIX{f' to {out}' if out else ''}", highlight=False)
