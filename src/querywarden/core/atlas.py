"""MITRE ATLAS techniques and OWASP ids that QueryWarden reports.

Ids are checked against MITRE ATLAS data v5.6. A detector names a technique by id; an
unknown id is a programming error caught at import time, not a free string in a finding.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Technique:
    id: str
    name: str
    owasp: tuple[str, ...]

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


_TECHNIQUES = (
    Technique("AML.T0024.000", "Infer Training Data Membership", ("ML04:2023",)),
    Technique("AML.T0024.001", "Invert AI Model", ("ML03:2023",)),
    Technique("AML.T0024.002", "Extract AI Model", ("ML05:2023", "LLM10:2025", "LLM06:2026")),
    Technique("AML.T0040", "AI Model Inference API Access", ()),
    Technique("AML.T0043", "Craft Adversarial Data", ("ML01:2023",)),
    Technique("AML.T0057", "LLM Data Leakage", ("LLM02:2025",)),
    Technique("AML.T0056", "Extract LLM System Prompt", ("LLM07:2025",)),
    Technique("AML.T0034.000", "Cost Harvesting: Excessive Queries", ("LLM10:2025", "LLM06:2026")),
)

TECHNIQUES: dict[str, Technique] = {t.id: t for t in _TECHNIQUES}

MEMBERSHIP = "AML.T0024.000"
INVERSION = "AML.T0024.001"
EXTRACTION = "AML.T0024.002"
API_ACCESS = "AML.T0040"
ADVERSARIAL = "AML.T0043"
LLM_LEAKAGE = "AML.T0057"
SYSTEM_PROMPT = "AML.T0056"
EXCESSIVE_QUERIES = "AML.T0034.000"


def technique(technique_id: str) -> Technique:
    """Return the technique for ``technique_id`` or raise ``KeyError`` naming the valid ids."""
    try:
        return TECHNIQUES[technique_id]
    except KeyError:
        raise KeyError(f"unknown ATLAS technique {technique_id!r}; known: {sorted(TECHNIQUES)}") from None
