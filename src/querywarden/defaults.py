"""The detector set that runs when a config does not name one: every registered detector
with its default parameters."""

from __future__ import annotations

from querywarden.core.engine import DetectorSpec
from querywarden.plugins import load_detectors


def default_detectors() -> list[DetectorSpec]:
    return [DetectorSpec(name) for name in sorted(load_detectors())]
