"""Held-out benign habits: customers the detectors were never calibrated on.

The usual workloads (:mod:`querywarden.bench.benign`) are split into a calibration half and
a scored half. These habits are only ever scored: they stand for the customers a deployment
meets that nobody thought of when the thresholds were set, and each is hard in its own way.

- ``portfolio``: re-scores the same small portfolio (5-30 records) every day of the
  timeline, at about the same hour, as one batch or record by record;
- ``probe``: a monitoring probe sending one fixed record every minute for two days;
- ``synthetic-csv``: a data scientist uploads a CSV of synthetic test records, each column
  drawn from its own natural values and rounded to two significant digits (images: real
  images posterised to a few grey levels), in batches of 100, once or twice;
- ``ab-test``: an A/B harness sending every record to two model versions at once, with one
  API key per version (both keys send the same records within a second).

Rows come from the victim's held-out benign pool, as for every workload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from querywarden.bench.benign import BATCH_AGENTS, CLIENT_AGENTS, DAY, START_TS, BenignPrincipal, public_ip
from querywarden.bench.scenario import Matrix
from querywarden.bench.traffic import Request

if TYPE_CHECKING:
    from querywarden.bench.benign import Builder

HABITS = ("portfolio", "probe", "synthetic-csv", "ab-test")


def portfolio(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), str(b.rng.choice(BATCH_AGENTS))
    rows = b.records(int(b.rng.integers(5, 31)))
    one_batch = bool(b.rng.random() < 0.5)
    hour = float(b.rng.uniform(6.0, 10.0))
    out: list[Request] = []
    for day in range(b.sizes.days):
        t = START_TS + day * DAY + (hour + float(b.rng.uniform(-0.2, 0.2))) * 3600.0
        if one_batch:
            out.append(Request(b.request_id(), round(t, 3), principal, ip, ua, rows.copy()))
            continue
        for row in rows:
            out.append(b.one(b.request_id(), t, principal, ip, ua, row))
            t += float(b.rng.uniform(0.2, 2.0))
    return out


def probe(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), "Go-http-client/2.0"
    row = b.records(1)[0]
    first = int(b.rng.integers(0, b.sizes.days - 1))
    t = START_TS + first * DAY + float(b.rng.uniform(0.0, 60.0))
    out: list[Request] = []
    for _ in range(2 * 24 * 60):
        out.append(b.one(b.request_id(), t, principal, ip, ua, row))
        t += 60.0 + float(b.rng.uniform(-0.5, 0.5))
    return out


def synthetic_rows(b: Builder, n: int) -> Matrix:
    """``n`` synthetic-looking records: per-column draws rounded to two significant digits (images: posterised)."""
    if b.is_image:
        images = b.records(n)
        levels = 4.0
        step = (b.hi - b.lo) / levels
        return np.asarray(np.clip(b.lo + np.round((images - b.lo) / step) * step, b.lo, b.hi), dtype=np.float64)
    picks = b.rng.integers(0, b.pool.shape[0], size=(n, b.pool.shape[1]))
    x = b.pool[picks, np.arange(b.pool.shape[1])]
    magnitude = np.where(x != 0, np.floor(np.log10(np.abs(np.where(x != 0, x, 1.0)))), 0.0)
    scale = 10.0 ** (magnitude - 1)
    return np.asarray(np.clip(np.round(x / scale) * scale, b.lo, b.hi), dtype=np.float64)


def synthetic_csv(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), "python-requests/2.32.3"
    out: list[Request] = []
    for start in b.session_starts(int(b.rng.integers(1, 3))):
        rows = synthetic_rows(b, int(b.rng.integers(200, 1001)))
        t = start
        for lo in range(0, len(rows), 100):
            out.append(Request(b.request_id(), round(t, 3), principal, ip, ua, rows[lo : lo + 100].copy()))
            t += float(b.rng.uniform(1.0, 5.0))
    return out


def ab_test(b: Builder, first: str, second: str) -> tuple[list[Request], list[Request]]:
    ip, ua = public_ip(b.rng), str(b.rng.choice(CLIENT_AGENTS))
    n = int(np.clip(round(b.rng.lognormal(np.log(60.0), 0.7)), 20, 400))
    rows = b.records(n)
    a: list[Request] = []
    c: list[Request] = []
    sessions = np.array_split(np.arange(n), int(b.rng.integers(1, 5)))
    for start, part in zip(b.session_starts(len(sessions)), sessions, strict=True):
        t = start
        for i in part:
            a.append(b.one(b.request_id(), t, first, ip, ua, rows[i]))
            c.append(b.one(b.request_id(), t + float(b.rng.uniform(0.01, 1.0)), second, ip, ua, rows[i]))
            t += float(b.rng.uniform(1.0, 6.0))
    return a, c


def generate(b: Builder, per_habit: int) -> list[BenignPrincipal]:
    """``per_habit`` customers of every habit (an A/B harness counts its two keys as two)."""
    out: list[BenignPrincipal] = []
    for _ in range(per_habit):
        p = b.key()
        out.append(BenignPrincipal(p, "portfolio", portfolio(b, p)))
    for _ in range(per_habit):
        p = b.key()
        out.append(BenignPrincipal(p, "probe", probe(b, p)))
    for _ in range(per_habit):
        p = b.key()
        out.append(BenignPrincipal(p, "synthetic-csv", synthetic_csv(b, p)))
    for _ in range((per_habit + 1) // 2):
        first, second = b.key(), b.key()
        a, c = ab_test(b, first, second)
        out += [BenignPrincipal(first, "ab-test", a), BenignPrincipal(second, "ab-test", c)]
    return out
