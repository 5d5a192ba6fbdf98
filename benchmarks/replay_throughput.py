"""Replay throughput: parse -> engine -> findings, store off, volume detector only, one core.

Generates 30-feature tabular traffic from many principals into a temporary file, replays
it several times and reports the median rate. The same run measures a baseline on the same
file, a bare msgspec decode of every line, so the result can be read on any machine as a
ratio to what the JSON decoding alone costs. Results go to stdout and, unless
``--no-docs``, into the "Replay throughput" section of docs/performance.md.

    .venv/bin/python benchmarks/replay_throughput.py                # 200k lines, 5 runs
    .venv/bin/python benchmarks/replay_throughput.py --lines 20000 --runs 3 --no-docs
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from perfdoc import DOCS, pin_one_core, write_section
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Output
from querywarden.core.traffic_encode import encode
from querywarden.findings_out import FindingsWriter
from querywarden.plugins import load_detectors
from querywarden.replay import replay

SECTION = "## Replay throughput"
TARGET = 50_000
N_FEATURES = 30


def generate(path: Path, lines: int, principals: int, seed: int = 7) -> None:
    """Traffic at 20 requests/s: most principals steady, 1% heavy ones so findings happen."""
    rng = np.random.default_rng(seed)
    weights = np.ones(principals)
    weights[: max(1, principals // 100)] = 200.0  # 1% of principals send most of the traffic
    who = rng.choice(principals, size=lines, p=weights / weights.sum())
    t0 = 1_795_867_200.0
    span = lines / 20.0  # 20 requests per second overall
    with path.open("wb") as fh:
        for i in range(lines):
            x = rng.normal(size=N_FEATURES).round(6)
            p1 = float(1.0 / (1.0 + np.exp(-x[0])))
            interaction = Interaction(
                id=f"req-{i}",
                ts=t0 + span * i / lines,
                principal=f"key_{who[i]:04d}",
                model="credit",
                features=x,
                output=Output(probabilities=np.array([round(1 - p1, 6), round(p1, 6)])),
            )
            fh.write(encode(interaction) + b"\n")


def time_replay(path: Path) -> tuple[float, float, int, int]:
    """Wall-clock and CPU seconds of one replay, with its interaction and finding-event counts."""
    load_detectors()
    engine = Engine({"credit": ModelProfile(id="credit", n_features=N_FEATURES)}, detectors=[DetectorSpec("volume")])
    sink = FindingsWriter(io.BytesIO())
    wall, cpu = time.perf_counter(), time.process_time()
    stats = replay(path, engine, sink)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if stats.rejects:
        raise SystemExit(f"benchmark traffic has {stats.rejects} rejects")
    return wall, cpu, stats.interactions, stats.finding_events


def time_baseline(path: Path) -> tuple[float, float]:
    decode = msgspec.json.decode
    wall, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as fh:
        for line in fh:
            decode(line)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--principals", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.jsonl"
        generate(path, args.lines, args.principals)
        size_mb = path.stat().st_size / 1e6
        wall_rates, cpu_rates, wall_base, cpu_base, events = [], [], [], [], 0
        for _ in range(args.runs):
            wall, cpu, n, events = time_replay(path)
            wall_rates.append(n / wall)
            cpu_rates.append(n / cpu)
            b_wall, b_cpu = time_baseline(path)
            wall_base.append(args.lines / b_wall)
            cpu_base.append(args.lines / b_cpu)
    rate, base = statistics.median(cpu_rates), statistics.median(cpu_base)
    wrate, wbase = statistics.median(wall_rates), statistics.median(wall_base)
    verdict = (
        f"on CPU time this run {'meets' if rate >= TARGET else 'misses'} it; on the wall clock "
        f"(load average {os.getloadavg()[0]:.1f}) it {'meets' if wrate >= TARGET else 'misses'} it"
    )
    shown_args = " ".join(argv if argv is not None else sys.argv[1:])
    cmd = f"python benchmarks/replay_throughput.py {shown_args}".rstrip()
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/{cmd}` "
        f"(Python {platform.python_version()}, {platform.machine()}, {pinned}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs).",
        "",
        f"{args.lines:,} lines of 30-feature tabular traffic ({size_mb:.0f} MB) from {args.principals:,} principals,",
        "parsed, run through the engine with the volume detector alone and findings written; store off.",
        f"Median of {args.runs} runs. The CPU-time rate is what one core delivers; the wall-clock rate",
        "also counts time the process waited for a CPU on a shared machine.",
        "",
        "| measure | CPU time (interactions/s) | wall clock (interactions/s) |",
        "|---|---:|---:|",
        f"| replay (parse -> engine -> findings) | {rate:,.0f} | {wrate:,.0f} |",
        f"| baseline: bare `msgspec.json.decode` of each line | {base:,.0f} | {wbase:,.0f} |",
        f"| replay / baseline | {rate / base:.2f} | {wrate / wbase:.2f} |",
        "",
        f"CPU-time rates of all runs: {', '.join(f'{r:,.0f}' for r in cpu_rates)}; {events} finding events per run.",
        f"The target is {TARGET:,} interactions/s on one core: {verdict}.",
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
