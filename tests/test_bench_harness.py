"""The benchmark harness: benign workloads, attack variants, traffic files, scoring, reports.

Everything runs on real victims (trained from packaged data) and the real engine. The one
attack used here is a real equation-solving-style query loop written in the test: uniform
random inputs sent to the victim, scored by how well a logistic regression fitted on the
answers agrees with the victim on held-out data.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.bench import benign
from querywarden.bench.benign import DAY, START_TS, WorkloadSizes, field_groups
from querywarden.bench.calibration import write_config
from querywarden.bench.report import load_results, markdown, write_all
from querywarden.bench.runner import PROFILES, BenchProfile, BenchResults, Runner, replayed_digest
from querywarden.bench.scenario import AttackRun, Query, Victim
from querywarden.bench.score import ScenarioWatch, grouped, wilson
from querywarden.bench.traffic import interactions, read_jsonl, sort_requests, write_jsonl
from querywarden.bench.variants import ATTACK_START, build, calls
from querywarden.bench.victims import load_victim
from querywarden.config import load_config
from querywarden.core.records import Finding, Severity

SIZES = WorkloadSizes(principals=40, batch_jobs=2, batch_rows=900, batch_size=150)


@pytest.fixture(scope="module")
def digits() -> Victim:
    return load_victim("digits", 4)


@pytest.fixture(scope="module")
def cancer() -> Victim:
    return load_victim("breast-cancer", 4)


def random_queries(victim: Victim, n: int, seed: int, batch: int = 1) -> AttackRun:
    """A real extraction loop: uniform random inputs in the valid box, answers recorded."""
    rng = np.random.default_rng(seed)
    lo, hi = victim.bounds()
    queries: list[Query] = []
    for call in range(0, n, batch):
        x = rng.uniform(lo, hi, size=(min(batch, n - call), lo.shape[0]))
        probs = victim.predict_proba(x)
        queries.extend(Query(features=x[i], probabilities=probs[i], batch=call // batch) for i in range(len(x)))

    def scorer(prefix: Sequence[Query]) -> dict[str, float]:
        if len(prefix) < 10:
            return {"agreement": 0.0}
        x = np.stack([q.features for q in prefix])
        y = np.array([int(np.argmax(q.probabilities)) for q in prefix])
        if len(set(y.tolist())) < 2:
            return {"agreement": 0.0}
        thief = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
        return {"agreement": float(np.mean(thief.predict(victim.x_test) == victim.labels(victim.x_test)))}

    return AttackRun("uniform-random", "AML.T0024.002", victim.name, "synthetic", queries, scorer, "agreement")


# -- scoring --------------------------------------------------------------------------------
def test_wilson_interval_matches_known_values() -> None:
    r = wilson(5, 100)
    assert (round(r.low, 4), round(r.high, 4)) == (0.0215, 0.1118)
    zero = wilson(0, 100)
    assert zero.low == 0.0 and round(zero.high, 4) == 0.037
    assert wilson(10, 10).high == 1.0
    assert wilson(0, 0).to_dict()["ci95"] == [0.0, 1.0]
    with pytest.raises(ValueError):
        wilson(3, 2)


def _finding(principals: tuple[str, ...], severity: Severity, actor: str | None = None) -> Finding:
    return Finding(
        finding_id="fnd-1",
        status="open",
        principals=principals,
        actor=actor,
        model="m",
        technique={"id": "AML.T0024.002", "name": "Extract AI Model"},
        owasp=("ML05:2023",),
        severity=severity,
        score=0.8,
        detectors=("ood",),
        first_seen_ts=1.0,
        detected_ts=2.0,
        updated_ts=2.0,
        trigger_id="req-1",
        queries_at_detection=7,
        evidence={},
        action="alert",
    )


def test_watch_counts_detection_only_at_medium_and_on_the_attacker_or_its_actor() -> None:
    watch = ScenarioWatch(attackers=frozenset({"a1", "a2"}), benign=frozenset({"b1", "b2"}))
    watch.observe(_finding(("a1",), Severity.LOW), 10, set())
    assert watch.detection is None
    watch.observe(_finding(("b1",), Severity.HIGH), 11, set())
    assert watch.detection is None and watch.benign_worst == {"b1": Severity.HIGH}
    watch.observe(_finding(("x9",), Severity.MEDIUM, actor="actor-1"), 12, {"actor-1"})
    assert watch.detection is not None and watch.detection.attack_queries == 12
    watch.observe(_finding(("a2",), Severity.CRITICAL), 40, set())
    assert watch.detection.attack_queries == 12  # the first one counts


def test_grouped_needs_every_attacker_principal_in_one_actor() -> None:
    assert grouped({"a": "x", "b": "x", "c": "x"}) == (True, 3)
    assert grouped({"a": "x", "b": "x", "c": None}) == (False, 2)
    assert grouped({"a": None, "b": None}) == (False, 1)
    assert grouped({"a": None}) == (True, 1)


# -- benign workloads ---------------------------------------------------------------------
def test_benign_traffic_is_seeded_split_by_principal_and_holds_every_workload(digits: Victim) -> None:
    one = benign.generate(digits, SIZES, seed=11)
    again = benign.generate(digits, SIZES, seed=11)
    other = benign.generate(digits, SIZES, seed=12)
    reqs = one.requests("scored")
    assert [(r.id, r.ts, r.principal) for r in reqs] == [(r.id, r.ts, r.principal) for r in again.requests("scored")]
    assert np.array_equal(
        np.concatenate([r.rows for r in reqs]), np.concatenate([r.rows for r in again.requests("scored")])
    )
    assert [r.principal for r in other.requests("scored")] != [r.principal for r in reqs]
    relu = benign.generate(load_victim("breast-cancer-relu", 4), SIZES, seed=11)
    assert not {p.principal for p in relu.scored} & {p.principal for p in one.scored}
    cal = {p.principal for p in one.calibration}
    scored = {p.principal for p in one.scored}
    assert not cal & scored
    assert len(cal) + len(scored) == SIZES.principals + SIZES.batch_jobs
    for half in (one.calibration, one.scored):
        assert {p.workload for p in half} == {"browsing", "nat", "image-edits", "retries", "batch"}


def test_benign_rows_come_from_the_held_out_pool_in_bounds_and_in_time(digits: Victim) -> None:
    traffic = benign.generate(digits, SIZES, seed=3)
    lo, hi = digits.bounds()
    pool = {row.tobytes() for row in digits.benign_pool}
    for p in traffic.calibration + traffic.scored:
        for r in p.requests:
            assert START_TS <= r.ts <= START_TS + SIZES.days * DAY
            assert np.all(r.rows >= lo) and np.all(r.rows <= hi)
            if p.workload in ("browsing", "nat", "retries", "batch"):
                assert all(row.tobytes() in pool for row in r.rows)
    batch = [p for p in traffic.scored if p.workload == "batch"]
    assert all(p.rows == SIZES.batch_rows for p in batch)
    assert max(r.rows.shape[0] for p in batch for r in p.requests) == SIZES.batch_size


def test_nat_customers_share_one_ip_with_different_keys(digits: Victim) -> None:
    traffic = benign.generate(digits, SIZES, seed=5)
    nat = [p for p in traffic.calibration + traffic.scored if p.workload == "nat"]
    ips = Counter(r.ip for p in nat for r in p.requests[:1])
    assert max(ips.values()) >= 5  # five or more keys behind one address
    assert len({p.principal for p in nat}) == len(nat)
    others = {r.ip for p in traffic.scored if p.workload == "browsing" for r in p.requests}
    assert not others & set(ips)


def _aligned_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel gap between two 8x8 images over the interior, at the best one-pixel shift."""
    a, b = a.reshape(8, 8), b.reshape(8, 8)
    return min(
        float(np.abs(np.roll(a, (dy, dx), axis=(0, 1))[2:-2, 2:-2] - b[2:-2, 2:-2]).mean())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def test_image_edits_are_mild_copies_of_one_photo(digits: Victim) -> None:
    traffic = benign.generate(digits, SIZES, seed=6)
    editors = [p for p in traffic.scored + traffic.calibration if p.workload == "image-edits"]
    assert editors
    pool = {row.tobytes() for row in digits.benign_pool}
    own, other = [], []
    rng = np.random.default_rng(0)
    for p in editors:
        photo = None
        for r in p.requests:
            row = r.rows[0]
            if row.tobytes() in pool and (photo is None or _aligned_gap(row, photo) > 0):
                photo = row  # a new photo
                continue
            assert photo is not None
            own.append(_aligned_gap(row, photo))
            other.append(_aligned_gap(row, digits.benign_pool[rng.integers(len(digits.benign_pool))]))
    assert len(own) > 20
    # a shift, a cropped border or a brightness change leaves the same picture; another photo does not
    assert np.median(own) < 1.5 < np.median(other)
    assert np.mean(np.array(own) < np.array(other)) > 0.9


def test_what_if_users_edit_one_or_two_fields_at_a_time(cancer: Victim) -> None:
    traffic = benign.generate(cancer, SIZES, seed=8)
    groups = field_groups(cancer)
    users = [p for p in traffic.scored + traffic.calibration if p.workload == "what-if"]
    assert users
    steps = 0
    for p in users:
        for prev, cur in itertools.pairwise(p.requests):
            changed = sum(1 for g in groups if not np.array_equal(prev.rows[0][g], cur.rows[0][g]))
            if changed <= 2:
                steps += 1
    total = sum(len(p.requests) - 1 for p in users)
    assert steps >= 0.8 * total  # the rest are a new application being started


def test_one_hot_fields_are_edited_as_one_group() -> None:
    adult = load_victim("adult", 4)
    groups = field_groups(adult)
    sizes = sorted(len(g) for g in groups)
    assert sizes[-1] > 2  # e.g. the one-hot occupation columns
    assert sum(sizes) == adult.n_features
    assert any(set(adult.sensitive) <= set(g.tolist()) for g in groups)


# -- variants ---------------------------------------------------------------------------------
def test_calls_keep_batches_together_up_to_the_batch_limit(cancer: Victim) -> None:
    run = random_queries(cancer, 250, seed=1, batch=120)
    spans = calls(run, max_batch=50)
    assert spans[0] == (0, 50) and spans[2] == (100, 120) and spans[3] == (120, 170)
    assert spans[-1][1] == 250


def test_variants_send_the_same_queries_differently(cancer: Victim) -> None:
    run = random_queries(cancer, 400, seed=2)
    single = build(run, "single", seed=1)
    sybil = build(run, "sybil", seed=1)
    slow = build(run, "low-and-slow", seed=1)
    for sent in (single, sybil, slow):
        rows = np.concatenate([r.rows for r in sent.requests])
        assert np.array_equal(rows, run.features())
        ts = [r.ts for r in sent.requests]
        assert all(b > a for a, b in itertools.pairwise(ts))
    assert len(single.principals) == 1 and len(slow.principals) == 1
    assert len(set(sybil.principals)) == 20
    assert len({r.ip for r in sybil.requests}) == 20
    assert [r.principal for r in sybil.requests[:40]] == list(sybil.principals) * 2
    assert single.requests[0].ts > ATTACK_START and single.requests[-1].ts - single.requests[0].ts < 3600
    assert slow.requests[-1].ts - slow.requests[0].ts > 10 * DAY
    batched = random_queries(cancer, 300, seed=3, batch=30)
    assert max(r.rows.shape[0] for r in build(batched, "single", seed=1).requests) == 30
    assert max(r.rows.shape[0] for r in build(batched, "low-and-slow", seed=1).requests) == 1
    assert build(run, "sybil", seed=1).principals == sybil.principals
    assert build(run, "sybil", seed=2).principals != sybil.principals


# -- traffic files and replay --------------------------------------------------------------------
def test_traffic_files_read_back_to_the_same_interactions(tmp_path: Path, digits: Victim) -> None:
    traffic = benign.generate(digits, SIZES, seed=9)
    stream = interactions(sort_requests(traffic.requests("scored")), digits)
    assert write_jsonl(tmp_path / "t.jsonl", stream) == len(stream)
    back = list(read_jsonl(tmp_path / "t.jsonl", [digits]))
    assert [(i.id, i.ts, i.principal, i.client) for i in back] == [(i.id, i.ts, i.principal, i.client) for i in stream]
    assert all(np.array_equal(a.features, b.features) for a, b in zip(back, stream, strict=True))
    assert all(
        a.output is not None and b.output is not None and np.array_equal(a.output.probabilities, b.output.probabilities)  # type: ignore[arg-type]
        for a, b in zip(back, stream, strict=True)
    )
    assert write_jsonl(tmp_path / "t.jsonl.gz", stream) == len(stream)
    assert (tmp_path / "t.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    gz = list(read_jsonl(tmp_path / "t.jsonl.gz", [digits]))
    assert [i.id for i in gz] == [i.id for i in stream]
    batch_ids = [i.id for i in stream if "#" in i.id]
    assert batch_ids and batch_ids[0].endswith("#0")


def test_written_config_loads_back_to_the_victims_profile(tmp_path: Path, cancer: Victim) -> None:
    from querywarden.defaults import default_detectors

    path = write_config(tmp_path, cancer, default_detectors())
    cfg = load_config(path)
    prof = cfg.profiles[cancer.profile.id]
    assert prof.ranges == cancer.profile.ranges
    assert prof.feature_names == cancer.profile.feature_names
    assert prof.classes == cancer.profile.classes
    assert np.array_equal(prof.reference, cancer.profile.reference)  # type: ignore[arg-type]
    assert [s.name for s in cfg.detector_specs] == [s.name for s in default_detectors()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, cancer: Victim) -> tuple[Runner, BenchResults, AttackRun]:
    out = tmp_path_factory.mktemp("bench")
    profile = BenchProfile("test", "ci", SIZES, seed=4)
    runner = Runner(profile, out)
    traffic = benign.generate(cancer, SIZES, profile.seed)
    background, outcome = runner.benign(cancer, traffic)
    run = random_queries(cancer, 1500, seed=4)
    results = BenchResults("test", 4, profile.target_fpr, [s.name for s in runner.specs])
    cache: dict[int, float] = {}
    for variant in ("single", "sybil", "low-and-slow"):
        scen, _ = runner.scenario(background, run, variant, cache)
        results.scenarios.append(scen)
    results.victims.append(outcome.result(outcome.result({}).fpr))
    return runner, results, run


def test_benign_and_scenario_files_replay_to_the_same_findings(
    small_run: tuple[Runner, BenchResults, AttackRun],
) -> None:
    runner, results, _ = small_run
    from querywarden.bench.runner import ScenarioWatch, _Trace, drive, finish

    victim_result = results.victims[0]
    checks = [
        (
            f"traffic/{victim_result.victim}/benign-scored.jsonl",
            victim_result.finding_events,
            victim_result.findings_digest,
            victim_result.scored_interactions,
        )
    ]
    checks += [(s.traffic_file, s.finding_events, s.findings_digest, s.interactions) for s in results.scenarios]
    for traffic_file, events, digest, count in checks:
        file = runner.out / traffic_file
        cfg = load_config(file.parent / "config.toml")
        engine = cfg.engine()
        victim = load_victim(victim_result.victim, 4)
        watch = ScenarioWatch(attackers=frozenset(), benign=frozenset())
        trace = _Trace()
        stream = list(read_jsonl(file, [victim]))
        assert len(stream) == count
        drive(engine, stream, watch, trace)
        finish(engine, watch, trace, 0)
        assert (trace.events, trace.digest.hexdigest()) == (events, digest)


def test_querywarden_replay_on_a_scenario_file_gives_the_counted_findings(
    tmp_path: Path, small_run: tuple[Runner, BenchResults, AttackRun]
) -> None:
    runner, results, _ = small_run
    scen = next(s for s in results.scenarios if s.variant == "sybil")
    assert scen.finding_events > 0  # an empty digest would match anything
    file = runner.out / scen.traffic_file
    out = tmp_path / "findings.jsonl"
    cli = Path(sys.executable).with_name("querywarden")
    argv = [str(cli), "replay", str(file), "--config", str(file.parent / "config.toml"), "--findings", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert replayed_digest(out) == (scen.finding_events, scen.findings_digest)


def test_scenario_results_measure_budget_success_and_principals(
    small_run: tuple[Runner, BenchResults, AttackRun],
) -> None:
    _, results, run = small_run
    by_variant = {s.variant: s for s in results.scenarios}
    assert set(by_variant) == {"single", "sybil", "low-and-slow"}
    assert all(s.budget == 1500 for s in results.scenarios)
    assert by_variant["sybil"].principals == 20 and by_variant["single"].principals == 1
    # a caught attacker ends its scenario there: the traffic file stops at that interaction
    single = by_variant["single"]
    assert single.detected and single.caught_before_end
    assert single.interactions < 1500 + results.victims[0].scored_interactions
    assert all(s.detected and s.grouped for s in results.scenarios if s.caught_before_end)
    end = run.success_at(run.budget)["agreement"]
    assert all(s.success_at_end == round(end, 4) for s in results.scenarios)
    assert end > 0.8  # the random-query thief really learns the victim
    for s in results.scenarios:
        if s.detected:
            assert s.queries_to_detection is not None and 0 < s.queries_to_detection <= s.budget
            assert s.success_at_detection is not None
        else:
            assert s.queries_to_detection is None and s.share_of_budget is None


def test_reports_carry_every_scenario(tmp_path: Path, small_run: tuple[Runner, BenchResults, AttackRun]) -> None:
    _, results, _ = small_run
    paths = write_all(results, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert len(data["scenarios"]) == 3
    assert set(data["benign_fpr"]) == {"low", "medium", "high"}
    assert data["benign_fpr"]["medium"]["total"] == results.victims[0].scored_principals
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = markdown(results)
    assert text.count("| breast-cancer | uniform-random |") == 3
    assert "benign principals flagged at ≥ medium" in text
    assert "## By attack family" in text and "| synthetic | sybil | " in text
    again = load_results(paths["json"])
    assert markdown(again).split("run time")[1] == text.split("run time")[1]


def test_bench_command_rejects_an_unknown_profile_or_attack(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("querywarden")
    for extra in (["--profile", "huge"], ["--profile", "ci", "--attack", "no-such-attack"]):
        done = subprocess.run(
            [str(cli), "bench", "--out", str(tmp_path), *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2
        assert "huge" in done.stderr or "no-such-attack" in done.stderr
    assert not (tmp_path / "results.json").exists()


def test_bench_command_takes_a_seed_and_records_it(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("querywarden")
    bad = subprocess.run(
        [str(cli), "bench", "--seed", "-1", "--out", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "--seed" in bad.stderr
    done = subprocess.run(
        [str(cli), "bench", "--suite", "classifier", "--attack", "tramer", "--seed", "5", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seeded = json.loads((tmp_path / "results.json").read_text())
    assert seeded["seed"] == 5
    # the seed reached the customers: the scored keys are seed 5's, not the profile's seed 4's
    scored = (tmp_path / "traffic/breast-cancer/benign-scored.jsonl").read_text().splitlines()
    sent = {json.loads(line)["principal"] for line in scored}
    sizes = PROFILES["ci"].sizes
    cancer = load_victim("breast-cancer", 5)
    assert sent == {p.principal for p in benign.generate(cancer, sizes, 5).scored}
    assert not sent & {p.principal for p in benign.generate(load_victim("breast-cancer", 4), sizes, 4).scored}
