"""Wiring exports and intel matches into the edges that run the engine (``serve``, ``replay``).

The pipeline's ``on_step`` hook runs on the engine worker thread after each interaction
that produced something. It hands finding events to the dispatcher (which never blocks)
and the intel detector's signals to the intel registry (so the console lists matches).
With ``[intel] refresh`` set, an ``IntelRefresher`` thread reloads the feeds (a TAXII
collection grows) and swaps them into the running detectors.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from querywarden.core.engine import Engine, Step
from querywarden.core.records import Finding
from querywarden.errors import QueryWardenError
from querywarden.exports.dispatcher import Dispatcher
from querywarden.exports.settings import load_dispatcher
from querywarden.findings_out import FindingsWriter

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("querywarden.intel")


class HasOnStep(Protocol):
    on_step: Callable[[Step], None] | None


class IntelRefresher:
    """Reloads the intel feeds every ``registry.refresh`` seconds, in its own thread, and
    hands the new feed to the engine's ``intel`` detectors (and to the specs that build
    them for models met later). A failed reload is logged and the loaded feed stays."""

    def __init__(self, registry: Any, engine: Engine) -> None:
        self.registry = registry
        self.engine = engine
        self.reloads = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="querywarden-intel-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.registry.refresh):
            self.run_once()

    def run_once(self) -> bool:
        try:
            feed = self.registry.reload()
        except QueryWardenError as exc:
            self.failures += 1
            log.warning("intel feeds not reloaded, keeping the loaded ones: %s", exc.located())
            return False
        apply_feed(self.engine, feed)
        self.reloads += 1
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


def apply_feed(engine: Engine, feed: Any) -> None:
    """Give every ``intel`` detector of ``engine`` the new feed; their learned state stays."""
    engine.specs = tuple(
        replace(s, params={**s.params, "feed": feed}) if s.name == "intel" else s for s in engine.specs
    )
    for model in tuple(engine.profiles):
        for det in engine.detectors(model):
            set_feed = getattr(det, "set_feed", None)
            if det.name == "intel" and set_feed is not None:
                set_feed(feed)  # one attribute swap: the engine worker sees the old or the new feed


def intel_registry(config_path: str | Path | None) -> Any:
    """The config's intel registry, or None (no feeds, or the intel package is not importable)."""
    try:
        intel = importlib.import_module("querywarden.intel")
        return intel.load_registry(config_path)
    except (ImportError, AttributeError):
        return None


def attach_exports(
    pipeline: HasOnStep, metrics: CollectorRegistry | None, config_path: str | Path | None
) -> Dispatcher:
    """Send the pipeline's findings to the config's ``[[exports]]`` and its intel matches to the
    registry; expose the export counters on ``metrics``. Returns the dispatcher to close."""
    dispatcher = load_dispatcher(config_path)
    registry = intel_registry(config_path)
    if dispatcher and metrics is not None:
        metrics.register(dispatcher.collector())
    if not dispatcher and registry is None:
        return dispatcher
    previous = pipeline.on_step

    def on_step(step: Step) -> None:
        if step.findings and dispatcher:
            dispatcher.submit(step.findings)
        if registry is not None and step.signals:
            registry.observe(step.signals)
        if previous is not None:
            previous(step)

    pipeline.on_step = on_step
    engine = getattr(pipeline, "engine", None)
    if registry is not None and registry.refresh > 0 and isinstance(engine, Engine):
        refresher = IntelRefresher(registry, engine)
        refresher.start()
        dispatcher.close_with(refresher.close)
    return dispatcher


class ExportingWriter(FindingsWriter):
    """A findings writer that also hands each finding to a dispatcher (``replay --export``).

    A replay produces findings far faster than receivers take them, so it waits up to
    ``wait`` seconds per finding for queue room instead of dropping.
    """

    def __init__(self, stream: IO[bytes], fmt: str, dispatcher: Dispatcher, *, wait: float = 30.0) -> None:
        super().__init__(stream, fmt)
        self.dispatcher = dispatcher
        self.wait = wait

    def write(self, finding: Finding) -> None:
        super().write(finding)
        self.dispatcher.submit((finding,), wait=self.wait)


__all__ = ["ExportingWriter", "IntelRefresher", "apply_feed", "attach_exports", "intel_registry"]
