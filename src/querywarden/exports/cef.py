"""A finding as an ArcSight Common Event Format (CEF) line, the form most SIEMs parse from syslog.

    CEF:0|QueryWarden|QueryWarden|<version>|<ATLAS id>|<name>|<0-10>|<key=value ...>

Escaping follows the CEF specification. In the seven header fields a backslash and a pipe
are escaped (``\\\\``, ``\\|``) and line breaks become spaces, since a header cannot span
lines. In extension values a backslash and an equals sign are escaped (``\\\\``, ``\\=``) and
line breaks are written as ``\\n`` / ``\\r``; pipes need no escape there. Principal names and
evidence come from callers and can hold any of these characters, so nothing is written
unescaped.

Standard keys carry what they mean (``rt`` detection time in ms, ``start``/``end`` first
and last seen, ``suser`` the first principal, ``externalId`` the finding id, ``cat`` the
ATLAS id, ``act`` the decision, ``outcome`` the lifecycle status, ``cfp1`` the score).
The rest goes to labelled custom strings: ``cs1`` principals, ``cs2`` OWASP ids, ``cs3``
actor, ``cs4`` model, ``cs5`` detectors, ``cs6`` the triggering interaction id, and
``cn1`` the queries at detection.
"""

from __future__ import annotations

import querywarden
from querywarden.core.records import Finding, Severity

SEVERITY = {Severity.INFO: 1, Severity.LOW: 3, Severity.MEDIUM: 5, Severity.HIGH: 8, Severity.CRITICAL: 10}
"""CEF severity (0-10) of each finding severity."""

MAX_LIST = 50
"""Principals (or detectors) listed in one custom string; an actor can hold thousands."""


def escape_header(value: str) -> str:
    """Escape one CEF header field."""
    out = value.replace("\\", "\\\\").replace("|", "\\|")
    return out.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def escape_value(value: str) -> str:
    """Escape one CEF extension value."""
    out = value.replace("\\", "\\\\").replace("=", "\\=")
    return out.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def _ms(ts: float) -> str:
    return str(round(ts * 1000))


def _listed(items: tuple[str, ...]) -> str:
    shown = ",".join(items[:MAX_LIST])
    return shown + (f",+{len(items) - MAX_LIST} more" if len(items) > MAX_LIST else "")


def extension(finding: Finding) -> list[tuple[str, str]]:
    """The extension as ordered (key, raw value) pairs, before escaping."""
    title = f"{finding.technique['name']} by {finding.actor or ', '.join(finding.principals[:3])} on {finding.model}"
    pairs = [
        ("rt", _ms(finding.detected_ts)),
        ("start", _ms(finding.first_seen_ts)),
        ("end", _ms(finding.updated_ts)),
        ("externalId", finding.finding_id),
        ("cat", finding.technique["id"]),
        ("outcome", finding.status),
        ("act", finding.action),
        ("suser", finding.principals[0] if finding.principals else ""),
        ("msg", title),
        ("cfp1Label", "score"),
        ("cfp1", f"{finding.score:.4f}"),
        ("cn1Label", "queriesAtDetection"),
        ("cn1", str(finding.queries_at_detection)),
        ("cs1Label", "principals"),
        ("cs1", _listed(finding.principals)),
        ("cs2Label", "owasp"),
        ("cs2", ",".join(finding.owasp)),
        ("cs4Label", "model"),
        ("cs4", finding.model),
        ("cs5Label", "detectors"),
        ("cs5", _listed(finding.detectors)),
        ("cs6Label", "triggerId"),
        ("cs6", finding.trigger_id),
    ]
    if finding.actor is not None:
        pairs += [("cs3Label", "actor"), ("cs3", finding.actor)]
    return pairs


def cef_event(finding: Finding) -> str:
    """The CEF line for one finding lifecycle event (no syslog header)."""
    header = [
        "CEF:0",
        escape_header("QueryWarden"),
        escape_header("QueryWarden"),
        escape_header(querywarden.__version__),
        escape_header(finding.technique["id"]),
        escape_header(f"{finding.technique['name']} ({finding.status})"),
        str(SEVERITY[finding.severity]),
    ]
    ext = " ".join(f"{key}={escape_value(value)}" for key, value in extension(finding))
    return "|".join(header) + "|" + ext


__all__ = ["SEVERITY", "cef_event", "escape_header", "escape_value", "extension"]
