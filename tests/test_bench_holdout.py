"""The holdout profile: held-out victims, other attack settings and held-out benign habits."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from querywarden.bench.attacks.extraction import ood_pool
from querywarden.bench.benign import WorkloadSizes, generate
from querywarden.bench.habits import HABITS
from querywarden.bench.runner import PROFILES
from querywarden.bench.scenario import BenchError, attack_names, attack_spec, holdout_attack_names, run_attack
from querywarden.bench.victims import load_victim

CLI = Path(sys.executable).with_name("querywarden")


def test_held_out_runs_are_apart_from_the_registered_ones() -> None:
    held = holdout_attack_names()
    assert not set(held) & set(attack_names())
    victims = {attack_spec(n).victim for n in held}
    assert {"synth64-svc", "wine-gb"} <= victims
    families = {attack_spec(n).family for n in held if "@" not in n}
    # another setting for every family of the registered attacks
    assert families == {attack_spec(n).family for n in attack_names()}
    assert PROFILES["holdout"].holdout and not PROFILES["ci"].holdout and not PROFILES["full"].holdout


def test_a_setting_changes_the_traffic_and_names_the_run() -> None:
    victim = load_victim("breast-cancer", 4)
    usual = run_attack("tramer", victim, 4, "ci")
    exact = run_attack("tramer-exact", victim, 4, "ci")
    marginals = run_attack("tramer-marginals", victim, 4, "ci")
    assert exact.name == "tramer-exact" and exact.budget == victim.n_features + 1 and exact.batches == exact.budget
    assert usual.budget == 2 * (victim.n_features + 1)
    # every feature of a marginals query is a value the attacker's own records hold
    x = marginals.features()
    pool = victim.attacker_pool
    assert all(np.isin(x[:, j], pool[:, j]).all() for j in range(victim.n_features))
    lo, hi = victim.bounds()
    assert not all(np.isin(usual.features()[:, j], pool[:, j]).any() for j in range(victim.n_features))
    assert np.all((x >= lo) & (x <= hi))


def test_a_two_pass_fredrikson_sweep_learns_what_the_paired_one_does() -> None:
    victim = load_victim("adult-overfit", 4)
    pairs = run_attack("fredrikson", victim, 4, "ci")
    passes = run_attack("fredrikson-passes", victim, 4, "ci")
    assert pairs.budget == passes.budget
    assert pairs.success_at(pairs.budget) == passes.success_at(passes.budget)
    # half way, the two-pass sweep has not decided one target: it still guesses the majority
    half = pairs.budget // 2
    assert passes.success_at(half)["accuracy"] == passes.success_at(0)["accuracy"] == passes.success_at(0)["baseline"]
    # a record's two versions: next to each other in the paired sweep, half the budget apart in two passes
    assert np.count_nonzero(pairs.features()[0] != pairs.features()[1]) == 1
    assert np.count_nonzero(passes.features()[0] != passes.features()[half]) == 1
    assert passes.batches == pairs.budget // 20


def test_ood_pools() -> None:
    digits = load_victim("digits", 4)
    inverted = ood_pool(digits, "invert")
    assert inverted.shape == (4 * len(digits.attacker_pool), 64)
    assert np.array_equal(inverted[: len(digits.attacker_pool)], 16.0 - digits.attacker_pool)
    synth = load_victim("synth64-svc", 4)
    shuffled = ood_pool(synth, "marginals", 4)
    assert all(np.isin(shuffled[:, j], synth.attacker_pool[:, j]).all() for j in range(64))
    with pytest.raises(BenchError, match="image victim"):
        ood_pool(synth, "mirror")
    with pytest.raises(BenchError, match="unknown OOD pool"):
        ood_pool(digits, "noise")


def test_held_out_habits_are_scored_and_never_calibrated_on() -> None:
    victim = load_victim("breast-cancer", 4)
    plain = WorkloadSizes(principals=20, batch_jobs=2, batch_rows=400)
    with_habits = WorkloadSizes(principals=20, batch_jobs=2, batch_rows=400, held_out_habits=2)
    a, b = generate(victim, plain, 4), generate(victim, with_habits, 4)
    # the usual customers are the same with or without the habits
    assert [p.principal for p in a.calibration] == [p.principal for p in b.calibration]
    assert [p.principal for p in a.scored] == [p.principal for p in b.scored[: len(a.scored)]]
    assert not {p.workload for p in a.scored + b.calibration} & set(HABITS)
    extra = b.scored[len(a.scored) :]
    assert {p.workload for p in extra} == set(HABITS)
    by_kind = {k: [p for p in extra if p.workload == k] for k in HABITS}
    probe = by_kind["probe"][0]
    assert len(probe.requests) == 2 * 24 * 60
    assert len({r.rows.tobytes() for r in probe.requests}) == 1
    gaps = np.diff([r.ts for r in probe.requests])
    assert np.all(np.abs(gaps - 60.0) <= 1.0)
    portfolio = by_kind["portfolio"][0]
    assert len({np.floor((r.ts - portfolio.requests[0].ts) / 86_400) for r in portfolio.requests}) >= 13
    first, second = by_kind["ab-test"][:2]
    assert [r.rows.tobytes() for r in first.requests] == [r.rows.tobytes() for r in second.requests]
    rows = np.concatenate([r.rows for r in by_kind["synthetic-csv"][0].requests])
    nonzero = rows[rows != 0]
    digits = np.abs(nonzero) / 10.0 ** (np.floor(np.log10(np.abs(nonzero))) - 1)
    rounded = np.isclose(digits, np.round(digits), rtol=0, atol=1e-6)
    lo, hi = victim.bounds()
    at_bound = np.isin(nonzero, np.concatenate([lo, hi]))  # a rounded value past the range is clipped to it
    assert np.all(rounded | at_bound) and rounded.mean() > 0.9  # two significant digits
    # a sensor feed: hundreds of readings of one entity, each a small step from the last
    feed = np.concatenate([r.rows for r in by_kind["sensor-feed"][0].requests])
    steps = np.abs(np.diff(feed, axis=0)).max(axis=0)
    assert feed.shape[0] >= 500 and np.all(steps <= 0.1 * (hi - lo) + 1e-9)
    # a sensitivity report: a handful of records, each swept over one same feature
    report = np.concatenate([r.rows for r in by_kind["sensitivity"][0].requests])
    swept = np.nonzero(np.ptp(report, axis=0) > 0)[0]
    assert len(swept) >= 2 and 15 <= report.shape[0] <= 60
    edits = {tuple(np.nonzero(a != b)[0]) for a, b in itertools.pairwise(report)}
    assert len({e for e in edits if len(e) == 1}) == 1  # within a record, only the swept feature moves
    # an app key forwarding thousands of end users' records, single rows
    forward = by_kind["app-forward"][0].requests
    assert len(forward) >= 1000 and all(r.rows.shape[0] == 1 for r in forward)
    # jittered re-submissions: the same record again, numeric fields off by rounding or float noise
    sent = np.concatenate([r.rows for r in by_kind["jitter"][0].requests])
    close = [np.allclose(a, b, rtol=0.01, atol=0) and not np.array_equal(a, b) for a, b in itertools.pairwise(sent)]
    assert sum(close) >= len(sent) // 4


def test_the_holdout_profile_has_no_llm_suite(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "bench", "--profile", "holdout", "--suite", "llm", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "no LLM suite" in done.stderr


def test_results_count_flagged_benign_principals_per_workload(tmp_path: Path) -> None:
    from querywarden.bench.report import load_results, markdown, write_all
    from querywarden.bench.runner import BenchResults, _BenignOutcome
    from querywarden.core.records import Severity

    kind_of = {"a": "probe", "b": "probe", "c": "browsing", "d": "portfolio"}
    outcome = _BenignOutcome(
        victim=load_victim("breast-cancer", 4),
        calibration_principals=4,
        scored_principals=4,
        scored_interactions=10,
        workloads={"probe": 2, "browsing": 1, "portfolio": 1},
        flagged_worst={"a": Severity.LOW, "c": Severity.HIGH},
        flagged_why={},
        kind_of=kind_of,
        thresholds=[],
        engine_seconds=0.0,
        finding_events=0,
        findings_digest="",
    )
    victim = outcome.result({})
    assert victim.by_workload == {
        "browsing": {"principals": 1, "low": 1, "medium": 1},
        "portfolio": {"principals": 1, "low": 0, "medium": 0},
        "probe": {"principals": 2, "low": 1, "medium": 0},
    }
    results = BenchResults("holdout", 4, 0.001, [], victims=[victim])
    write_all(results, tmp_path)
    again = load_results(tmp_path / "results.json")
    assert again.victims[0].by_workload == victim.by_workload
    assert "| probe | 2 | 1 | 0 |" in markdown(again)
