"""Writes the volume detector's annotated samples (run by hand; output is committed).

positive: 40 customers at human pace and one principal, ``scraper``, sending 150 queries in
each of three consecutive 10-minute windows; ``expect.toml`` says medium within 320 queries
(the second window over the bar makes it sustained). negative: the same customers plus a
batch job that scores a burst once (one window over the bar is exposure, ``low``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
T0 = 1_764_320_000.0


def _line(rid: str, ts: float, principal: str, x: np.ndarray) -> str:
    p1 = float(1 / (1 + np.exp(-x.sum())))
    rec = {
        "id": rid,
        "ts": round(ts, 3),
        "principal": principal,
        "model": "credit",
        "input": {"features": [round(float(v), 3) for v in x]},
        "output": {"probabilities": [round(1 - p1, 4), round(p1, 4)]},
    }
    return json.dumps(rec, separators=(",", ":"))


def _customers(rng: np.random.Generator) -> list[tuple[float, str, np.ndarray]]:
    rows = []
    for c in range(40):
        for t in rng.uniform(0, 1800, int(rng.integers(2, 9))):
            rows.append((T0 + float(t), f"cust-{c:02d}", rng.normal(0, 1, 3)))
    return rows


def main() -> None:
    rng = np.random.default_rng(7)
    base = _customers(rng)
    flood = [(T0 + w * 600 + i * 3.5, "scraper", rng.normal(0, 1, 3)) for w in range(3) for i in range(150)]
    batch = [(T0 + 900 + i * 1.0, "batch-job", rng.normal(0, 1, 3)) for i in range(150)]
    for name, rows in (("positive", base + flood), ("negative", base + batch)):
        rows.sort(key=lambda r: r[0])
        text = "\n".join(_line(f"{name[:3]}-{i}", ts, p, x) for i, (ts, p, x) in enumerate(rows))
        (HERE / f"{name}.jsonl").write_text(text + "\n")


if __name__ == "__main__":
    main()
