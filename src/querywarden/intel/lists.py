"""Plain indicator lists: one IP address, CIDR network or principal per line.

    # known scraping infrastructure, from the abuse desk
    203.0.113.7
    198.51.100.0/24   # a whole hosting range
    2001:db8::/32

``#`` starts a comment, blank lines are skipped. An ``ip`` list holds addresses and
networks; a ``key`` list holds principals (API key ids, user ids, accounts) verbatim. A
bad line is an ``IntelError`` at ``file:line``: an intel feed that silently lost entries
is worse than one that refuses to load.
"""

from __future__ import annotations

from pathlib import Path

from querywarden.core.records import Severity
from querywarden.errors import IntelError
from querywarden.intel.indicators import Indicator, normalize_network

LIST_KINDS = {"ip": "network", "key": "principal"}
MAX_LINE = 4096


def read_list(path: Path, *, kind: str, feed: str, severity: Severity, confidence: float = 0.8) -> list[Indicator]:
    """Indicators from a plain list file; ``kind`` is ``ip`` or ``key``."""
    if kind not in LIST_KINDS:
        raise IntelError(f"unknown list kind {kind!r}; allowed: {', '.join(LIST_KINDS)}", source=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IntelError(f"cannot read list: {exc}", source=str(path)) from None
    out = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        value = raw.split("#", 1)[0].strip()
        if not value:
            continue
        if len(value) > MAX_LINE or any(ch.isspace() for ch in value):
            raise IntelError(f"one {kind} per line, got {value[:60]!r}", source=str(path), line=lineno)
        if kind == "ip":
            try:
                value = normalize_network(value)
            except ValueError as exc:
                raise IntelError(str(exc), source=str(path), line=lineno) from None
        out.append(
            Indicator(
                kind=LIST_KINDS[kind],
                value=value,
                feed=feed,
                ref=f"{path.name}:{lineno}",
                severity=severity,
                confidence=confidence,
            )
        )
    return out


__all__ = ["LIST_KINDS", "read_list"]
