"""Wiring exports and intel matches into the edges that run the engine (``serve``, ``replay``).

The pipeline's ``on_step`` hook runs on the engine worker thread after each interaction
that produced something. It hands finding events to the dispatcher (which never blocks)
and the intel detector's signals to the intel registry (so the console lists matches).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from querywarden.core.engine import Step
from querywarden.core.records import Finding
from querywarden.exports.dispatcher import Dispatcher
from querywarden.exports.settings import load_dispatcher
from querywarden.findings_out import FindingsWriter

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class HasOnStep(Protocol):
    on_step: Callable[[Step], None] | None


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


__all__ = ["ExportingWriter", "attach_exports", "intel_registry"]
