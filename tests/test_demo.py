"""querywarden demo: the bundled sample goes through the engine into SQLite and scores itself."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from querywarden.cli import app
from querywarden.store import open_store


def test_demo_catches_the_attackers_and_leaves_customers_alone(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    caught = re.search(r"Attacks caught at medium or above: (\d+)/(\d+)", result.output)
    benign = re.search(r"Benign customers flagged at medium or above: (\d+)/(\d+)", result.output)
    assert caught and benign, result.output
    # measured: 4/5 caught (CopycatCNN with natural images is exposure only), 0/41 customers
    assert int(caught.group(1)) >= 4 and int(caught.group(2)) == 5
    assert int(benign.group(1)) == 0 and int(benign.group(2)) == 41
    with open_store(f"sqlite:///{out / 'demo.db'}") as store:
        assert store.count_findings(severity_at_least="medium") >= 4
    assert (out / "findings.jsonl").read_text().count("\n") >= 4


def test_demo_runs_again_on_a_fresh_database(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = CliRunner().invoke(app, ["demo", "--out", str(out)])
    second = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert first.exit_code == second.exit_code == 0
    line = "Replayed 5,374 interactions"
    assert line in first.output and line in second.output
