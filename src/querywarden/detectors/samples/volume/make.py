"""Writes the volume detector's annotated samples (run by hand; output is committed).

positive: 40 customers at human pace and one principal, ``scraper``, sending 150 queries in
each of three consecutive 10-minute windows; ``expect.toml`` says medium within 320 queries
(the second window over the bar makes it sustained). negative: the same customers plus a
batch job that scores a burst once (one window over the bar is exposure, ``low``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, credit, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, _: None) -> str:
    return record(rid, ts, principal, "credit", rounded(x, 3), credit(x))


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
    write_samples(HERE, (("positive", base + flood), ("negative", base + batch)), _line)


if __name__ == "__main__":
    main()
