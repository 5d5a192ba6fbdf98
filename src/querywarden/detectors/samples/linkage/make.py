"""Writes the linkage detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 200 held-out digits as the profile's benign reference.

positive: 15 customers behind one corporate NAT (one IP, one browser) scoring natural
digits, and an equation-solving extraction (uniformly random inputs) split round-robin over
20 keys, each with its own IP and user agent. With ``min_queries = 8`` every key reaches
both behaviour checkpoints, so each pair of keys collects two links (the actor graph's
threshold); ``expect.toml`` wants the first ``info`` link of ``sybil-05`` within 8 queries.
negative: the same customers, plus ten more customers from their own IPs, all natural:
only one weak client link per NAT pair, never enough to merge anyone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, digits_victim, held_out, record, rounded, write_samples  # noqa: E402

NAT_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Edg/131.0.0.0"


def _line(rid: str, ts: float, who: tuple[str, str, str], x: np.ndarray, p: np.ndarray) -> str:
    client = {"ip": who[1], "user_agent": who[2]}
    return record(rid, ts, who[0], "digits", rounded(x, 2), {"probabilities": rounded(p, 4)}, client)


def main() -> None:
    model, x, _ = digits_victim()
    pool = held_out(HERE, x, 200)
    rng = np.random.default_rng(17)
    nat = []
    for c in range(15):
        for t in rng.uniform(0, 3600, int(rng.integers(3, 8))):
            nat.append(
                (T0 + float(t), (f"corp-{c:02d}", "198.51.100.23", NAT_AGENT), pool[int(rng.integers(len(pool)))])
            )
    others = []
    for c in range(10):
        who = (f"cust-{c:02d}", f"203.0.{113 + c}.{10 + c}", "python-httpx/0.28.1")
        for t in rng.uniform(0, 3600, int(rng.integers(10, 20))):
            others.append((T0 + float(t), who, pool[int(rng.integers(len(pool)))]))
    keys = [
        (f"sybil-{k:02d}", f"{23 + 11 * k}.{(k * 37) % 250}.{k + 1}.{k + 9}", f"client/{k}.{k % 3}") for k in range(20)
    ]
    attack = [(T0 + 900 + i * 1.5, keys[i % 20], rng.uniform(0, 16, 64)) for i in range(320)]
    write_samples(HERE, (("positive", nat + attack), ("negative", nat + others)), _line, model.predict_proba)


if __name__ == "__main__":
    main()
