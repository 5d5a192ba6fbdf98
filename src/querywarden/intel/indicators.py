"""Threat-intelligence indicators as QueryWarden uses them, whatever feed they came from.

An indicator says "traffic with this value is suspect": a client address or network
(``network``), a principal (``principal``: an API key id, user id or account, as STIX
``user-account`` names it) or a query fingerprint (``fingerprint``, see
``querywarden.intel.fingerprint``). Validity is in epoch seconds and is checked against
the interaction's own ``ts``, so replaying old traffic matches the intel that held then.

Indicators are plain data (msgspec structs of builtins), so a feed can be written inline
in the config, pickled with a detector, and shown by the console and API as it is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import msgspec

from querywarden.core.records import Severity

KINDS = ("network", "principal", "fingerprint")


class Indicator(msgspec.Struct, frozen=True, kw_only=True):
    """One value to watch for.

    ``ref`` names the indicator where it came from: a STIX id, or ``file:line`` for a plain
    list, so an analyst can go back to the source. ``confidence`` (0-1) becomes the
    signal's score.
    """

    kind: str
    value: str
    feed: str
    ref: str
    severity: Severity = Severity.LOW
    confidence: float = 0.5
    name: str = ""
    algorithm: str | None = None
    """For a fingerprint: ``qw-row-v1`` or ``qw-text-v1``; None matches either."""
    valid_from: float | None = None
    valid_until: float | None = None

    def valid_at(self, ts: float) -> bool:
        if self.valid_from is not None and ts < self.valid_from:
            return False
        return self.valid_until is None or ts < self.valid_until


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """An interaction that matched an indicator, as the console and API list it."""

    ts: float
    principal: str
    model: str
    interaction_id: str
    indicator: str
    """The indicator's ``ref`` (STIX id or file:line)."""
    feed: str
    on: str
    """What matched: ``client.ip``, ``principal`` or ``fingerprint``."""
    value: str
    severity: Severity
    name: str = ""


def normalize_network(value: str) -> str:
    """``203.0.113.7`` -> ``203.0.113.7/32``; a CIDR with host bits set is refused (a typo, usually)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR network: {exc}") from None


def indicator_from_dict(raw: Mapping[str, Any], *, feed: str = "inline", ref: str | None = None) -> Indicator:
    """An indicator from the inline form ``{kind = "network", value = "203.0.113.0/24", severity = "medium"}``.

    Raises ``ValueError`` naming what is wrong (the config loader locates it).
    """
    allowed = ("kind", "value", "severity", "confidence", "name", "algorithm", "valid_from", "valid_until", "feed")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"unknown indicator keys {unknown}; allowed: {', '.join(allowed)}")
    kind, value = raw.get("kind"), raw.get("value")
    if kind not in KINDS:
        raise ValueError(f"indicator kind {kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an indicator needs a non-empty string value")
    value = normalize_network(value) if kind == "network" else value.strip()
    if kind == "fingerprint":
        value = value.lower()
    confidence = raw.get("confidence", 0.5)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise ValueError(f"confidence must be a number from 0 to 1, not {confidence!r}")
    return Indicator(
        kind=kind,
        value=value,
        feed=str(raw.get("feed", feed)),
        ref=ref or f"{feed}:{kind}:{value}",
        severity=Severity.parse(str(raw.get("severity", "low"))),
        confidence=float(confidence),
        name=str(raw.get("name", "")),
        algorithm=raw.get("algorithm"),
        valid_from=_epoch(raw.get("valid_from")),
        valid_until=_epoch(raw.get("valid_until")),
    )


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"validity must be epoch seconds, not {value!r}")


__all__ = ["KINDS", "Indicator", "Match", "indicator_from_dict", "normalize_network"]
