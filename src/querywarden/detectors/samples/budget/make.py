"""Writes the budget ledger's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit),
answering full probability vectors; ``reference.npy`` holds 200 held-out digits.
``expect.toml`` sets ``daily_bits = 20000`` (about 110 full answers a day) so the samples
stay small.

positive: 30 customers scoring a few natural digits each, and ``thief`` sending 200
uniformly random images (equation-solving extraction); the ledger must report its budget
at ``low`` within 200 queries. negative: the same customers only; no one is near the
budget, so nothing is signalled at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
T0 = 1_764_320_000.0


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    rec = {
        "id": rid,
        "ts": round(ts, 3),
        "principal": principal,
        "model": "digits",
        "input": {"features": [round(float(v), 3) for v in x]},
        "output": {"probabilities": [round(float(v), 6) for v in p]},
    }
    return json.dumps(rec, separators=(",", ":"))


def main() -> None:
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    np.save(HERE / "reference.npy", x[1000:1200])
    pool = x[1200:]
    rng = np.random.default_rng(13)
    customers = []
    for c in range(30):
        for t in rng.uniform(0, 3600, int(rng.integers(3, 9))):
            customers.append((T0 + float(t), f"cust-{c:02d}", pool[int(rng.integers(len(pool)))]))
    attack = [(T0 + 600 + i * 2.0, "thief", row) for i, row in enumerate(rng.uniform(0, 16, (200, 64)))]
    for name, rows in (("positive", customers + attack), ("negative", customers)):
        rows.sort(key=lambda r: r[0])
        probs = model.predict_proba(np.array([r[2] for r in rows]))
        text = "\n".join(_line(f"{name[:3]}-{i}", ts, p, xr, probs[i]) for i, (ts, p, xr) in enumerate(rows))
        (HERE / f"{name}.jsonl").write_text(text + "\n")


if __name__ == "__main__":
    main()
