"""A finding as an OCSF Detection Finding (class_uid 2004), the form SIEMs read.

Lifecycle maps to ``activity_id`` (open 1 Create, updated 2 Update, closed 3 Close) and to
``status_id`` (New, In Progress, Resolved). The ATLAS technique goes into
``finding_info.attacks`` with its ATLAS tactic, the evidence of each detector into
``evidences``, and what OCSF has no attribute for (principals, actor, OWASP ids,
``trigger_id``, ``queries_at_detection``, the decision) into ``unmapped`` under its
QueryWarden name. Times are epoch milliseconds, as OCSF requires.
"""

from __future__ import annotations

from typing import Any

import querywarden
from querywarden.core import atlas
from querywarden.core.records import Finding, Severity

CLASS_UID = 2004
CATEGORY_UID = 2
OCSF_VERSION = "1.3.0"

ACTIVITY = {"open": (1, "Create"), "updated": (2, "Update"), "closed": (3, "Close")}
STATUS = {"open": (1, "New"), "updated": (2, "In Progress"), "closed": (4, "Resolved")}
SEVERITY = {
    Severity.INFO: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}

_AI_MODEL_ACCESS = ("AML.TA0000", "AI Model Access")
_EXFILTRATION = ("AML.TA0010", "Exfiltration")
_STAGING = ("AML.TA0001", "AI Attack Staging")
_IMPACT = ("AML.TA0011", "Impact")
TACTIC: dict[str, tuple[str, str]] = {
    atlas.API_ACCESS: _AI_MODEL_ACCESS,
    atlas.MEMBERSHIP: _EXFILTRATION,
    atlas.INVERSION: _EXFILTRATION,
    atlas.EXTRACTION: _EXFILTRATION,
    atlas.LLM_LEAKAGE: _EXFILTRATION,
    atlas.SYSTEM_PROMPT: _EXFILTRATION,
    atlas.ADVERSARIAL: _STAGING,
    atlas.EXCESSIVE_QUERIES: _IMPACT,
}
"""The ATLAS tactic each reported technique serves (ATLAS data v5.6)."""


def _ms(ts: float) -> int:
    return round(ts * 1000)


def attack(technique: dict[str, str]) -> dict[str, Any]:
    """An OCSF ``attack`` object for an ATLAS technique."""
    tid = technique["id"]
    tactic_uid, tactic_name = TACTIC.get(tid, _AI_MODEL_ACCESS)
    out: dict[str, Any] = {
        "technique": {"uid": tid, "name": technique["name"]},
        "tactic": {"uid": tactic_uid, "name": tactic_name},
        "version": "ATLAS v5.6",
    }
    if tid.count(".") == 2:  # a sub-technique: name its parent too
        parent = tid.rsplit(".", 1)[0]
        out["sub_technique"] = {"uid": tid, "name": technique["name"]}
        out["technique"] = {"uid": parent, "name": _PARENT_NAMES.get(parent, parent)}
    return out


_PARENT_NAMES = {"AML.T0024": "Exfiltration via AI Inference API", "AML.T0034": "Cost Harvesting"}


def detection_finding(finding: Finding) -> dict[str, Any]:
    """The OCSF Detection Finding event for one finding lifecycle event."""
    activity_id, activity_name = ACTIVITY[finding.status]
    status_id, status_name = STATUS[finding.status]
    severity_id, severity_name = SEVERITY[finding.severity]
    subject = finding.actor or ", ".join(finding.principals)
    title = f"{finding.technique['name']} by {subject} on {finding.model}"
    evidence = finding.evidence
    return {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity_name}",
        "time": _ms(finding.updated_ts),
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": status_id,
        "status": status_name,
        "confidence_score": round(finding.score * 100),
        "message": title,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "QueryWarden", "vendor_name": "QueryWarden", "version": querywarden.__version__},
            "uid": f"{finding.finding_id}/{finding.revision}",
        },
        "finding_info": {
            "uid": finding.finding_id,
            "title": title,
            "types": [finding.technique["name"]],
            "created_time": _ms(finding.detected_ts),
            "first_seen_time": _ms(finding.first_seen_ts),
            "last_seen_time": _ms(finding.updated_ts),
            "modified_time": _ms(finding.updated_ts),
            "analytic": {"name": ", ".join(finding.detectors), "type_id": 3, "type": "Statistical"},
            "attacks": [attack(finding.technique)],
        },
        "resources": [{"type": "AI Model", "uid": finding.model, "name": finding.model}],
        "evidences": [{"actor": {"user": {"uid": finding.principals[0], "type": "principal"}}, "data": evidence}],
        "unmapped": {
            "principals": list(finding.principals),
            "actor": finding.actor,
            "owasp": list(finding.owasp),
            "score": finding.score,
            "detectors": list(finding.detectors),
            "trigger_id": finding.trigger_id,
            "queries_at_detection": finding.queries_at_detection,
            "action": finding.action,
            "revision": finding.revision,
        },
    }


__all__ = ["CLASS_UID", "TACTIC", "attack", "detection_finding"]
