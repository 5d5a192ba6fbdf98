"""Writes the intel detector's annotated samples (run by hand; output is committed).

The feed (in ``expect.toml``) lists the network 203.0.113.0/24 at ``medium``, the
principal ``key_leaked`` at ``low`` and one query fingerprint at ``medium``.

positive: 30 customers from 198.51.100.0/24 and one principal, ``scraper``, calling from
203.0.113.45: it matches the network on its first query. negative: the same customers and
``key_leaked`` from an unlisted address: a listed key is exposure, ``low``, nothing more.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, credit, record, rounded  # noqa: E402


def _line(rid: str, ts: float, principal: str, ip: str, x: np.ndarray) -> str:
    return record(rid, ts, principal, "credit", rounded(x, 3), credit(x), {"ip": ip})


def _write(name: str, odd_one: str, odd_ip: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(300):
        if i % 10 == 5:
            lines.append(_line(f"{name}-{i}", T0 + i * 7.0, odd_one, odd_ip, rng.normal(0, 1, 3)))
        else:
            c = int(rng.integers(30))
            lines.append(
                _line(f"{name}-{i}", T0 + i * 7.0, f"cust-{c:02d}", f"198.51.100.{c + 10}", rng.normal(0, 1, 3))
            )
    (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    _write("positive", "scraper", "203.0.113.45", 1)
    _write("negative", "key_leaked", "192.0.2.200", 2)
