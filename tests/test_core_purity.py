"""The detection core does no I/O and reads no clock: checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "querywarden"
PURE = sorted([*SRC.joinpath("core").rglob("*.py"), *SRC.joinpath("detectors").glob("*.py")])

FORBIDDEN_MODULES = {
    "socket",
    "sqlite3",
    "sqlalchemy",
    "httpx",
    "requests",
    "urllib",
    "subprocess",
    "asyncio",
    "threading",
    "multiprocessing",
    "time",
    "os",
    "shutil",
    "tempfile",
    "pathlib",
    "logging",
    "starlette",
    "uvicorn",
    "psycopg",
    "random",
}
FORBIDDEN_CALLS = {"open", "input", "print"}
CLOCK_ATTRS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{path.name}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno}: calls {fn.id}()")
            if isinstance(fn, ast.Attribute) and fn.attr in CLOCK_ATTRS and not _is_numpy(fn):
                found.append(f"{path.name}:{node.lineno}: reads a clock via .{fn.attr}()")
    return found


def _is_numpy(fn: ast.Attribute) -> bool:
    root = fn.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id in {"np", "numpy"}


def test_pure_modules_exist() -> None:
    assert len(PURE) >= 8


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_no_io_and_no_clock(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_catches_io(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nimport datetime\nx = datetime.datetime.now()\nopen('f')\n")
    assert len(_violations(bad)) == 3
