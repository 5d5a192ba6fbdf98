"""How fast the console and the API answer over a large store (run by hand, not collected).

    .venv/bin/python tests/e2e/bench_pages.py --interactions 100000 --principals 2000

Fills a SQLite store with synthetic interactions (sketch retention, batched like the
gateway's writer) plus the replayed samples' findings and signals, then times each page
and API call over loopback HTTP: median and worst of ``--repeat`` requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.traffic import fill
from gateway_upstream import LoopbackServer
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext
from querywarden.console.settings import ConsoleSettings, token_digest
from querywarden.console.standalone import standalone_app
from querywarden.core.records import Interaction, Output
from querywarden.store import open_store

PATHS = (
    "/console/",
    "/console/findings",
    "/console/principals",
    "/console/principals/inverter",
    "/console/principals/p-00042",
    "/console/models",
    "/api/findings",
    "/api/principals?limit=100",
    "/api/stats",
    "/api/models",
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--principals", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp()) / "bench.db"
    store = open_store(f"sqlite:///{path}")
    fill(store)
    rng = np.random.default_rng(0)
    t0, batch = 1_764_400_000.0, []
    started = time.perf_counter()
    for k in range(args.interactions):
        p = rng.dirichlet(np.ones(2))
        batch.append(
            Interaction(
                id=f"syn-{k}",
                ts=t0 + k * 0.5,
                principal=f"p-{k % args.principals:05d}",
                model="credit",
                features=rng.normal(size=3),
                output=Output(probabilities=np.round(p, 4)),
            )
        )
        if len(batch) == 5_000:
            store.add_interactions(batch, wait=False)
            batch = []
    store.add_interactions(batch)
    store.flush()
    print(f"filled {args.interactions:,} interactions in {time.perf_counter() - started:.1f} s")
    token = "bench-token-0123456789abcdef"
    ctx = ConsoleContext(store=store, auth=Auth(ConsoleSettings(token_sha256=(token_digest(token),))))
    with (
        LoopbackServer(standalone_app(ctx)) as server,
        httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=60) as client,
    ):
        print(f"{'path':40} {'median ms':>10} {'worst ms':>10}")
        for p in PATHS:
            times = []
            for _ in range(args.repeat):
                s = time.perf_counter()
                r = client.get(p)
                times.append((time.perf_counter() - s) * 1000)
                assert r.status_code == 200, (p, r.status_code)
            print(f"{p:40} {statistics.median(times):10.1f} {max(times):10.1f}")
    store.close()


if __name__ == "__main__":
    main()
