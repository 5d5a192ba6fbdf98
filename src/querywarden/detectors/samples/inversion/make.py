"""Writes the inversion detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 200 held-out digits as the profile's benign reference.

positive: 30 customers scoring a few natural digits each, and ``inverter`` running MI-Face
through the black box: a finite-difference gradient (the centre, then +-h along each of
the 64 pixels) and a step, twice. ``expect.toml`` wants medium within one gradient (129).
negative: the same customers, a photo app sending 40 mildly edited copies of one digit
(one-pixel shifts, brightness, a cropped border), each sent twice, and a batch job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, customers, digits_victim, held_out, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    return record(rid, ts, principal, "digits", rounded(x, 4), {"probabilities": rounded(p, 6)})


def _miface(model: LogisticRegression, target: int, steps: int) -> np.ndarray:
    c = np.zeros(64)
    rows = []
    for _ in range(steps):
        probes = [c]
        for j in range(64):
            e = np.zeros(64)
            e[j] = 0.16
            probes += [np.clip(c + e, 0, 16), np.clip(c - e, 0, 16)]
        p = model.predict_proba(np.array(probes))[:, target]
        rows += probes
        g = (p[1::2] - p[2::2]) / 0.32
        c = np.clip(c + 1.6 * g / max(float(np.linalg.norm(g)), 1e-12), 0, 16)
    return np.array(rows)


def main() -> None:
    model, x, _ = digits_victim()
    pool = held_out(HERE, x, 200)
    rng = np.random.default_rng(11)
    crowd = customers(rng, pool)
    attack = [(T0 + 600 + i * 0.2, "inverter", row) for i, row in enumerate(_miface(model, 3, 2))]
    photo = pool[7].reshape(8, 8)
    edits = []
    for i in range(40):
        img = np.roll(photo, (i % 3) - 1, axis=1) if i % 2 else photo * (0.9 + 0.005 * i)
        if i % 5 == 0:
            img = img.copy()
            img[0, :] = 0.0
        for retry in range(2):
            edits.append((T0 + 300 + i * 20.0 + retry * 2.0, "photo-app", np.clip(img, 0, 16).ravel()))
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(150)]
    write_samples(HERE, (("positive", crowd + attack), ("negative", crowd + edits + batch)), _line, model.predict_proba)


if __name__ == "__main__":
    main()
