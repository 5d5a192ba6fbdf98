"""Findings out as STIX 2.1: an indicator and a sighting per finding, in one bundle.

Another team's QueryWarden, or any STIX-reading platform, can import the bundle and watch
for the same principals. Per finding:

- an ``indicator`` whose pattern names the finding's principals
  (``[user-account:user_id = 'key_8f2c' OR ...]``), valid from the first interaction seen,
  with the score as ``confidence`` and QueryWarden's fields as ``x_querywarden_*`` custom
  properties (finding id, severity, model, actor, detectors, OWASP ids);
- an ``attack-pattern`` for its MITRE ATLAS technique (shared by findings that name the
  same one) and an ``indicates`` relationship from the indicator to it;
- a ``sighting`` of the indicator by this QueryWarden (an ``identity`` of class
  ``system``), from first to last seen, counting the interactions at detection.

Ids are UUIDv5 of the finding id, so exporting a finding again (after an update) gives
the same objects with a later ``modified``: a new version, not a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import stix2

import querywarden
from querywarden.core.records import Finding

NAMESPACE = uuid.UUID("6f1c3f0e-8a7c-5b8e-9d2a-0f5d6c1b2a39")
MAX_PRINCIPALS = 200
"""Principals named in one pattern; an actor's remaining members are left out (and counted)."""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _id(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, key)}"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def principal_pattern(principals: Iterable[str]) -> str:
    terms = [f"user-account:user_id = {_quote(p)}" for p in principals]
    return "[" + " OR ".join(terms) + "]"


def _identity(name: str, created: datetime) -> stix2.Identity:
    return stix2.Identity(
        id=_id("identity", f"querywarden:{name}"),
        name=name,
        identity_class="system",
        description="A QueryWarden deployment watching queries to AI models.",
        created=created,
        modified=created,
    )


def _attack_pattern(technique: dict[str, str], created: datetime, identity: str) -> stix2.AttackPattern:
    tid = technique["id"]
    return stix2.AttackPattern(
        id=_id("attack-pattern", f"atlas:{tid}"),
        name=technique["name"],
        created=created,
        modified=created,
        created_by_ref=identity,
        external_references=[
            {"source_name": "mitre-atlas", "external_id": tid, "url": f"https://atlas.mitre.org/techniques/{tid}"}
        ],
    )


def finding_objects(finding: Finding, identity: str) -> list[Any]:
    """The indicator, sighting and relationship of one finding (the attack pattern is shared)."""
    first, updated = _dt(finding.first_seen_ts), _dt(max(finding.updated_ts, finding.first_seen_ts))
    principals = finding.principals[:MAX_PRINCIPALS]
    subject = finding.actor or ", ".join(principals[:3])
    indicator = stix2.Indicator(
        id=_id("indicator", finding.finding_id),
        name=f"{finding.technique['name']} by {subject} on {finding.model}",
        description=f"QueryWarden finding {finding.finding_id} ({finding.severity.label}, {finding.status}).",
        indicator_types=["malicious-activity"],
        pattern=principal_pattern(principals),
        pattern_type="stix",
        valid_from=first,
        created=first,
        modified=updated,
        created_by_ref=identity,
        confidence=round(finding.score * 100),
        revoked=False,
        labels=[finding.technique["id"], *finding.owasp],
        x_querywarden_finding_id=finding.finding_id,
        x_querywarden_severity=finding.severity.label,
        x_querywarden_status=finding.status,
        x_querywarden_model=finding.model,
        x_querywarden_actor=finding.actor or "",
        x_querywarden_detectors=list(finding.detectors),
        x_querywarden_principals_omitted=max(0, len(finding.principals) - MAX_PRINCIPALS),
        allow_custom=True,
    )
    sighting = stix2.Sighting(
        id=_id("sighting", finding.finding_id),
        sighting_of_ref=indicator.id,
        where_sighted_refs=[identity],
        first_seen=first,
        last_seen=updated,
        count=min(999_999_999, max(1, finding.queries_at_detection)),
        created=first,
        modified=updated,
        created_by_ref=identity,
    )
    relationship = stix2.Relationship(
        id=_id("relationship", f"{finding.finding_id}:indicates"),
        relationship_type="indicates",
        source_ref=indicator.id,
        target_ref=_id("attack-pattern", f"atlas:{finding.technique['id']}"),
        created=first,
        modified=updated,
        created_by_ref=identity,
    )
    return [indicator, sighting, relationship]


def findings_bundle(findings: Iterable[Finding], *, deployment: str = "querywarden") -> stix2.Bundle:
    """A STIX 2.1 bundle of the findings (the latest revision of each finding id wins)."""
    latest: dict[str, Finding] = {}
    for f in findings:
        if f.finding_id not in latest or f.revision >= latest[f.finding_id].revision:
            latest[f.finding_id] = f
    earliest = min((f.first_seen_ts for f in latest.values()), default=0.0)
    identity = _identity(deployment, _dt(earliest))
    objects: list[Any] = [identity]
    techniques: dict[str, dict[str, str]] = {}
    for f in latest.values():
        techniques.setdefault(f.technique["id"], f.technique)
        objects.extend(finding_objects(f, identity.id))
    objects[1:1] = [_attack_pattern(t, _dt(earliest), identity.id) for t in techniques.values()]
    return stix2.Bundle(
        objects=objects,
        id=_id("bundle", "|".join(sorted(latest)) + querywarden.__version__),
        allow_custom=True,
    )


__all__ = ["finding_objects", "findings_bundle", "principal_pattern"]
