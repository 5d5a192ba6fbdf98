"""Personal data and secrets in model outputs: what a leaking assistant gives away.

Each kind is a regular expression for the shape plus, where one exists, the check that
real identifiers pass, so digits that merely look like a card do not count:

- ``email``; ``phone`` (international ``+`` form, a 10-digit number written in groups, or a
  national number with a trunk ``0`` such as ``020 7496 0681`` or ``(0113) 496 0344``);
- ``iban``: country code, check digits and BBAN, valid under ISO 13616 mod-97;
- ``card``: 13-19 digits (spaces or dashes allowed) that pass the Luhn check;
- ``api_key``: the published shapes of common provider keys (OpenAI/Anthropic ``sk-``,
  AWS ``AKIA``, GitHub ``ghp_``/``github_pat_``, Slack ``xox?-``, Google ``AIza``, Stripe
  ``sk_live_``) and PEM private-key headers.

``MAX_MATCH`` bounds how long one match can be, which is what a streaming scanner must
carry across chunk boundaries (see ``text.stream``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MATCH = 128
"""No pattern below matches more than this many characters."""

SECRET_KINDS = frozenset({"api_key", "private_key"})

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,50}\.[A-Za-z]{2,12}\b")),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")),
    ("card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b")),
    (
        "phone",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)(?:\(?\d{1,4}\)?[ .-]?){2,5}\d{2,4}\b"
            r"|(?<!\w)\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b"
            # national form with a trunk 0, as written in the UK and much of Europe: 020 7496 0681
            r"|(?<![\w+])(?:\(0\d{2,4}\)|0\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}\b"
        ),
    ),
    (
        "api_key",
        re.compile(
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,100}|sk_live_[A-Za-z0-9]{20,99}|AKIA[0-9A-Z]{16}"
            r"|ghp_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,90}|xox[abpr]-[A-Za-z0-9-]{10,90}|AIza[0-9A-Za-z_-]{35})"
        ),
    ),
    ("private_key", re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----")),
)
_LETTER_VALUES = {c: str(i) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    value: str


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (payment card numbers do)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """True when ``iban`` (spaces allowed) passes the ISO 13616 mod-97 check."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isalnum():
        return False
    moved = s[4:] + s[:4]
    try:
        number = "".join(_LETTER_VALUES.get(c, c) for c in moved)
        return int(number) % 97 == 1
    except ValueError:
        return False


def scan(text: str) -> list[PiiMatch]:
    """Every PII or secret match in ``text``, left to right, with overlaps resolved to the first kind."""
    found: list[PiiMatch] = []
    taken: list[tuple[int, int]] = []
    digit_run = _DIGIT_RUN.search(text) is not None
    for kind, pattern in _PATTERNS:
        if not _worth_trying(kind, text, digit_run):
            continue
        for m in pattern.finditer(text):
            value = m.group(0)
            if kind == "card" and not _card(value):
                continue
            if kind == "iban" and not iban_ok(value):
                continue
            if kind == "phone" and sum(c.isdigit() for c in value) < 9:
                continue
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            taken.append((s, e))
            found.append(PiiMatch(kind, s, e, value))
    found.sort(key=lambda p: p.start)
    return found


_DIGIT_RUN = re.compile(r"\d[ ().-]?\d[ ().-]?\d[ ().-]?\d")
_KEY_PREFIXES = ("sk-", "sk_live_", "AKIA", "ghp_", "github_pat_", "xox", "AIza", "-----BEGIN")


def _worth_trying(kind: str, text: str, digit_run: bool) -> bool:
    """Cheap tests that rule a kind out before its regular expression runs over the text."""
    if kind == "email":
        return "@" in text
    if kind in ("card", "phone", "iban"):
        return digit_run
    return any(p in text for p in _KEY_PREFIXES)


def _card(value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    return 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1


def redact(text: str, matches: list[PiiMatch] | None = None) -> str:
    """``text`` with every match replaced by ``[REDACTED:<kind>]``."""
    found = scan(text) if matches is None else matches
    if not found:
        return text
    parts: list[str] = []
    at = 0
    for m in found:
        parts.append(text[at : m.start])
        parts.append(f"[REDACTED:{m.kind}]")
        at = m.end
    parts.append(text[at:])
    return "".join(parts)
