"""Writes the membership detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit),
answering labels only; ``reference.npy`` holds 200 held-out digits.

positive: 30 customers scoring a few natural digits each, and ``prober`` running label-only
membership inference: for each of 8 candidate records (half of them training rows), the
record and 20 noisy copies, reading how often the label holds. ``expect.toml`` wants medium
within 100 queries (the third candidate's cluster). negative: the same customers, a photo
app sending edited copies of two photos (each sent twice), and a batch job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, customers, digits_victim, held_out, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, label: np.integer) -> str:
    return record(rid, ts, principal, "digits", rounded(x, 3), {"label": int(label)})


def main() -> None:
    model, x, _ = digits_victim()
    pool = held_out(HERE, x, 200)
    rng = np.random.default_rng(12)
    crowd = customers(rng, pool)
    candidates = np.vstack([x[:4], pool[:4]])[rng.permutation(8)]
    probes = []
    for c in candidates:
        probes.append(c)
        probes += list(np.clip(c + rng.normal(0, 0.3, (20, 64)), 0, 16))
    attack = [(T0 + 600 + i * 0.2, "prober", row) for i, row in enumerate(probes)]
    edits = []
    for k, photo in enumerate((pool[7], pool[9])):
        img = photo.reshape(8, 8)
        for i in range(25):
            edit = np.roll(img, (i % 3) - 1, axis=1) if i % 2 else img * (0.9 + 0.01 * (i % 10))
            for retry in range(2):
                ts = T0 + 300 + k * 900 + i * 20.0 + retry * 2.0
                edits.append((ts, "photo-app", np.clip(edit, 0, 16).ravel()))
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(150)]
    write_samples(HERE, (("positive", crowd + attack), ("negative", crowd + edits + batch)), _line, model.predict)


if __name__ == "__main__":
    main()
