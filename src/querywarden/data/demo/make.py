"""Builds the demo's bundled traffic from the red-team benchmark (run by hand; output committed).

    .venv/bin/python src/querywarden/data/demo/make.py

A digits classifier (8x8 images) and its customers: browsing, retries, edited photos, a
nightly batch job, a corporate NAT. Thresholds are calibrated on a separate half of the
customers (written into config.toml); the other half is the demo's benign traffic. Five
real attacks from the benchmark are mixed in, each cut to its first few hundred queries to
keep the file small: HopSkipJump (one key), MI-Face over 20 keys (Sybil), KnockoffNets with
out-of-distribution images, Papernot's Jacobian augmentation, and CopycatCNN with natural
images, which no query pattern gives away (it shows as exposure only).
``principals.json`` says who each principal really is, so the demo can score itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from querywarden.bench import benign as benign_mod
from querywarden.bench.benign import WorkloadSizes
from querywarden.bench.calibration import write_config
from querywarden.bench.scenario import run_attack
from querywarden.bench.traffic import Request, interactions, merge, write_jsonl
from querywarden.bench.variants import build
from querywarden.bench.victims import load_victim
from querywarden.calibrate import calibrate
from querywarden.defaults import default_detectors

HERE = Path(__file__).parent
SEED = 0
ATTACKS = (  # name, variant, rows kept
    ("hopskipjump", "single", 600),
    ("miface", "sybil", 600),
    ("knockoff-ood", "single", 400),
    ("papernot", "single", 320),
    ("copycat", "single", 150),
)


def _cut(requests: list[Request], rows: int) -> list[Request]:
    kept, total = [], 0
    for r in requests:
        if total >= rows:
            break
        kept.append(r)
        total += r.rows.shape[0]
    return kept


def main() -> None:
    victim = load_victim("digits", SEED)
    customers = benign_mod.generate(victim, WorkloadSizes(principals=80, batch_jobs=2, batch_rows=2_000), SEED)
    profiles = {victim.profile.id: victim.profile}
    calibration = interactions(customers.requests("calibration"), victim)
    specs = calibrate(calibration, profiles, default_detectors(), target_fpr=0.01).specs
    write_config(HERE, victim, specs)
    truth: dict[str, dict[str, str]] = {p.principal: {"role": f"customer ({p.workload})"} for p in customers.scored}
    streams = [interactions(customers.requests("scored"), victim)]
    for name, variant, rows in ATTACKS:
        traffic = build(run_attack(name, victim, SEED, "ci"), variant, SEED)
        for key in traffic.principals:
            truth[key] = {"role": f"attacker: {name} ({variant})", "attack": name}
        streams.append(interactions(_cut(traffic.requests, rows), victim))
    lines = write_jsonl(HERE / "traffic.jsonl.gz", merge(*streams))
    (HERE / "principals.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {lines} lines, {len(truth)} principals")


if __name__ == "__main__":
    main()
