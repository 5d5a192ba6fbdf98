"""The docs cover what the console and the API offer: every setting, every route."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from querywarden.api.openapi import document
from querywarden.console.settings import HELP, ConsoleSettings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_console_setting_is_documented_with_its_help() -> None:
    text = (DOCS / "console.md").read_text()
    assert set(HELP) == {f.name for f in fields(ConsoleSettings)}
    for key, help_text in HELP.items():
        assert f"| `{key}` |" in text and help_text in text, key


def test_every_api_route_is_documented() -> None:
    text = (DOCS / "api.md").read_text()
    for path, ops in document()["paths"].items():
        for method in ops:
            assert f"`{method.upper()} {path}`" in text, f"{method.upper()} {path}"


def test_every_screenshot_is_referenced_and_exists() -> None:
    text = (DOCS / "console.md").read_text()
    shots = sorted(p.name for p in (DOCS / "screenshots").glob("*.png"))
    for name in ("login", "overview", "findings", "finding", "principal", "models", "actors", "audit"):
        assert f"{name}.png" in shots, name
    for name in shots:
        assert f"(screenshots/{name})" in text, name
