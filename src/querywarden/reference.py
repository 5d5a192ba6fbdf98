"""A model's reference sample: benign inputs that detectors compare traffic against.

A reference can be a NumPy ``.npy`` array, a CSV file (one row per input; a header row of
names is allowed), or a traffic file (``.jsonl`` / ``.jsonl.gz``) whose features are taken.
Whatever the form, the result is an ``(n, d)`` float64 array of finite values.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import IO

import numpy as np

from querywarden.core.traffic import TrafficParser
from querywarden.errors import ConfigError, TrafficError

MAX_REFERENCE_ROWS = 200_000
"""A reference is a sample; more rows than this are not read."""


def open_text_or_gzip(path: Path) -> IO[bytes]:
    """A binary stream of ``path``, decompressed when the name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _from_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                rows.append([float(c) for c in row])
            except ValueError:
                if lineno == 1:
                    continue  # a header of feature names
                raise ConfigError("not a number in the reference CSV", source=str(path), line=lineno) from None
            if len(rows) >= MAX_REFERENCE_ROWS:
                break
    if not rows:
        raise ConfigError("the reference CSV holds no rows", source=str(path))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ConfigError(f"the reference CSV rows have different lengths: {sorted(widths)}", source=str(path))
    return np.array(rows, dtype=np.float64)


def _from_traffic(path: Path) -> np.ndarray:
    parser = TrafficParser(None, str(path))
    rows: list[np.ndarray] = []
    with open_text_or_gzip(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                interactions = parser.parse(line, lineno)
            except TrafficError as exc:
                raise ConfigError(exc.reason, source=str(path), line=lineno) from None
            rows.extend(i.features for i in interactions if i.features is not None)
            if len(rows) >= MAX_REFERENCE_ROWS:
                break
    if not rows:
        raise ConfigError("the reference traffic holds no feature inputs", source=str(path))
    try:
        return np.vstack(rows)
    except ValueError:
        raise ConfigError("the reference traffic's feature vectors have different lengths", source=str(path)) from None


def load_reference(path: Path, dim: int | None) -> np.ndarray:
    """Load a reference sample as an ``(n, d)`` array; ``dim`` (when known) must equal ``d``."""
    name = path.name.lower()
    if not path.is_file():
        raise ConfigError("reference file not found", source=str(path))
    if name.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the .npy reference: {exc}", source=str(path)) from None
    elif name.endswith(".csv"):
        arr = _from_csv(path)
    elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson")):
        arr = _from_traffic(path)
    else:
        raise ConfigError("unknown reference format; use .npy, .csv, .jsonl or .jsonl.gz", source=str(path))
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"the reference must be numeric, not {arr.dtype}", source=str(path))
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1) if dim is not None and arr.size == dim else arr.reshape(-1, 1)
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if dim is not None and arr.shape[1] != dim:
        raise ConfigError(f"the reference has {arr.shape[1]} features per row; the model takes {dim}", source=str(path))
    if not np.isfinite(arr).all():
        raise ConfigError("the reference holds NaN or infinite values", source=str(path))
    out: np.ndarray = arr[:MAX_REFERENCE_ROWS]
    return out


__all__ = ["MAX_REFERENCE_ROWS", "load_reference", "open_text_or_gzip"]
