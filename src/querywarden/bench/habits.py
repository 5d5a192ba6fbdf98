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
  API key per version (both keys send the same records within a second);
- ``sensor-feed``: a monitoring feed scoring one entity every few seconds for hours, its
  measured values drifting slowly (images: one camera's frames, with sensor noise and
  slowly drifting brightness), so consecutive inputs are near-identical;
- ``sensitivity``: a sensitivity report that sweeps one feature of a handful of records
  over 5-10 values of its natural range, once (images: brightness levels of a few photos);
- ``app-forward``: one API key of a consumer app forwarding thousands of its end users'
  natural records, single rows arriving through the app's day;
- ``jitter``: a customer who re-submits records with jittered numeric fields (rounding,
  unit-conversion noise; images: re-encoding noise on a few pixels).

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

HABITS = ("portfolio", "probe", "synthetic-csv", "ab-test", "sensor-feed", "sensitivity", "app-forward", "jitter")


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


def numeric_columns(b: Builder) -> np.ndarray:
    """Columns that hold a measured quantity: a field of its own with more than ten values in the pool."""
    singles = [int(g[0]) for g in b.fields if g.shape[0] == 1]
    return np.asarray([j for j in singles if np.unique(b.pool[:, j]).shape[0] > 10], dtype=np.int64)


def sensor_feed(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), "Go-http-client/2.0"
    x = b.records(1)[0].copy()
    n = int(b.rng.integers(500, 1501))
    cols = numeric_columns(b)
    spread = b.pool.std(axis=0)
    level = 1.0
    t = b.session_starts(1)[0]
    out: list[Request] = []
    for _ in range(n):
        if b.is_image:
            level = float(np.clip(level + b.rng.normal(0.0, 0.003), 0.8, 1.2))
            noise = np.where(b.rng.random(x.shape[0]) < 0.05, b.rng.choice([-1.0, 1.0], size=x.shape[0]), 0.0)
            reading = np.clip(np.round(x * level + noise), b.lo, b.hi)
        else:
            # a slow random walk of every measured value: a hundredth of its natural spread a step
            x[cols] = np.clip(
                x[cols] + b.rng.normal(0.0, 0.01, size=cols.shape[0]) * spread[cols], b.lo[cols], b.hi[cols]
            )
            reading = x
        out.append(b.one(b.request_id(), t, principal, ip, ua, np.asarray(reading, dtype=np.float64)))
        t += float(b.rng.uniform(4.0, 12.0))
    return out


def sensitivity(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), "python-requests/2.32.3"
    rows = b.records(int(b.rng.integers(3, 7)))
    k = int(b.rng.integers(5, 11))
    t = b.session_starts(1)[0]
    out: list[Request] = []
    if b.is_image:
        for photo in rows:
            for level in np.linspace(0.6, 1.4, k):
                edited = np.clip(np.round(photo * level), b.lo, b.hi)
                out.append(b.one(b.request_id(), t, principal, ip, ua, np.asarray(edited, dtype=np.float64)))
                t += float(b.rng.uniform(0.2, 1.0))
        return out
    cols = numeric_columns(b)
    if cols.shape[0] == 0:
        cols = np.asarray([int(np.argmax([np.unique(b.pool[:, j]).shape[0] for j in range(b.pool.shape[1])]))])
    j = int(b.rng.choice(cols))
    # the grid a report tool draws: quantiles of the feature's natural values
    grid = np.unique(np.quantile(b.pool[:, j], np.linspace(0.05, 0.95, k), method="nearest"))
    for row in rows:
        for value in grid:
            x = row.copy()
            x[j] = value
            out.append(b.one(b.request_id(), t, principal, ip, ua, x))
            t += float(b.rng.uniform(0.2, 1.0))
    return out


def app_forward(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), str(b.rng.choice(("okhttp/4.12.0", "node-fetch/3.3.2", "Java-http-client/21.0.5")))
    n = int(b.rng.integers(1000, 3001))
    rows = b.records(n)
    tz = int(b.rng.integers(-8, 10))
    days = b.rng.integers(0, b.sizes.days, size=n)
    hours = np.clip(b.rng.normal(14.0, 3.5, size=n), 6.0, 23.5) - tz  # the app's users' day
    end = START_TS + b.sizes.days * DAY - 60.0
    ts = np.sort(np.clip(START_TS + days * DAY + hours * 3600.0, START_TS, end))
    return [b.one(b.request_id(), float(t), principal, ip, ua, rows[i]) for i, t in enumerate(ts)]


def jittered(b: Builder, row: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``row`` as another system re-sends it: measured values rounded or converted with float noise."""
    x = row.copy()
    if b.is_image:
        flip = b.rng.random(x.shape[0]) < 0.03
        x[flip] += b.rng.choice([-1.0, 1.0], size=int(np.count_nonzero(flip)))
        return np.asarray(np.clip(x, b.lo, b.hi), dtype=np.float64)
    v = x[cols]
    if b.rng.random() < 0.5:
        magnitude = np.floor(np.log10(np.where(v != 0, np.abs(v), 1.0)))
        scale = 10.0 ** (magnitude - 2)  # three significant digits
        v = np.round(v / scale) * scale
    else:
        v = v * (1.0 + b.rng.normal(0.0, 0.001, size=v.shape[0]))
    x[cols] = v
    return np.asarray(np.clip(x, b.lo, b.hi), dtype=np.float64)


def jitter(b: Builder, principal: str) -> list[Request]:
    ip, ua = public_ip(b.rng), str(b.rng.choice(CLIENT_AGENTS))
    cols = numeric_columns(b)
    n = int(np.clip(round(b.rng.lognormal(np.log(30.0), 0.8)), 5, 300))
    rows = b.records(n)
    sessions = np.array_split(np.arange(n), int(b.rng.integers(1, 4)))
    out: list[Request] = []
    for start, part in zip(b.session_starts(len(sessions)), sessions, strict=True):
        t = start
        for i in part:
            out.append(b.one(b.request_id(), t, principal, ip, ua, rows[i]))
            for _ in range(int(b.rng.integers(1, 4))):
                t += float(b.rng.uniform(2.0, 120.0))
                out.append(b.one(b.request_id(), t, principal, ip, ua, jittered(b, rows[i], cols)))
            t += float(b.rng.uniform(4.0, 60.0))
    return out


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
    # added later: drawn after the first four, so their customers stay the same
    later = (
        ("sensor-feed", sensor_feed),
        ("sensitivity", sensitivity),
        ("app-forward", app_forward),
        ("jitter", jitter),
    )
    for habit, make in later:
        for _ in range(per_habit):
            p = b.key()
            out.append(BenignPrincipal(p, habit, make(b, p)))
    return out
