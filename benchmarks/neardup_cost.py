"""Near-duplicate index: per-query cost and memory per stored query, at 10^5 and 10^6 stored.

The index must cost the same per query whatever it holds, and stay under 2 KB per stored
query. This fills one ``neardup`` detector (64-feature 8x8 images, the default parameters
with ``max_queries`` set to the size under test) with that many queries from many
principals, then times single ``update`` calls on a mix of fresh natural-looking queries
and near-duplicates of stored ones (so both the no-match and the match path are in the
median). Memory is the index's arrays divided by the queries they hold, plus the
per-principal state measured with tracemalloc. Results go to stdout and, unless
``--no-docs``, into the "Near-duplicate index" section of docs/performance.md.

    .venv/bin/python benchmarks/neardup_cost.py                   # 10^5 and 10^6
    .venv/bin/python benchmarks/neardup_cost.py --sizes 100000 --no-docs
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime

import numpy as np
from sklearn.datasets import load_digits

from perfdoc import DOCS, pin_one_core, write_section
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Output
from querywarden.detectors.neardup import NearDuplicateDetector

SECTION = "## Near-duplicate index"
BUDGET_US = 25.0
BUDGET_BYTES = 2048
PRINCIPALS = 10_000


def profile() -> ModelProfile:
    return ModelProfile(
        id="digits",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        classes=tuple(str(c) for c in range(10)),
    )


def natural(pool: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Digit images with per-pixel jitter: distinct inputs with a natural pixel distribution."""
    rows = pool[rng.integers(len(pool), size=n)] + rng.normal(0.0, 2.0, size=(n, 64))
    return np.clip(rows, 0.0, 16.0)


def fill(det: NearDuplicateDetector, pool: np.ndarray, n: int, rng: np.random.Generator) -> float:
    """Store ``n`` queries; returns the seconds it took."""
    probs = np.full(10, 0.1)
    out = Output(probabilities=probs)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        chunk = natural(pool, rng, min(50_000, n - done))
        for row in chunk:
            det.update(
                Interaction(
                    id=f"f{done}",
                    ts=1_795_867_200.0 + done * 0.01,
                    principal=f"key_{done % PRINCIPALS:05d}",
                    model="digits",
                    features=row,
                    output=out,
                )
            )
            done += 1
    return time.perf_counter() - t0


def time_queries(
    det: NearDuplicateDetector, pool: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[list[float], list[float]]:
    """Microseconds per ``update`` (wall clock, and CPU time of this thread): half fresh
    queries, half near-duplicates of recent ones."""
    fresh = natural(pool, rng, n)
    walk = np.clip(fresh[0] + np.cumsum(rng.normal(0.0, 0.05, size=(n, 64)), axis=0), 0.0, 16.0)
    out = Output(probabilities=np.full(10, 0.1))
    items = [
        Interaction(
            id=f"t{i}",
            ts=1_795_967_200.0 + i * 0.01,
            principal="walker" if i % 2 else f"key_{i % PRINCIPALS:05d}",
            model="digits",
            features=walk[i] if i % 2 else fresh[i],
            output=out,
        )
        for i in range(n)
    ]
    wall: list[float] = []
    cpu: list[float] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for it in items:
        t, c = clock(), cpu_clock()
        det.update(it)
        cpu.append((cpu_clock() - c) / 1000.0)
        wall.append((clock() - t) / 1000.0)
    return wall, cpu


def principal_bytes(size: int, pool: np.ndarray) -> float:
    """Heap bytes per principal for the detector's per-principal state (index excluded)."""
    det = NearDuplicateDetector(profile=profile(), max_queries=64)
    rng = np.random.default_rng(3)
    rows = natural(pool, rng, size)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, row in enumerate(rows):
        det.update(Interaction(id=f"p{i}", ts=float(i), principal=f"key_{i:07d}", model="digits", features=row))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=20_000, help="timed updates per size")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    pool = load_digits().data.astype(np.float64)
    rows = []
    for size in args.sizes:
        rng = np.random.default_rng(size)
        det = NearDuplicateDetector(profile=profile(), max_queries=size)
        fill_s = fill(det, pool, size, rng)
        wall, cpu = time_queries(det, pool, args.queries, rng)
        per_query = det.index_bytes() / det.stored_queries()
        rows.append(
            (
                size,
                statistics.median(cpu),
                statistics.median(wall),
                per_query,
                det.index_bytes() / 1e6,
                size / fill_s,
            )
        )
        print(
            f"{size:>9,} stored: median {rows[-1][1]:.1f} us CPU, {rows[-1][2]:.1f} us wall, {per_query:,.0f} B/query"
        )
        del det
    per_principal = principal_bytes(20_000, pool)
    worst_us = max(r[1] for r in rows)
    worst_b = max(r[3] for r in rows)
    verdict = "meets" if worst_us <= BUDGET_US and worst_b <= BUDGET_BYTES else "misses"
    shown_args = " ".join(argv if argv is not None else sys.argv[1:])
    cmd = f"python benchmarks/neardup_cost.py {shown_args}".rstrip()
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/{cmd}` "
        f"(Python {platform.python_version()}, {platform.machine()}, {pinned}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs).",
        "",
        "One `neardup` detector with default parameters (64-feature 8x8 images, 32 window hashes per",
        f"fingerprint) filled with that many queries from {PRINCIPALS:,} principals, then "
        f"{args.queries:,} single `update` calls",
        "timed, half fresh queries and half a near-duplicate walk (both the no-match and the match path).",
        "Memory per stored query is the index's fixed arrays (hash table and ring) over the queries held.",
        "CPU time is the thread's own time per call (what one core costs); wall clock also counts time",
        "spent waiting for a CPU on a shared machine.",
        "",
        "| stored queries | median µs/query (CPU) | median µs/query (wall) | bytes/stored query | index MB "
        "| fill rate (queries/s) |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {s:,} | {m:.1f} | {p:.1f} | {b:,.0f} | {mb:,.0f} | {f:,.0f} |" for s, m, p, b, mb, f in rows),
        "",
        f"Per-principal state adds about {per_principal:,.0f} bytes per principal seen (tracemalloc over "
        "20,000 principals), capped by `max_principals`.",
        f"Budget: ≤ {BUDGET_US:.0f} µs per query and ≤ {BUDGET_BYTES:,} bytes per stored query; this run {verdict} it.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        write_section(SECTION, text)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
