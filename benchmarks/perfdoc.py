"""Shared by the benchmark scripts: pin to one core and write one section of docs/performance.md."""

from __future__ import annotations

import os
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def pin_one_core() -> str:
    """Run on one CPU, so "per core" figures mean what they say."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def write_section(heading: str, text: str, docs: Path = DOCS) -> None:
    """Replace the ``## heading`` section (or append it), keeping every other section as it is."""
    current = docs.read_text(encoding="utf-8") if docs.exists() else "# Performance\n"
    start = current.find(heading)
    if start < 0:
        new = current.rstrip("\n") + "\n\n" + text
    else:
        nxt = current.find("\n## ", start + len(heading))
        new = current[:start] + text.rstrip("\n") + "\n" + (current[nxt:] if nxt >= 0 else "")
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
