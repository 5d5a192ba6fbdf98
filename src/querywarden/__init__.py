"""QueryWarden: catches model inversion, extraction, membership inference and
training-data extraction in the queries a model's API receives."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from querywarden.sdk import Blocked, Guarded, Throttled, guard

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``guard``, ``Blocked`` and ``Throttled`` load on first use, keeping ``import querywarden`` fast."""
    if name in ("guard", "Blocked", "Throttled", "Guarded"):
        from querywarden import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'querywarden' has no attribute {name!r}")


__all__ = ["Blocked", "Guarded", "Throttled", "__version__", "guard"]
