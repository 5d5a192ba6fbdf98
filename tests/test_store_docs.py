"""docs/store.md describes every public method of the store and every retention mode."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from querywarden.store import Retention, Store

DOC = (Path(__file__).resolve().parents[1] / "docs" / "store.md").read_text(encoding="utf-8")
PUBLIC = sorted(n for n, v in inspect.getmembers(Store, inspect.isfunction) if not n.startswith("_"))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_method_is_documented(name: str) -> None:
    assert f"`{name}(" in DOC or f"`{name}`" in DOC or f", `{name}" in DOC, f"docs/store.md does not mention {name}"


@pytest.mark.parametrize("mode", [r.value for r in Retention])
def test_every_retention_mode_is_documented(mode: str) -> None:
    assert f"| `{mode}`" in DOC
