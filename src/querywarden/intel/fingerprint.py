"""The QueryWarden query fingerprint: a short digest of what a query asked, shareable as intel.

A fingerprint lets teams share "this exact probe is an attack" without sharing the probe:
a known inversion seed, a membership-inference candidate row, a system-prompt extraction
prompt. It is 16 lowercase hex digits (64 bits) under one of two algorithms:

- ``qw-row-v1``: numeric input. ``querywarden.core.profile.row_digest`` of the features:
  each multiplied by 10^6 and rounded (so a row that went through JSON and back still
  matches), BLAKE2b-64 of the float64 bytes, that 64-bit integer in 16 hex digits.
- ``qw-text-v1``: text input (the prompt, or the messages' contents joined by newlines).
  BLAKE2b-64 of the UTF-8 of the text after Unicode NFKC normalisation, case folding, and
  collapsing every run of whitespace to one space with the ends stripped, so trivial
  re-spacing or capitalisation does not evade it.

In STIX it is the custom observable ``x-querywarden-fingerprint`` with properties
``algorithm`` and ``value``, matched by patterns such as
``[x-querywarden-fingerprint:value = '9f86d081884c7d65']``; see docs/intel.md.
Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from querywarden.core.profile import row_digest
from querywarden.core.records import Interaction, Vector

ROW = "qw-row-v1"
TEXT = "qw-text-v1"
ALGORITHMS = (ROW, TEXT)
SCO_TYPE = "x-querywarden-fingerprint"

_SPACE = re.compile(r"\s+")


def row_fingerprint(features: Vector) -> str:
    return f"{row_digest(features):016x}"


def text_fingerprint(text: str) -> str:
    normal = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.blake2b(normal.encode("utf-8"), digest_size=8).hexdigest()


def fingerprint(interaction: Interaction) -> tuple[str, str] | None:
    """``(algorithm, value)`` for the interaction's input, or None when it has none."""
    if interaction.features is not None:
        return ROW, row_fingerprint(interaction.features)
    text = interaction.text()
    if text is not None:
        return TEXT, text_fingerprint(text)
    return None


__all__ = ["ALGORITHMS", "ROW", "SCO_TYPE", "TEXT", "fingerprint", "row_fingerprint", "text_fingerprint"]
