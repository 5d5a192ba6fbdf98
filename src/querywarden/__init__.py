"""QueryWarden: catches model inversion, extraction, membership inference and
training-data extraction in the queries a model's API receives."""

from __future__ import annotations

__version__ = "0.1.0"
