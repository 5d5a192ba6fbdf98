"""An engine over one model profile (``m``) with the named detectors, for detector tests."""

from __future__ import annotations

from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.plugins import load_detectors


def engine_of(profile: ModelProfile, *names: str) -> Engine:
    load_detectors()
    return Engine({"m": profile}, detectors=[DetectorSpec(name) for name in names])
