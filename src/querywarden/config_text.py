"""The config file as text: finding a key's line, and editing detector tables in place.

tomllib parses TOML into plain dicts and keeps no positions, yet a good error names the
line. ``locate`` recovers it by scanning the text for table headers and ``key =`` lines.
It understands what people write in config files (``[a.b]``, ``[[a.b]]``, ``key = value``
and quoted names); for anything it cannot place it returns the nearest enclosing table's
line, or None.

``write_detector_params`` lets ``calibrate`` write thresholds back into a config without
losing the user's comments, order and formatting: only the touched ``key = value`` lines
change, missing keys are added at the end of their table, missing tables at the end of
the file.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from querywarden.errors import ConfigError

KeyPath = tuple[str | int, ...]
"""A key's path: table names and keys, with an int for the n-th ``[[array]]`` table."""

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


def _split_dotted(name: str) -> tuple[str, ...]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", name)
    return tuple(p.strip("\"'") for p in parts)


def _unquote(key: str) -> str:
    return key.strip("\"'")


def _tables(text: str) -> list[tuple[KeyPath, int, int]]:
    """Every table header: (its key path with array indexes, first line, last line of its body)."""
    lines = text.splitlines()
    found: list[tuple[KeyPath, int]] = []
    counts: dict[tuple[str, ...], int] = {}
    in_multiline = False
    for no, raw in enumerate(lines, start=1):
        if raw.count('"""') % 2 == 1 or raw.count("'''") % 2 == 1:
            in_multiline = not in_multiline
        if in_multiline:
            continue
        m = _HEADER.match(raw)
        if not m:
            continue
        names = _split_dotted(m.group(2))
        if m.group(1) == "[[":
            idx = counts.get(names, 0)
            counts[names] = idx + 1
            found.append(((*names, idx), no))
        else:
            found.append((names, no))
    out = []
    for i, (path, start) in enumerate(found):
        end = found[i + 1][1] - 1 if i + 1 < len(found) else len(lines)
        out.append((path, start, end))
    return out


def _key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    for no in range(start, end + 1):
        m = _KEY.match(lines[no - 1])
        if m and _unquote(m.group(1)) == key:
            return no
    return None


def locate(text: str, where: KeyPath) -> int | None:
    """The 1-based line where ``where`` is defined in ``text``, as nearly as it can be found."""
    lines = text.splitlines()
    tables = _tables(text)
    best: tuple[int, int] | None = None  # (matched length, line)
    for path, start, end in [((), 0, (tables[0][1] - 1) if tables else len(lines)), *tables]:
        n = len(path)
        if tuple(where[:n]) != path:
            continue
        line = start or None
        if len(where) > n:
            key = where[n]
            found = _key_line(lines, max(start, 1), end, str(key)) if isinstance(key, str) else None
            if found is not None:
                line, n = found, n + 1
        if line is not None and (best is None or n > best[0]):
            best = (n, line)
    return best[1] if best else None


# -- writing detector parameters back -----------------------------------------------------------
def toml_value(value: Any) -> str:
    """A TOML literal for a parameter value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write a non-finite number ({value}) to TOML")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {type(value).__name__} {value!r} to TOML")


def update_detector_params(text: str, params: Mapping[str, Mapping[str, Any]]) -> str:
    """``text`` with each ``[detectors.<name>]`` table holding the given parameter values."""
    lines = text.splitlines()
    for name, values in params.items():
        tables = {path: (start, end) for path, start, end in _tables("\n".join(lines))}
        span = tables.get(("detectors", name))
        if span is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines.append(f"[detectors.{name}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items())
            continue
        start, end = span
        insert_at = start  # after the header, or after the table's last key line
        for no in range(start + 1, end + 1):
            if _KEY.match(lines[no - 1]):
                insert_at = no
        added = 0
        for key, value in values.items():
            found = _key_line(lines, start + 1, end + added, key)
            rendered = f"{key} = {toml_value(value)}"
            if found is not None:
                comment = re.search(r"\s+#[^\"']*$", lines[found - 1])
                lines[found - 1] = rendered + (comment.group(0) if comment else "")
            else:
                lines.insert(insert_at + added, rendered)
                added += 1
    return "\n".join(lines) + "\n"


def write_detector_params(path: str | Path, params: Mapping[str, Mapping[str, Any]]) -> None:
    """Update or create ``[detectors.<name>]`` entries in the config at ``path``, keeping the rest.

    The new text is parsed before it is written, so a failed edit never corrupts the file.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8") if p.exists() else ""
    new = update_detector_params(text, params)
    try:
        data = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"editing the detector tables would break the file: {exc}", source=str(p)) from None
    for name, values in params.items():
        written = data.get("detectors", {}).get(name, {})
        for key, value in values.items():
            if written.get(key) != value:
                raise ConfigError(
                    f"could not write detectors.{name}.{key} (it is set in an unusual form)", source=str(p)
                )
    p.write_text(new, encoding="utf-8")


__all__ = ["KeyPath", "locate", "toml_value", "update_detector_params", "write_detector_params"]
