"""A store filled the way production fills it: real sample traffic replayed through the engine.

The detectors' annotated samples hold a model-inversion attack on an 8x8 digits model
(principal ``inverter``) and a scraping burst on a credit model (principal ``scraper``),
each among benign customers. Every default detector runs, and each step is written with
``Store.save_step`` exactly as the gateway's worker does.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from querywarden.config import load_profile
from querywarden.core.engine import Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.traffic import TrafficParser
from querywarden.defaults import default_detectors
from querywarden.store import Store, open_store

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "querywarden" / "detectors" / "samples"
SOURCES = (("inversion", "positive"), ("inversion", "negative"), ("volume", "positive"))


def profiles() -> dict[str, ModelProfile]:
    found = {}
    for name in ("inversion", "volume"):
        path = SAMPLES / name / "expect.toml"
        profile = load_profile(tomllib.loads(path.read_text())["profile"], path=path)
        found[profile.id] = profile
    return found


def fill(store: Store, engine: Engine | None = None) -> Engine:
    """Replay the samples into ``store`` through ``engine`` (a fresh one by default)."""
    engine = engine or Engine(profiles(), detectors=default_detectors())
    for name, kind in SOURCES:
        path = SAMPLES / name / f"{kind}.jsonl"
        parser = TrafficParser(engine.profiles, str(path))
        for lineno, line in enumerate(path.read_bytes().splitlines(), start=1):
            for interaction in parser.parse(line, lineno):
                store.save_step([interaction], engine.process(interaction))
    store.add_findings(engine.flush())
    store.flush()
    return engine


def filled_store(path: Path, retention: str = "sketch") -> tuple[Store, Engine]:
    store = open_store(f"sqlite:///{path}", retention=retention)
    return store, fill(store)


_TEMPLATE: list[Path] = []


def template_db() -> Path:
    """The filled SQLite file, built once per test process and closed so it can be copied."""
    if not _TEMPLATE:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="qw-console-")) / "template.db"
        store = open_store(f"sqlite:///{path}")
        try:
            fill(store)
        finally:
            store.close()
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


def copied_store(directory: Path) -> Store:
    """A private copy of the filled store, so tests that change decisions do not meet each other."""
    import shutil

    target = directory / "qw.db"
    shutil.copyfile(template_db(), target)
    return open_store(f"sqlite:///{target}")


SPLIT_ACTOR = "actor-split-keys"


def add_actor(store: Store, members: tuple[str, ...] = ("scraper", "cust-02", "cust-07")) -> str:
    """Record an actor the way the gateway's worker does (``save_actors``), for the pages
    that show one: whether the samples cluster any principals is the engine's business."""
    store.save_actors({SPLIT_ACTOR: members}, ts=1_764_320_700.0)
    return SPLIT_ACTOR
