"""Text detectors: CPU cost of one ``update`` on a 200-character prompt, and of each text layer.

Each LLM detector is warmed with benign chat from 1,000 customers, then timed on 5,000
single ``update`` calls over chat whose prompts are about 200 characters long (a customer
question followed by context), with answers of similar length: once on benign traffic
(the common path) and once on attack traffic (each detector's own attack, where the
expensive branches run). A features-only interaction measures what a text detector costs
an engine that protects a classifier (the skip path). The featurization layers are timed
on their own. CPU time is the thread's own time per call. Results go to stdout and, unless
``--no-docs``, into the "Text detectors" section of docs/performance.md.

    .venv/bin/python benchmarks/text_cost.py
    .venv/bin/python benchmarks/text_cost.py --calls 2000 --no-docs
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import llm_chat as chat
from perfdoc import pin_one_core, write_section
from querywarden.core.detector import Detector
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction
from querywarden.plugins import load_detectors
from querywarden.text.fingerprint import minhash
from querywarden.text.pii import scan
from querywarden.text.stream import StreamRedactor
from querywarden.text.templates import TemplateMiner

SECTION = "## Text detectors"
BUDGET_US = 100.0
PROFILE = ModelProfile(id="assistant", input_kind=InputKind.TEXT, output_kind="text")
CONTEXT = [
    " I am asking because my partner and I share the account and we want to plan next month's budget carefully.",
    " Some background: I moved to Lisbon last year and still use the card for rent, groceries and the gym.",
    " For context, the app showed an error yesterday evening and I could not see the last statement at all.",
]


def _long(it: Interaction, rng: random.Random) -> Interaction:
    """The interaction with its prompt and answer brought to about 200 characters."""
    user = it.messages[-1]["content"] if it.messages else it.prompt or ""
    while len(user) < 190:
        user += rng.choice(CONTEXT)
    user = user[:210]
    messages = (*(it.messages or ())[:-1], {"role": "user", "content": user})
    answer = it.output.text if it.output and it.output.text else ""
    if len(answer) < 150:
        answer += " If you need anything else, open the Help tab in the app or reply here."
    return msgspec.structs.replace(it, messages=messages, output=msgspec.structs.replace(it.output, text=answer))


def attacks(name: str) -> list[Interaction]:
    make: dict[str, Callable[[], Iterable[Interaction]]] = {
        "llm_templated": lambda: chat.enumeration("a", 5000),
        "llm_extraction": lambda: chat.divergence("a", 5000),
        "llm_logprobs": lambda: chat.logit_sweep("a", 5000),
        "llm_sysprompt": lambda: chat.system_probe("a", 5000, leak=True),
        "llm_leakage": lambda: chat.leaking("a", 5000),
        "llm_distill": lambda: chat.distillation([f"a{i}" for i in range(50)], 5000),
    }
    return list(make[name]())


def time_calls(fn: Callable[[object], object], items: list[object]) -> tuple[float, float]:
    """Median and 99th percentile CPU µs of ``fn(item)`` over ``items``."""
    cpu = time.thread_time_ns
    samples = []
    for item in items:
        t0 = cpu()
        fn(item)
        samples.append((cpu() - t0) / 1000.0)
    return statistics.median(samples), float(np.percentile(samples, 99))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    rng = random.Random(7)
    warm = chat.benign(101, customers=1000, per_customer=20)
    timed = [_long(it, rng) for it in chat.benign(102, customers=400, per_customer=30)][: args.calls]
    numeric = Interaction(id="n", ts=chat.T0, principal="n", model="digits", features=np.zeros(64))
    rows = []
    for name, cls in sorted(load_detectors().items()):
        if not name.startswith("llm_"):
            continue
        det: Detector = cls(profile=PROFILE)
        for it in warm:
            det.update(it)
        benign = time_calls(det.update, timed)  # type: ignore[arg-type]
        attack = time_calls(det.update, [_long(it, rng) for it in attacks(name)[: args.calls]])  # type: ignore[arg-type]
        skip = time_calls(det.update, [numeric] * 2000)  # type: ignore[arg-type]
        per_principal = len(det.snapshot()) / max(1, det.state_size())
        rows.append((name, benign, attack, skip, per_principal))
        print(name, benign, attack, skip, per_principal, flush=True)
    prompts: list[object] = [it.messages[-1]["content"] for it in timed if it.messages]
    answers: list[object] = [it.output.text for it in timed if it.output]
    miner = TemplateMiner()
    layers = [
        ("MinHash fingerprint (32 permutations)", time_calls(minhash, prompts)),  # type: ignore[arg-type]
        ("template miner `add`", time_calls(miner.add, prompts)),  # type: ignore[arg-type]
        ("PII scan of a ~200-character answer", time_calls(scan, answers)),  # type: ignore[arg-type]
    ]
    redactor = StreamRedactor()
    chunks: list[object] = [str(a)[i : i + 20] for a in answers[:500] for i in range(0, len(str(a)), 20)]
    layers.append(("streaming redactor, per 20-character chunk", time_calls(redactor.feed, chunks)))  # type: ignore[arg-type]
    for label, (med, p99) in layers:
        print(label, med, p99)
    worst = max(max(b[0], a[0]) for _, b, a, _, _ in rows)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"Measured {when} with `.venv/bin/python benchmarks/text_cost.py` (Python {platform.python_version()}, "
        f"{platform.machine()}, {pinned}).",
        "",
        f"Each LLM detector with default parameters, warmed with {len(warm):,} benign chat interactions from 1,000",
        f"customers, then {args.calls:,} single `update` calls timed on ~200-character prompts with ~200-character",
        "answers: benign chat (the common path) and the detector's own attack (its expensive branches). The skip",
        "column is a features-only interaction: what a text detector costs an engine protecting a classifier.",
        "CPU time is the thread's own time per call. State is the snapshot's size over the principals and actors",
        "held after all of it (global indexes included), a proxy for memory per principal.",
        "",
        "| detector | benign median µs | benign p99 µs | attack median µs | attack p99 µs | skip µs | state B/principal"
        " |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (bm, bp), (am, ap_), (sm, _), size in rows:
        lines.append(f"| `{name}` | {bm:.1f} | {bp:.1f} | {am:.1f} | {ap_:.1f} | {sm:.2f} | {size:,.0f} |")
    lines += ["", "| text layer | median µs | p99 µs |", "|---|---:|---:|"]
    for label, (med, p99) in layers:
        lines.append(f"| {label} | {med:.1f} | {p99:.1f} |")
    verdict = "meets it" if worst <= BUDGET_US else f"misses it (worst median {worst:.1f} µs)"
    lines += [
        "",
        f"Budget: ≤ {BUDGET_US:.0f} µs per text detector `update` on a 200-character prompt; this run {verdict}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_docs:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
