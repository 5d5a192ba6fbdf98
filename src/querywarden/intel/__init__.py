"""Threat intelligence: STIX 2.1 / TAXII 2.1 and plain-list feeds, matched per interaction.

Feeds are loaded at the edge (``registry``), indexed for O(1) lookups (``matcher``) and
handed as data to the pure ``intel`` detector (``detector``), whose signals raise the
principal's risk and show on its findings. Findings go back out as STIX (``export``).

The console and REST API read ``load_registry(config_path)``: ``feeds()``,
``indicators()``, ``matches()`` and ``matches_for(principal)``.

Importing this package stays light (the detector is loaded with every engine): the
registry, and with it the config loader, is imported on first use.
"""

from __future__ import annotations

from typing import Any

from querywarden.intel.indicators import Indicator, Match

_LAZY = {"FeedInfo", "IntelRegistry", "load_registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from querywarden.intel import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'querywarden.intel' has no attribute {name!r}")


__all__ = ["FeedInfo", "Indicator", "IntelRegistry", "Match", "load_registry"]
