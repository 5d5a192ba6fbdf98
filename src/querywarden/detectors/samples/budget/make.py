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

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, customers, digits_victim, held_out, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    return record(rid, ts, principal, "digits", rounded(x, 3), {"probabilities": rounded(p, 6)})


def main() -> None:
    model, x, _ = digits_victim()
    pool = held_out(HERE, x, 200)
    rng = np.random.default_rng(13)
    crowd = customers(rng, pool)
    attack = [(T0 + 600 + i * 2.0, "thief", row) for i, row in enumerate(rng.uniform(0, 16, (200, 64)))]
    write_samples(HERE, (("positive", crowd + attack), ("negative", crowd)), _line, model.predict_proba)


if __name__ == "__main__":
    main()
