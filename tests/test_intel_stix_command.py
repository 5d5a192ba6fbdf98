"""``querywarden stix``: findings from a real SQLite store out as a STIX bundle."""

from __future__ import annotations

import json
from pathlib import Path

import stix2
from typer.testing import CliRunner

from exports_receivers import make_finding
from querywarden.cli import app
from querywarden.core.records import Severity
from querywarden.store import open_store


def test_store_findings_become_indicators_and_sightings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'qw.db'}"
    with open_store(url) as store:
        store.add_findings(
            [
                make_finding(finding_id="fnd-high", principals=("key_a",)),
                make_finding(finding_id="fnd-low", principals=("key_b",), severity=Severity.LOW),
                make_finding(finding_id="fnd-crit", principals=("key_c", "key_d"), severity=Severity.CRITICAL),
            ]
        )
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(app, ["stix", "--db", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    bundle = stix2.parse(out.read_text(), allow_custom=True)
    indicators = {o.x_querywarden_finding_id: o for o in bundle.objects if o.type == "indicator"}
    assert set(indicators) == {"fnd-high", "fnd-crit"}  # medium and up by default
    assert indicators["fnd-crit"].pattern == "[user-account:user_id = 'key_c' OR user-account:user_id = 'key_d']"
    assert sum(o.type == "sighting" for o in bundle.objects) == 2

    everything = CliRunner().invoke(app, ["stix", "--db", url, "--min-severity", "low"])
    assert everything.exit_code == 0
    objects = json.loads(everything.stdout)["objects"]
    assert sum(o["type"] == "indicator" for o in objects) == 3


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'qw.db'}"
    assert CliRunner().invoke(app, ["stix", "--db", url, "--min-severity", "severe"]).exit_code == 2
    assert CliRunner().invoke(app, ["stix", "--db", "nodb"]).exit_code == 2
