"""Engine throughput and memory with every registered detector on, 64-feature inputs, one core.

A digits classifier (8x8 images, 64 features) is the protected model. The stream mixes
benign principals (held-out natural images) with iterative probers (small-step walks), so
both the quiet path and the alarm path are exercised. Each run times ``Engine.process``
over pre-built interactions (parsing is measured by replay_throughput.py). The same run
measures a baseline, the engine with the volume detector alone, and each detector's own
``update`` cost. Memory is what tracemalloc sees the engine hold per interaction it keeps.

    .venv/bin/python benchmarks/engine_throughput.py              # 20k interactions, 3 runs
    .venv/bin/python benchmarks/engine_throughput.py --n 5000 --runs 1 --no-docs
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from perfdoc import pin_one_core, write_section
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output
from querywarden.defaults import default_detectors

SECTION = "## Engine throughput (all detectors)"
TARGET = 5_000


def build(n: int, seed: int = 3) -> tuple[ModelProfile, list[Interaction]]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    train, ref, pool = order[:900], order[900:1300], order[1300:]
    model = LogisticRegression(max_iter=500).fit(x[train], y[train])
    profile = ModelProfile(
        id="digits",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        classes=tuple(str(c) for c in range(10)),
        reference=x[ref],
    )
    rows, who = [], []
    walkers = {f"probe-{k}": x[pool[k]].copy() for k in range(5)}
    for i in range(n):
        if i % 10 == 0:  # 10% of traffic: iterative probing in small steps
            name = f"probe-{(i // 10) % 5}"
            walkers[name] = np.clip(walkers[name] + rng.normal(0, 0.3, 64), 0, 16)
            rows.append(walkers[name])
            who.append(name)
        else:
            rows.append(x[pool[rng.integers(len(pool))]])
            who.append(f"cust-{rng.integers(500):03d}")
    xs = np.vstack(rows)
    probs = model.predict_proba(xs)
    t0 = 1_795_867_200.0
    stream = [
        Interaction(
            id=f"r{i}",
            ts=t0 + i * 0.05,
            principal=who[i],
            model="digits",
            client=Client(ip=f"203.0.113.{hash(who[i]) % 250}", user_agent="bench/1"),
            features=xs[i],
            output=Output(probabilities=probs[i]),
        )
        for i in range(n)
    ]
    return profile, stream


def time_engine(profile: ModelProfile, stream: list[Interaction], specs: list[DetectorSpec]) -> float:
    engine = Engine({profile.id: profile}, detectors=specs)
    gc.collect()
    start = time.process_time()
    for it in stream:
        engine.process(it)
    return time.process_time() - start


def per_detector(profile: ModelProfile, stream: list[Interaction]) -> dict[str, float]:
    engine = Engine({profile.id: profile}, detectors=default_detectors())
    cost = {}
    for det in engine.detectors(profile.id):
        start = time.process_time()
        for it in stream:
            det.update(it)
        cost[det.name] = (time.process_time() - start) / len(stream) * 1e6
    return cost


def memory_per_interaction(profile: ModelProfile, stream: list[Interaction]) -> tuple[float, float]:
    """Bytes the engine holds per interaction: overall, and the marginal cost over the second half.

    The marginal figure leaves out fixed allocations (preallocated tables, the reference
    sample), so it is what each further stored query costs.
    """
    half = len(stream) // 2
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    engine = Engine({profile.id: profile}, detectors=default_detectors())
    for it in stream[:half]:
        engine.process(it)
    gc.collect()
    mid = tracemalloc.get_traced_memory()[0]
    for it in stream[half:]:
        engine.process(it)
    gc.collect()
    end = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del engine
    return (end - start) / len(stream), (end - mid) / (len(stream) - half)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    profile, stream = build(args.n)
    specs = default_detectors()
    names = [s.name for s in specs]
    all_rates, base_rates = [], []
    for _ in range(args.runs):
        all_rates.append(args.n / time_engine(profile, stream, specs))
        base_rates.append(args.n / time_engine(profile, stream, [DetectorSpec("volume")]))
    rate, base = statistics.median(all_rates), statistics.median(base_rates)
    costs = per_detector(profile, stream)
    mem, marginal = memory_per_interaction(profile, stream)
    cmd = "python benchmarks/engine_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/{cmd.strip()}` ({pinned}, "
        f"load average {os.getloadavg()[0]:.1f}). {args.n:,} interactions of 64 features (digits), 10% of them "
        f"iterative probing; CPU time, median of {args.runs} runs. Detectors: {', '.join(names)}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| engine, all detectors | **{rate:,.0f} interactions/s** (target {TARGET:,}) |",
        f"| baseline: engine with the volume detector alone | {base:,.0f} interactions/s |",
        f"| ratio all / baseline | {rate / base:.3f} |",
        f"| memory per interaction, marginal over the second half | **{marginal:,.0f} B** (target 2,048) |",
        f"| memory per interaction, overall incl. fixed tables ({args.n:,} interactions) | {mem:,.0f} B |",
        "",
        "Per-detector `update` cost (µs per interaction, one pass over the same stream):",
        "",
        "| detector | µs |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in sorted(costs.items(), key=lambda kv: -kv[1])],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
