"""The ci benchmark profile, run as a user runs it, and held to floors from a measured run.

``querywarden bench --profile ci`` runs once for the module (a few minutes). The floors
below are not hopes: each was read from a measured run (the values are in the comments)
and set a little below it, so a change that makes detection worse, or benign customers
noisier, fails here. When a detector improves, raise the floor to the new measurement.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from querywarden.bench.runner import replayed_digest
from querywarden.bench.scenario import attack_names
from querywarden.bench.variants import VARIANTS

# the run takes about 90 s of CPU; on a crowded machine its wall time can pass the suite's
# default per-test timeout, which would measure the neighbours rather than the benchmark
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CLI = Path(sys.executable).with_name("querywarden")


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench-ci")
    done = subprocess.run(
        [str(CLI), "bench", "--profile", "ci", "--suite", "classifier", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out, json.loads((out / "results.json").read_text())


def scenarios(results: dict[str, Any], variant: str | None = None) -> list[dict[str, Any]]:
    return [s for s in results["scenarios"] if variant is None or s["variant"] == variant]


def test_ci_profile_runs_in_under_five_minutes(ci: tuple[Path, dict[str, Any]]) -> None:
    _, results = ci
    assert results["profile"] == "ci"
    # CPU time, because wall time on a shared machine measures the neighbours too; the
    # benchmark runs in one process, so on 2 free cores its wall time is about its CPU time
    assert results["cpu_seconds"] < 300


def test_writes_results_table_plot_and_replayable_traffic(ci: tuple[Path, dict[str, Any]]) -> None:
    out, results = ci
    assert (out / "results.md").read_text().startswith("# QueryWarden red-team benchmark")
    assert (out / "detection-delay.png").read_bytes()[:4] == b"\x89PNG"
    for s in scenarios(results):
        assert (out / s["traffic_file"]).stat().st_size > 0
    for v in results["victims"]:
        folder = out / "traffic" / v["victim"]
        assert (folder / "config.toml").exists()
        assert (folder / "benign-calibration.jsonl").exists() and (folder / "benign-scored.jsonl").exists()


def test_every_registered_attack_ran_in_every_variant(ci: tuple[Path, dict[str, Any]]) -> None:
    _, results = ci
    assert results["failures"] == []
    ran = {(s["attack"], s["variant"]) for s in scenarios(results)}
    assert ran == {(a, v) for a in attack_names() for v in VARIANTS}


def test_thresholds_were_calibrated_on_the_other_half(ci: tuple[Path, dict[str, Any]]) -> None:
    _, results = ci
    for v in results["victims"]:
        assert v["calibrated"] and v["thresholds"]
        assert v["calibration_principals"] >= 20 and v["scored_principals"] >= 20


def test_replay_of_a_scenario_file_gives_the_counted_findings(ci: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, results = ci
    scen = max(scenarios(results, "sybil"), key=lambda s: s["finding_events"])
    assert scen["finding_events"] > 0
    file = out / scen["traffic_file"]
    findings = tmp_path / "findings.jsonl"
    argv = [str(CLI), "replay", str(file), "--config", str(file.parent / "config.toml"), "--findings", str(findings)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert replayed_digest(findings) == (scen["finding_events"], scen["findings_digest"])


# Measured with `querywarden bench --profile ci --suite classifier` at commit 4371192
# (2026-11-28, 16 detectors registered): 37 s of CPU (56 s wall); detected at >= medium:
# single 9/13, sybil 7/13, low-and-slow 9/13; iterative attacks (hopskipjump, boundary, miface,
# mia-labelonly) 4/4 in every variant, median share of budget 0.23% (single, low-and-slow) and
# 1.74% (sybil); Sybil attackers grouped into one actor 4/13; benign principals flagged (140
# scored): >= low 1, >= medium 0, >= high 0 (the same counting every attack scenario).
# Sybil floors re-measured at commit 2890632 (2026-12-02, explicit actor merges and sweep
# linkage): sybil detected 10/13, iterative 4/4 at a median share of 0.37%, grouped 5/13
# (Boundary, HopSkipJump, FEE, label-only MIA, Fredrikson); benign >= medium 0 of 140.
# Re-measured at commit a756046 (2026-12-02, sign steps, walk naming, campaign and copy
# linkage): detected 10/13 in every variant, 29/30 under the attack's own technique, grouped
# 7/13, benign >= medium 0 of 140, >= low 10. Floors sit one below what was measured.
# Re-measured at commit 53bf3d6 (2026-12-02, far-cohort linkage, label flips under
# probabilities, line-search naming, drift): detected 10/13 in every variant, 29/30 named
# right, grouped 8/13, benign >= medium 0 of 140, >= low 10.
DETECTED_FLOOR = {"single": 9, "sybil": 9, "low-and-slow": 9}
ITERATIVE_FLOOR = {"single": 4, "sybil": 4, "low-and-slow": 4}
ITERATIVE_MEDIAN_SHARE_CEILING = {"single": 0.01, "sybil": 0.01, "low-and-slow": 0.01}
GROUPED_FLOOR = 7
# (2026-12-02, the same profile): detections that name the attack's own technique 25/30
# (functionally-equivalent extraction named extraction in every variant; the misses are
# HopSkipJump read as inversion twice and label-only membership inference read as boundary
# probing by its first 24 queries, a single walk).
TECHNIQUE_FLOOR = 28
BENIGN_CEILING = {"medium": 2, "high": 1}


@pytest.mark.parametrize("variant", VARIANTS)
def test_detection_holds_its_measured_floor(ci: tuple[Path, dict[str, Any]], variant: str) -> None:
    _, results = ci
    chosen = scenarios(results, variant)
    assert sum(s["detected"] for s in chosen) >= DETECTED_FLOOR[variant]
    iterative = [s for s in chosen if s["family"] == "iterative"]
    assert sum(s["detected"] for s in iterative) >= ITERATIVE_FLOOR[variant]
    shares = [s["share_of_budget"] for s in iterative if s["share_of_budget"] is not None]
    assert shares and statistics.median(shares) <= ITERATIVE_MEDIAN_SHARE_CEILING[variant]
    for s in chosen:
        if s["detected"]:
            assert 0 < s["queries_to_detection"] <= s["budget"]
            assert s["success_at_detection"] is not None


def test_detections_name_the_attack_technique_as_often_as_measured(ci: tuple[Path, dict[str, Any]]) -> None:
    _, results = ci
    detected = [s for s in scenarios(results) if s["detected"]]
    assert sum(s["technique_match"] for s in detected) >= TECHNIQUE_FLOOR
    fee = [s for s in detected if s["attack"] == "fee"]
    assert fee and all(s["detection_technique"] == "AML.T0024.002" for s in fee)


def test_sybil_attackers_are_grouped_into_one_actor_as_often_as_measured(ci: tuple[Path, dict[str, Any]]) -> None:
    _, results = ci
    sybil = scenarios(results, "sybil")
    # the keys an attack used: 20, or fewer when it sent fewer requests than keys
    assert all(1 <= s["principals"] <= 20 for s in sybil) and max(s["principals"] for s in sybil) == 20
    assert sum(s["grouped"] for s in sybil) >= GROUPED_FLOOR


def test_benign_customers_stay_under_the_measured_false_positive_ceiling(ci: tuple[Path, dict[str, Any]]) -> None:
    _, results = ci
    for key in ("benign_fpr", "benign_fpr_with_attacks"):
        rates = results[key]
        assert rates["medium"]["total"] >= 100
        for severity, ceiling in BENIGN_CEILING.items():
            assert rates[severity]["hits"] <= ceiling, (key, severity, rates[severity])
