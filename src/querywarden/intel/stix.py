"""STIX 2.1 indicators in: bundles (from a file or a TAXII collection) become ``Indicator`` s.

Each ``indicator`` object is validated with the ``stix2`` library (which also checks its
pattern's grammar), then its pattern is read into lookups QueryWarden can do in O(1):

- ``[ipv4-addr:value = '203.0.113.7']``, ``[ipv4-addr:value ISSUBSET '198.51.100.0/24']``
  (and the same on ``ipv6-addr``): a client address or network;
- ``[user-account:user_id = 'key_8f2c']`` or ``account_login``: a principal;
- ``[x-querywarden-fingerprint:value = '9f86d081884c7d65']``, optionally ``AND
  x-querywarden-fingerprint:algorithm = 'qw-text-v1'``: a query fingerprint.

Comparisons joined by OR, inside one observation or across several, become one lookup
each. Anything else (AND across properties, negation, FOLLOWEDBY, WITHIN, other object
types, non-STIX pattern languages) is not something a per-request lookup can decide: such
an indicator is skipped with its id and the reason, reported with the feed, never silently
dropped. Revoked indicators are skipped too. ``confidence`` (0-100) becomes the match's
score (0.5 when absent); ``valid_from``/``valid_until`` bound when it matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import stix2
import stix2.exceptions
from stix2 import patterns as sp
from stix2.pattern_visitor import create_pattern_object

from querywarden.core.records import Severity
from querywarden.errors import IntelError
from querywarden.intel.fingerprint import ALGORITHMS, SCO_TYPE
from querywarden.intel.indicators import Indicator, normalize_network

PATHS = {
    ("ipv4-addr", "value"): "network",
    ("ipv6-addr", "value"): "network",
    ("user-account", "user_id"): "principal",
    ("user-account", "account_login"): "principal",
    (SCO_TYPE, "value"): "fingerprint",
}
"""The (object type, property) pairs a pattern may test, and the indicator kind each makes."""


class Unsupported(ValueError):
    """A pattern a per-request lookup cannot decide."""


@dataclass(slots=True)
class StixImport:
    indicators: list[Indicator] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """``<stix id>: <reason>`` for each indicator object not imported."""
    objects: int = 0


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _comparison(node: Any) -> tuple[str, str, str]:
    """(object type, property, value) of one supported comparison."""
    if not isinstance(node, sp.EqualityComparisonExpression | sp.IsSubsetComparisonExpression) or node.negated:
        raise Unsupported(f"comparison {node} is not '=' or ISSUBSET")
    path = node.lhs
    props = [getattr(c, "property_name", None) for c in path.property_path]
    if len(props) != 1 or not isinstance(props[0], str):
        raise Unsupported(f"object path {path} is not a top-level property")
    key = (path.object_type_name, props[0])
    if key not in PATHS and key != (SCO_TYPE, "algorithm"):
        raise Unsupported(f"{key[0]}:{key[1]} is not an ipv4-addr, ipv6-addr, user-account or {SCO_TYPE} property")
    if isinstance(node, sp.IsSubsetComparisonExpression) and PATHS.get(key) != "network":
        raise Unsupported("ISSUBSET applies to addresses only")
    value = str(node.rhs.value).replace("\\'", "'").replace("\\\\", "\\")
    return key[0], key[1], value


def _terms(node: Any) -> list[tuple[str, str, str | None]]:
    """(kind, value, algorithm) for each lookup the pattern (sub)tree asks for."""
    if isinstance(node, sp.OrObservationExpression | sp.OrBooleanExpression):
        return [t for child in node.operands for t in _terms(child)]
    if isinstance(node, sp.ObservationExpression):
        return _terms(node.operand)
    if isinstance(node, sp.AndBooleanExpression):
        parts = [_comparison(c) for c in node.operands]
        values = [v for t, p, v in parts if (t, p) == (SCO_TYPE, "value")]
        algorithms = [v for t, p, v in parts if (t, p) == (SCO_TYPE, "algorithm")]
        if len(parts) == 2 and len(values) == 1 and len(algorithms) == 1:
            return [("fingerprint", values[0], algorithms[0])]
        raise Unsupported("AND is only understood between a fingerprint's value and algorithm")
    if hasattr(node, "lhs") and hasattr(node, "operator"):  # any comparison; _comparison keeps = and ISSUBSET
        obj, prop, value = _comparison(node)
        if (obj, prop) == (SCO_TYPE, "algorithm"):
            raise Unsupported("a fingerprint algorithm alone matches every query")
        return [(PATHS[(obj, prop)], value, None)]
    raise Unsupported(f"{type(node).__name__} (FOLLOWEDBY, WITHIN, REPEATS, AND across observations) needs history")


def pattern_terms(pattern: str) -> list[tuple[str, str, str | None]]:
    """The lookups a STIX pattern asks for; ``Unsupported`` when it is not a plain OR of them."""
    try:
        tree = create_pattern_object(pattern, version="2.1")
    except Exception as exc:  # the pattern grammar raises several unrelated types
        raise Unsupported(f"pattern does not parse: {exc}") from None
    terms = _terms(tree)
    out = []
    for kind, value, algorithm in terms:
        if kind == "network":
            value = normalize_network(value)
        elif kind == "fingerprint":
            value = value.lower()
            if algorithm is not None and algorithm not in ALGORITHMS:
                raise Unsupported(f"unknown fingerprint algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
        out.append((kind, value, algorithm))
    return out


def import_objects(objects: Iterable[Mapping[str, Any]], *, feed: str, severity: Severity) -> StixImport:
    """Indicators from STIX 2.1 objects (a bundle's ``objects`` or a TAXII page)."""
    result = StixImport()
    for raw in objects:
        result.objects += 1
        if not isinstance(raw, Mapping) or raw.get("type") != "indicator":
            continue
        sid = str(raw.get("id", "indicator--?"))
        try:
            obj = stix2.parse(dict(raw), allow_custom=True, version="2.1")
        except (stix2.exceptions.STIXError, ValueError) as exc:
            result.skipped.append(f"{sid}: invalid STIX indicator: {exc}")
            continue
        if obj.get("revoked", False):
            result.skipped.append(f"{sid}: revoked")
            continue
        if obj.get("pattern_type") != "stix":
            result.skipped.append(f"{sid}: pattern_type {obj.get('pattern_type')!r} is not stix")
            continue
        try:
            terms = pattern_terms(obj["pattern"])
        except (Unsupported, ValueError) as exc:
            result.skipped.append(f"{sid}: {exc}")
            continue
        confidence = obj.get("confidence")
        for kind, value, algorithm in terms:
            result.indicators.append(
                Indicator(
                    kind=kind,
                    value=value,
                    feed=feed,
                    ref=sid,
                    severity=severity,
                    confidence=0.5 if confidence is None else int(confidence) / 100.0,
                    name=str(obj.get("name", "")),
                    algorithm=algorithm,
                    valid_from=_epoch(obj.get("valid_from")),
                    valid_until=_epoch(obj.get("valid_until")),
                )
            )
    return result


def bundle_objects(data: Any, *, source: str) -> list[Mapping[str, Any]]:
    """The objects of a parsed bundle; ``IntelError`` naming ``source`` when it is not one."""
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise IntelError("not a STIX bundle (a JSON object with type 'bundle')", source=source)
    objects = data.get("objects", [])
    if not isinstance(objects, list):
        raise IntelError("bundle 'objects' must be a list", source=source)
    return objects


def read_bundle(path: Path, *, feed: str, severity: Severity) -> StixImport:
    """Indicators from a STIX 2.1 bundle file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IntelError(f"cannot read bundle: {exc}", source=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntelError(f"invalid JSON: {exc.msg}", source=str(path), line=exc.lineno) from None
    return import_objects(bundle_objects(data, source=str(path)), feed=feed, severity=severity)


__all__ = ["PATHS", "StixImport", "Unsupported", "import_objects", "pattern_terms", "read_bundle"]
