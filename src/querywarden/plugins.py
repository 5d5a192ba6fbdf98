"""Loads detectors from the ``querywarden.detectors`` entry-point group.

Built-in detectors are declared in our own pyproject exactly as a third-party package
would declare its own, so both go through this one path.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from querywarden.core import registry
from querywarden.core.detector import Detector
from querywarden.errors import DetectorError

GROUP = "querywarden.detectors"
_loaded = False


def load_detectors() -> dict[str, type[Detector]]:
    """Import and register every advertised detector (once per process)."""
    global _loaded
    if not _loaded:
        for ep in entry_points(group=GROUP):
            try:
                cls = ep.load()
            except (ImportError, AttributeError) as exc:
                raise DetectorError(f"cannot load detector plugin {ep.name!r} ({ep.value}): {exc}") from exc
            if getattr(cls, "name", None) != ep.name:
                raise DetectorError(
                    f"entry point {ep.name!r} points at a detector named {getattr(cls, 'name', None)!r}"
                )
            registry.register(cls)
        _loaded = True
    return registry.all_detectors()
