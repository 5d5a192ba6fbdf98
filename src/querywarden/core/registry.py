"""The detector registry: name -> detector class.

Built-in detectors and third-party ones register the same way: through the
``querywarden.detectors`` entry-point group, loaded by ``querywarden.plugins``. This
module is the pure half (a dict with checks); it imports nothing that does I/O.
"""

from __future__ import annotations

from querywarden.core.detector import Detector
from querywarden.errors import DetectorError

_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Register a detector class under its ``name``. Usable as a decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise DetectorError(f"{cls!r} is not a Detector subclass")
    if not cls.name:
        raise DetectorError(f"{cls.__qualname__} has no name")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise DetectorError(f"detector name {cls.name!r} is taken by {existing.__module__}.{existing.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Detector]:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none (edges call querywarden.plugins.load_detectors() first)"
        raise DetectorError(f"unknown detector {name!r}; registered: {known}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def all_detectors() -> dict[str, type[Detector]]:
    return dict(_REGISTRY)
