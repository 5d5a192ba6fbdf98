"""What the sample generators (``<name>/make.py``) share: records, the digits victim, the usual crowd.

Every detector's samples are written by a small script that is run by hand and whose output
is committed. The scripts differ in their attack and their hard negatives; the rest is the
same in all of them: the start time, the JSON line of one interaction, a logistic regression
on scikit-learn's bundled 8x8 digits as the victim, its held-out reference, 30 customers
scoring natural digits, a photo app sending edited copies, and the writing of the sorted
positive and negative files. That part lives here so a change of format is made once.

The scripts import this module after putting the samples folder on ``sys.path``; it is not
part of the installed package's API. Every function draws from the generator it is given in
a fixed order, so regenerated files stay byte-identical to the committed ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

T0 = 1_764_320_000.0
"""The samples' clock starts here (2025-11-28, epoch seconds); time is always ``T0 + offset``."""

Row = tuple[float, Any, np.ndarray]
"""One query before it is answered: when, who (a principal, or whatever the script's line takes), which features."""


def compact(values: Iterable[float]) -> list[float | int]:
    """Features rounded to 3 decimals, whole numbers written without ``.0`` (digits are 0..16)."""
    out: list[float | int] = []
    for v in values:
        r = round(float(v), 3)
        out.append(int(r) if r.is_integer() else r)
    return out


def rounded(values: Iterable[float], digits: int) -> list[float]:
    """Numbers rounded to ``digits`` decimals, as plain floats for JSON."""
    return [round(float(v), digits) for v in values]


def record(
    rid: str,
    ts: float,
    principal: str,
    model: str,
    features: list[Any],
    output: dict[str, Any],
    client: dict[str, str] | None = None,
) -> str:
    """One traffic line (without the newline), keys in the order of DESIGN.md's examples."""
    rec: dict[str, Any] = {"id": rid, "ts": round(ts, 3), "principal": principal, "model": model}
    if client is not None:
        rec["client"] = client
    rec["input"] = {"features": features}
    rec["output"] = output
    return json.dumps(rec, separators=(",", ":"))


def credit(x: np.ndarray) -> dict[str, list[float]]:
    """The answer of the samples' toy credit model: a logistic score of the features' sum, 2 classes."""
    p1 = float(1 / (1 + np.exp(-x.sum())))
    return {"probabilities": [round(1 - p1, 4), round(p1, 4)]}


def digits_victim() -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
    """The digits and a logistic regression fitted on the first 1,000 (deterministic)."""
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    return model, x, y


def held_out(here: Path, x: np.ndarray, n: int) -> np.ndarray:
    """Saves the ``n`` digits after the training rows as ``reference.npy``; returns the rest, the pool."""
    np.save(here / "reference.npy", x[1000 : 1000 + n])
    pool: np.ndarray = x[1000 + n :]
    return pool


def customers(rng: np.random.Generator, pool: np.ndarray, most: int = 9) -> list[Row]:
    """30 customers, each scoring 3 to ``most - 1`` natural digits at random times within the hour."""
    rows: list[Row] = []
    for c in range(30):
        for t in rng.uniform(0, 3600, int(rng.integers(3, most))):
            rows.append((T0 + float(t), f"cust-{c:02d}", pool[int(rng.integers(len(pool)))]))
    return rows


def edits(photo: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A photo and 3 to 6 edited copies of it (a one-pixel shift or none, and a brightness change)."""
    img = photo.reshape(8, 8)
    out = [photo]
    for _ in range(int(rng.integers(3, 7))):
        e = np.roll(img, int(rng.choice([-1, 1])), axis=int(rng.integers(2))) if rng.random() < 0.5 else img
        out.append(np.clip(np.round(e * rng.uniform(0.8, 1.2)), 0, 16).ravel())
    return out


def photo_app(pool: np.ndarray, rng: np.random.Generator) -> list[Row]:
    """``photo-app`` sending 30 photos of the pool, a minute apart, each followed by its edits."""
    rows: list[Row] = []
    for i, j in enumerate(rng.integers(len(pool), size=30)):
        rows += [(T0 + 400 + i * 60.0 + k, "photo-app", e) for k, e in enumerate(edits(pool[int(j)], rng))]
    return rows


def write_samples(
    here: Path,
    sets: Iterable[tuple[str, list[Row]]],
    line: Callable[[str, float, Any, np.ndarray, Any], str],
    answer: Callable[[np.ndarray], Sequence[Any]] | None = None,
) -> None:
    """Writes ``<name>.jsonl`` for each set: rows sorted by time, ids ``pos-0``, ``neg-0``, ...

    ``answer`` maps all the set's features at once to one answer per row (one vectorized
    call to the victim), handed to ``line`` with the row; without it ``line`` gets ``None``.
    """
    for name, rows in sets:
        rows.sort(key=lambda r: r[0])
        answers = answer(np.array([r[2] for r in rows])) if answer is not None else [None] * len(rows)
        text = "\n".join(line(f"{name[:3]}-{i}", ts, who, x, answers[i]) for i, (ts, who, x) in enumerate(rows))
        (here / f"{name}.jsonl").write_text(text + "\n")
