"""Writes the neardup detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit).

positive: 30 customers scoring a few natural digits each, and ``prober`` running a
HopSkipJump-style boundary walk: a few random starting points, then rounds of binary
search between the target digit and the current adversarial point, gradient estimation
around the boundary point and a step towards the target. ``expect.toml`` wants medium
within 120 queries, about 1% of a full HopSkipJump budget on this model.
negative: the same customers; a photo app sending four photos, each with twelve mildly
edited copies (one-pixel shifts, brightness, a cropped border) and each request retried
once; a batch job scoring 200 natural digits and then re-scoring the first 100.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, customers, digits_victim, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    client = {"ip": f"198.51.100.{sum(principal.encode()) % 200 + 1}", "user_agent": "python-httpx/0.28.1"}
    return record(rid, ts, principal, "digits", rounded(x, 3), {"probabilities": rounded(p, 5)}, client)


def boundary_walk(model: LogisticRegression, target: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """HopSkipJump-shaped queries: random starts, then binary search, gradient probes, steps."""
    label = model.predict(target[None])[0]
    rows: list[np.ndarray] = []

    def ask(x: np.ndarray) -> bool:
        rows.append(x)
        return bool(model.predict(x[None])[0] != label)

    adv = rng.uniform(0, 16, 64)
    while not ask(adv):
        adv = rng.uniform(0, 16, 64)
    step = 0
    while len(rows) < n:
        step += 1
        lo, hi = 0.0, 1.0
        while hi - lo > 0.01:
            mid = (lo + hi) / 2
            if ask((1 - mid) * target + mid * adv):
                hi = mid
            else:
                lo = mid
        edge = (1 - hi) * target + hi * adv
        dist = float(np.linalg.norm(edge - target))
        delta = max(dist / 64, 0.05)
        grad = np.zeros(64)
        for _ in range(int(20 * np.sqrt(step))):
            u = rng.normal(size=64)
            u /= np.linalg.norm(u)
            grad += u if ask(np.clip(edge + delta * u, 0, 16)) else -u
        grad /= max(float(np.linalg.norm(grad)), 1e-12)
        size = dist / np.sqrt(step)
        while size > 1e-3 and not ask(np.clip(edge + size * grad, 0, 16)):
            size /= 2
        adv = np.clip(edge + size * grad, 0, 16)
    return np.array(rows[:n])


def edit(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = photo.reshape(8, 8).copy()
    kind = int(rng.integers(3))
    if kind == 0:
        img = np.roll(img, int(rng.choice([-1, 1])), axis=int(rng.integers(2)))
    elif kind == 1:
        img[0 if rng.random() < 0.5 else -1, :] = 0.0
    else:
        img = img * float(rng.uniform(0.8, 1.2))
    return np.clip(np.round(img), 0, 16).ravel()


def main() -> None:
    model, x, _ = digits_victim()
    pool = x[1200:]
    rng = np.random.default_rng(5)
    crowd = customers(rng, pool, most=7)
    walk = boundary_walk(model, pool[3], 280, rng)
    attack = [(T0 + 600 + i * 0.2, "prober", row) for i, row in enumerate(walk)]
    edits = []
    for k in range(4):
        photo = pool[40 + k]
        t = T0 + 300 + k * 600.0
        for i in range(13):
            img = photo if i == 0 else edit(photo, rng)
            for retry in range(2):
                edits.append((t + i * 20.0 + retry * 2.0, "photo-app", img))
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[100 + i]) for i in range(200)]
    batch += [(T0 + 2000 + i * 0.5, "batch-job", pool[100 + i]) for i in range(100)]
    write_samples(HERE, (("positive", crowd + attack), ("negative", crowd + edits + batch)), _line, model.predict_proba)


if __name__ == "__main__":
    main()
