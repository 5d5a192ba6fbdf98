"""Store throughput: how many interactions per second the store takes on SQLite.

Two write paths are measured, each under the three retention modes:
- **replay**: batches of ``--batch`` interactions handed over without waiting
  (``add_interactions(..., wait=False)`` then ``flush()``), as ``querywarden replay --db`` does;
- **gateway**: one interaction per call (``save_step``), written behind, as the gateway's
  worker does; the single writer groups whatever has queued into one transaction.

Traffic is 30-feature tabular requests with a probability output, from ``--principals``
principals. Each measurement starts from an empty database file and ends when every row
is committed. Results go to stdout and, unless ``--no-docs``, into the "Store throughput"
section of docs/performance.md. ``--url`` measures another database instead (for example
a PostgreSQL server); every run adds to it, and the result is not written to the docs.

    .venv/bin/python benchmarks/store_throughput.py                 # 200k interactions
    .venv/bin/python benchmarks/store_throughput.py --n 20000 --no-docs
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from perfdoc import write_section
from querywarden.core.engine import Step
from querywarden.core.records import Client, Interaction, Output
from querywarden.store import Store, open_store

SECTION = "## Store throughput"
TARGET = 20_000
N_FEATURES = 30
RETENTIONS = ("sketch", "full", "none")
_NO_STEP = Step([], [], [])


def traffic(n: int, principals: int, seed: int = 11) -> list[Interaction]:
    rng = np.random.default_rng(seed)
    who = rng.integers(0, principals, size=n)
    x = rng.normal(size=(n, N_FEATURES)).round(6)
    p1 = 1.0 / (1.0 + np.exp(-x[:, 0]))
    t0 = 1_795_867_200.0
    return [
        Interaction(
            id=f"req-{i}",
            ts=t0 + i * 0.05,
            principal=f"key_{who[i]:04d}",
            model="credit",
            client=Client(ip=f"198.51.100.{who[i] % 250}", user_agent="python-httpx/0.28"),
            features=x[i],
            output=Output(probabilities=np.array([1.0 - p1[i], p1[i]])),
        )
        for i in range(n)
    ]


def replay_path(store: Store, items: list[Interaction], batch: int) -> None:
    for k in range(0, len(items), batch):
        store.add_interactions(items[k : k + batch], wait=False)
    store.flush()


def gateway_path(store: Store, items: list[Interaction], _batch: int) -> None:
    for it in items:
        store.save_step((it,), _NO_STEP)
    store.flush()


def measure(
    url: str,
    retention: str,
    items: list[Interaction],
    batch: int,
    path: Callable[[Store, list[Interaction], int], None],
) -> tuple[float, float]:
    """(wall-clock rate, CPU-time rate) of one write path into an empty store."""
    with open_store(url, retention=retention) as store:
        before = store.stats().interactions
        wall0, cpu0 = time.perf_counter(), time.process_time()
        path(store, items, batch)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stored = store.stats().interactions - before
    if stored != len(items):
        raise SystemExit(f"stored {stored} interactions, expected {len(items)}")
    return len(items) / wall, len(items) / cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="interactions per measurement")
    ap.add_argument("--gateway-n", type=int, default=50_000, help="interactions for the one-per-call path")
    ap.add_argument("--principals", type=int, default=1_000)
    ap.add_argument("--batch", type=int, default=2_000, help="interactions per replay write")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", help="measure this database instead of a fresh SQLite file per run")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    args = ap.parse_args(argv)
    items = traffic(args.n, args.principals)
    results: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, n in (("replay", replay_path, args.n), ("gateway", gateway_path, args.gateway_n)):
            for retention in RETENTIONS:
                walls, cpus = [], []
                for run in range(args.runs):
                    url = args.url or f"sqlite:///{tmp}/{label}-{retention}-{run}.db"
                    wall, cpu = measure(url, retention, items[:n], args.batch, path)
                    walls.append(wall)
                    cpus.append(cpu)
                results.append((label, retention, statistics.median(walls), statistics.median(cpus)))
                print(f"{label:8} {retention:7} {results[-1][3]:>10,.0f}/s CPU {results[-1][2]:>10,.0f}/s wall")
    replay_sketch = next(c for label, r, _, c in results if (label, r) == ("replay", "sketch"))
    verdict = "meets" if replay_sketch >= TARGET else "misses"
    where = "the given database" if args.url else "SQLite"
    print(f"replay into {where}, sketch retention: {replay_sketch:,.0f}/s CPU {verdict} the {TARGET:,}/s target")
    if args.no_docs or args.url:
        return 0
    cmd = "python benchmarks/store_throughput.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/{cmd}` "
        f"(Python {platform.python_version()}, {platform.machine()}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs).",
        "",
        f"30-feature tabular interactions with probability outputs from {args.principals:,} principals, written",
        "into a fresh SQLite file (WAL, one writer thread) until every row is committed; median of",
        f"{args.runs} runs. *replay* hands over {args.batch:,} interactions per call without waiting",
        f"({args.n:,} in all), as `querywarden replay --db` does; *gateway* hands over one per call",
        f"({args.gateway_n:,} in all), as the gateway's worker does, and the writer groups what has queued.",
        "The CPU-time rate counts the caller's and the writer's threads together, so it is what one",
        "core delivers; the wall-clock rate also counts time spent waiting for a CPU on a shared machine.",
        "",
        "| path | retention | CPU time (interactions/s) | wall clock (interactions/s) |",
        "|---|---|---:|---:|",
        *[f"| {label} | {r} | {c:,.0f} | {w:,.0f} |" for label, r, w, c in results],
        "",
        f"Target: replay into SQLite with `sketch` retention at {TARGET:,} interactions/s or more on one core; "
        f"this run {verdict} it ({replay_sketch:,.0f}/s of CPU time).",
        "",
    ]
    write_section(SECTION, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
