"""STIX 2.1 in (bundles, patterns) and out (findings as indicators plus sightings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stix2

from exports_receivers import make_finding
from querywarden.core.records import Severity
from querywarden.errors import IntelError
from querywarden.intel.export import findings_bundle, principal_pattern
from querywarden.intel.stix import Unsupported, import_objects, pattern_terms, read_bundle

T = "2026-11-01T00:00:00.000Z"


def indicator(n: int, pattern: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": T,
        "modified": T,
        "name": f"indicator {n}",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": T,
        **extra,
    }


BUNDLE = {
    "type": "bundle",
    "id": "bundle--00000000-0000-4000-8000-000000000000",
    "objects": [
        indicator(1, "[ipv4-addr:value = '203.0.113.7']", confidence=90),
        indicator(2, "[ipv4-addr:value ISSUBSET '198.51.100.0/24'] OR [ipv6-addr:value ISSUBSET '2001:db8::/32']"),
        indicator(3, "[user-account:user_id = 'key_8f2c' OR user-account:account_login = 'o\\'brien']"),
        indicator(
            4,
            "[x-querywarden-fingerprint:value = 'ABCDEF0123456789'"
            " AND x-querywarden-fingerprint:algorithm = 'qw-text-v1']",
            valid_until="2026-12-01T00:00:00Z",
        ),
        indicator(5, "[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [ipv4-addr:value = '192.0.2.2']"),
        indicator(6, "[domain-name:value = 'evil.example']"),
        indicator(7, "[ipv4-addr:value = '192.0.2.9']", revoked=True),
        indicator(8, "[ipv4-addr:value = '192.0.2.9'", name="broken"),
        indicator(9, "alert tcp any any", pattern_type="snort"),
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": "identity--00000000-0000-4000-8000-000000000001",
            "created": T,
            "modified": T,
            "name": "partner",
            "identity_class": "organization",
        },
    ],
}


def test_bundle_import_reads_supported_patterns_and_reports_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "partner.json"
    path.write_text(json.dumps(BUNDLE))
    result = read_bundle(path, feed="partner", severity=Severity.MEDIUM)
    got = sorted((i.kind, i.value, i.algorithm, i.ref[-2:]) for i in result.indicators)
    assert got == [
        ("fingerprint", "abcdef0123456789", "qw-text-v1", "04"),
        ("network", "198.51.100.0/24", None, "02"),
        ("network", "2001:db8::/32", None, "02"),
        ("network", "203.0.113.7/32", None, "01"),
        ("principal", "key_8f2c", None, "03"),
        ("principal", "o'brien", None, "03"),
    ]
    first = next(i for i in result.indicators if i.ref.endswith("01"))
    assert first.confidence == 0.9 and first.severity is Severity.MEDIUM and first.feed == "partner"
    assert first.valid_from == 1_793_491_200.0 and first.name == "indicator 1"
    fp = next(i for i in result.indicators if i.kind == "fingerprint")
    assert fp.valid_until == 1_796_083_200.0
    reasons = {s.split(":", 1)[0][-2:]: s for s in result.skipped}
    assert set(reasons) == {"05", "06", "07", "08", "09"}
    assert "needs history" in reasons["05"] and "domain-name" in reasons["06"] and "revoked" in reasons["07"]
    assert "invalid STIX" in reasons["08"] and "snort" in reasons["09"]
    assert result.objects == 10


def test_patterns_outside_a_lookup_are_unsupported() -> None:
    assert pattern_terms("[ipv4-addr:value = '10.0.0.1']") == [("network", "10.0.0.1/32", None)]
    for bad in (
        "[ipv4-addr:value != '10.0.0.1']",
        "[ipv4-addr:value = '10.0.0.1' AND user-account:user_id = 'x']",
        "[ipv4-addr:value = '10.0.0.1'] WITHIN 5 SECONDS",
        "[user-account:user_id ISSUBSET 'x']",
        "[x-querywarden-fingerprint:algorithm = 'qw-row-v1']",
        "[x-querywarden-fingerprint:value = 'ab' AND x-querywarden-fingerprint:algorithm = 'md5']",
        "[ipv4-addr:value = ",
    ):
        with pytest.raises(Unsupported):
            pattern_terms(bad)


def test_not_a_bundle_or_not_json_is_located(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text('{"type": "bundle",\n "objects": [\n  {,}]}')
    with pytest.raises(IntelError) as info:
        read_bundle(path, feed="x", severity=Severity.LOW)
    assert info.value.line == 3 and str(path) in info.value.located()
    path.write_text('{"type": "indicator"}')
    with pytest.raises(IntelError, match="not a STIX bundle"):
        read_bundle(path, feed="x", severity=Severity.LOW)


def test_findings_export_as_indicators_and_sightings_that_import_back() -> None:
    findings = [
        make_finding(principals=("key_8f2c", "o'brien\\x"), actor="actor-1a2b", status="open"),
        make_finding(
            principals=("key_8f2c", "o'brien\\x"),
            actor="actor-1a2b",
            status="updated",
            revision=2,
            updated_ts=1_764_340_000.0,
        ),
        make_finding(
            finding_id="fnd-2",
            technique={"id": "AML.T0024.001", "name": "Invert AI Model"},
            owasp=("ML03:2023",),
            principals=("key_x",),
            queries_at_detection=0,
        ),
    ]
    bundle = findings_bundle(findings, deployment="qw-prod")
    parsed = stix2.parse(bundle.serialize(), allow_custom=True)  # valid STIX 2.1 by the reference library
    by_type: dict[str, list[Any]] = {}
    for obj in parsed.objects:
        by_type.setdefault(obj.type, []).append(obj)
    assert {k: len(v) for k, v in by_type.items()} == {
        "identity": 1,
        "attack-pattern": 2,
        "indicator": 2,
        "sighting": 2,
        "relationship": 2,
    }
    ind = next(i for i in by_type["indicator"] if i.x_querywarden_finding_id == "fnd-0011223344556677")
    assert ind.modified.timestamp() == 1_764_340_000.0  # the latest revision won
    assert ind.confidence == 87 and ind.x_querywarden_severity == "high" and "AML.T0024.002" in ind.labels
    sighting = next(s for s in by_type["sighting"] if s.sighting_of_ref == ind.id)
    assert sighting.count == 412 and sighting.where_sighted_refs == [by_type["identity"][0].id]
    assert next(s for s in by_type["sighting"] if s.sighting_of_ref != ind.id).count == 1
    atlas = {ap.external_references[0].external_id for ap in by_type["attack-pattern"]}
    assert atlas == {"AML.T0024.002", "AML.T0024.001"}
    rel = next(r for r in by_type["relationship"] if r.source_ref == ind.id)
    assert rel.relationship_type == "indicates" and rel.target_ref.startswith("attack-pattern--")
    # another QueryWarden imports the bundle and watches for the same principals
    back = import_objects(json.loads(bundle.serialize())["objects"], feed="peer", severity=Severity.MEDIUM)
    assert sorted(i.value for i in back.indicators) == ["key_8f2c", "key_x", "o'brien\\x"] and not back.skipped
    again = findings_bundle(findings, deployment="qw-prod")
    assert [o.id for o in again.objects] == [o.id for o in bundle.objects]  # stable ids: versions, not duplicates


def test_principal_pattern_escapes_quotes_and_backslashes() -> None:
    pattern = principal_pattern(["a'b", "c\\d"])
    assert pattern == "[user-account:user_id = 'a\\'b' OR user-account:user_id = 'c\\\\d']"
    assert [v for _, v, _ in pattern_terms(pattern)] == ["a'b", "c\\d"]
