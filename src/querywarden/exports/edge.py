"""Wiring exports and intel matches into a running engine's worker (``querywarden serve``).

The pipeline's ``on_step`` hook runs on the engine worker thread after each interaction
that produced something. It hands finding events to the dispatcher (which never blocks)
and the intel detector's signals to the intel registry (so the console lists matches).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from querywarden.core.engine import Step
from querywarden.exports.dispatcher import Dispatcher
from querywarden.exports.settings import load_dispatcher


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


__all__ = ["attach_exports", "intel_registry"]
