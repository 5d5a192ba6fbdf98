"""The benchmark run: victims, benign customers, attacks in three variants, one engine each.

For every victim the attacks target:

1. generate its benign customers and split them into a calibration half and a scored half
   (different principals);
2. calibrate every detector's thresholds on the calibration half only, with
   :func:`querywarden.calibrate.calibrate` at the profile's target false-positive rate;
3. run the scored half alone through the engine: the benign false-positive rate;
4. run each attack once, send it as each variant, interleave it with the scored half by
   time, and run that through a fresh engine with the calibrated detectors.

Nothing is tuned to a result: the thresholds are fixed before any attack runs, seeds are
fixed, and every traffic file is written with a config (profile, reference sample and the
calibrated parameters) so ``querywarden replay FILE --config CONFIG`` gives the same
findings. Fast variants start on day 4; the engine state at that moment is the same for
all of them, so it is computed once and restored from a snapshot (the traffic file still
holds the whole timeline from day 0), and their scenario ends one day after the attack's
last request. Low-and-slow scenarios run the whole 14 days.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from querywarden.bench import benign as benign_mod
from querywarden.bench.benign import DAY, BenignTraffic, WorkloadSizes
from querywarden.bench.calibration import threshold_rows, write_config
from querywarden.bench.scenario import (
    AttackRun,
    Scale,
    Victim,
    attack_names,
    attack_spec,
    holdout_attack_names,
    run_attack,
)
from querywarden.bench.score import (
    Rate,
    ScenarioResult,
    ScenarioWatch,
    VictimResult,
    benign_rates,
    grouped,
    pooled,
)
from querywarden.bench.traffic import interactions, merge, sort_requests, write_jsonl
from querywarden.bench.variants import ATTACK_START, VARIANTS, build
from querywarden.bench.victims import load_victim
from querywarden.calibrate import calibrate
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.records import Finding, Interaction, Severity
from querywarden.defaults import default_detectors

Log = Callable[[str], None]

TAIL = DAY
"""How long a fast variant's scenario runs on after the attack's last request."""


@dataclass(frozen=True, slots=True)
class BenchProfile:
    """How big a benchmark run is. ``ci`` fits the test suite; ``full`` is the published run."""

    name: str
    scale: Scale
    sizes: WorkloadSizes
    seed: int = 4
    target_fpr: float = 0.001
    """Calibration target: the ``querywarden calibrate`` default."""
    sybil_principals: int = 20
    max_batch: int = 100
    variants: tuple[str, ...] = VARIANTS
    holdout: bool = False
    """Run the held-out attacks (other victims, other settings) instead of the registered ones."""


PROFILES: dict[str, BenchProfile] = {
    "ci": BenchProfile("ci", "ci", WorkloadSizes(principals=56, batch_jobs=2, batch_rows=2_000)),
    "full": BenchProfile("full", "full", WorkloadSizes(principals=260, batch_jobs=2, batch_rows=20_000)),
    # attacks at ci scale against held-out victims and with other settings; the usual
    # customers plus four of each held-out habit, scored and never calibrated on
    "holdout": BenchProfile(
        "holdout",
        "ci",
        WorkloadSizes(principals=56, batch_jobs=2, batch_rows=2_000, held_out_habits=4),
        holdout=True,
    ),
}


@dataclass(slots=True)
class BenchResults:
    profile: str
    seed: int
    target_fpr: float
    detectors: list[str]
    victims: list[VictimResult] = field(default_factory=list)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    """Attacks that raised: reported, never hidden, and the run goes on."""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of this process: on a shared machine, wall time also measures the neighbours."""

    def to_dict(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "seed": self.seed,
            "target_fpr": self.target_fpr,
            "detectors": list(self.detectors),
            "benign_fpr": {k: v.to_dict() for k, v in pooled(self.victims, "fpr").items()},
            "benign_fpr_with_attacks": {k: v.to_dict() for k, v in pooled(self.victims, "fpr_with_attacks").items()},
            "victims": [v.to_dict() for v in self.victims],
            "scenarios": [s.to_dict() for s in self.scenarios],
            "failures": list(self.failures),
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "machine": platform.machine(),
            },
        }


# -- driving the engine -------------------------------------------------------------------
@dataclass(slots=True)
class _Trace:
    """Every finding event of a run, folded into a digest a replay must reproduce."""

    digest: hashlib.blake2b = field(default_factory=lambda: hashlib.blake2b(digest_size=12))
    events: int = 0

    def add(self, f: Finding) -> None:
        self.add_fields(f.finding_id, f.status, f.severity.label, f.principals)

    def add_fields(self, finding_id: str, status: str, severity: str, principals: Sequence[str]) -> None:
        self.digest.update(f"{finding_id}|{status}|{severity}|{','.join(principals)}\n".encode())
        self.events += 1

    def copy(self) -> _Trace:
        return _Trace(self.digest.copy(), self.events)


def replayed_digest(findings_jsonl: Path) -> tuple[int, str]:
    """The event count and digest of a findings file written by ``querywarden replay``.

    Equal to a scenario's ``finding_events`` and ``findings_digest`` when the replay of its
    traffic file found exactly what the benchmark counted.
    """
    trace = _Trace()
    with findings_jsonl.open("rb") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                trace.add_fields(rec["finding_id"], rec["status"], rec["severity"], rec["principals"])
    return trace.events, trace.digest.hexdigest()


def drive(
    engine: Engine,
    stream: Iterable[Interaction],
    watch: ScenarioWatch,
    trace: _Trace,
    *,
    stop_when_caught: bool = False,
) -> tuple[int, int]:
    """Run ``stream`` through ``engine``, feeding every finding event to ``watch`` and ``trace``.

    With ``stop_when_caught`` the run ends at the interaction after which the attacker is
    caught: detected at medium or above, with all of its principals in one actor. From
    then on the policy hardens or blocks it, so further attack traffic measures nothing.
    Returns the attack interactions seen and the interactions processed.
    """
    attackers = watch.attackers
    attack_seen = processed = 0
    for it in stream:
        processed += 1
        if it.principal in attackers:
            attack_seen += 1
        step = engine.process(it)
        if step.findings:
            actors = _actors(engine, attackers)
            for f in step.findings:
                watch.observe(f, attack_seen, actors)
                trace.add(f)
        caught = stop_when_caught and watch.detection is not None and bool(step.findings or step.signals)
        if caught and grouped({q: engine.actors.actor_of(q) for q in attackers})[0]:
            break
    return attack_seen, processed


def finish(engine: Engine, watch: ScenarioWatch, trace: _Trace, attack_seen: int) -> None:
    """Close what is stale at the end of the stream, as ``replay`` does."""
    actors = _actors(engine, watch.attackers)
    for f in engine.flush():
        watch.observe(f, attack_seen, actors)
        trace.add(f)


def _actors(engine: Engine, principals: Iterable[str]) -> set[str]:
    return {a for p in principals if (a := engine.actors.actor_of(p)) is not None}


# -- per victim ---------------------------------------------------------------------------
@dataclass(slots=True)
class _Background:
    """A victim's scored benign traffic and the engine state at the fast attacks' start."""

    victim: Victim
    specs: list[DetectorSpec]
    scored: list[Interaction]
    prefix_len: int
    snapshot: bytes
    prefix_worst: dict[str, Severity]
    prefix_trace: _Trace
    benign: frozenset[str]


class Runner:
    def __init__(self, profile: BenchProfile, out: Path, *, log: Log | None = None) -> None:
        self.profile = profile
        self.out = out
        self.log = log or (lambda _msg: None)
        self.specs = default_detectors()

    def run(self, attacks: Sequence[str] | None = None) -> BenchResults:
        started, cpu = time.perf_counter(), time.process_time()
        default = holdout_attack_names() if self.profile.holdout else attack_names()
        names = list(attacks) if attacks is not None else default
        by_victim: dict[str, list[str]] = {}
        for name in names:
            by_victim.setdefault(attack_spec(name).victim, []).append(name)
        results = BenchResults(
            self.profile.name, self.profile.seed, self.profile.target_fpr, [s.name for s in self.specs]
        )
        for victim_name, victim_attacks in by_victim.items():
            self.run_victim(victim_name, victim_attacks, results)
        results.seconds = time.perf_counter() - started
        results.cpu_seconds = time.process_time() - cpu
        return results

    def run_victim(self, name: str, attacks: list[str], results: BenchResults) -> None:
        p = self.profile
        victim = load_victim(name, p.seed)
        self.log(f"{name}: benign customers")
        traffic = benign_mod.generate(victim, p.sizes, p.seed)
        background, outcome = self.benign(victim, traffic)
        collected: list[dict[str, Severity]] = [outcome.flagged_worst]
        for attack in attacks:
            self.log(f"{name}: {attack}")
            t0 = time.perf_counter()
            try:
                run = run_attack(attack, victim, p.seed, p.scale)
            except Exception as exc:  # one attack's crash must not hide every other result
                results.failures.append({"victim": name, "attack": attack, "error": f"{type(exc).__name__}: {exc}"})
                self.log(f"{name}: {attack} failed: {exc}")
                continue
            self.log(f"{name}: {attack} sent {run.budget} queries in {time.perf_counter() - t0:.1f}s")
            cache: dict[int, float] = {}
            for variant in p.variants:
                scen, worst = self.scenario(background, run, variant, cache)
                results.scenarios.append(scen)
                collected.append(worst)
        worst_any: dict[str, Severity] = {}
        for worst in collected:
            for principal, sev in worst.items():
                worst_any[principal] = max(sev, worst_any.get(principal, Severity.INFO))
        results.victims.append(outcome.result(benign_rates(worst_any, background.benign)))

    # -- benign -----------------------------------------------------------------------------
    def benign(self, victim: Victim, traffic: BenignTraffic) -> tuple[_Background, _BenignOutcome]:
        p = self.profile
        folder = self.out / "traffic" / victim.name
        profiles = {victim.profile.id: victim.profile}
        calibration = interactions(sort_requests(traffic.requests("calibration")), victim)
        write_jsonl(folder / "benign-calibration.jsonl", calibration)
        cal = calibrate(calibration, profiles, self.specs, target_fpr=p.target_fpr)
        specs = cal.specs
        write_config(folder, victim, specs)
        scored = interactions(sort_requests(traffic.requests("scored")), victim)
        write_jsonl(folder / "benign-scored.jsonl", scored)
        benign = frozenset(b.principal for b in traffic.scored)
        prefix_len = next((i for i, it in enumerate(scored) if it.ts >= ATTACK_START), len(scored))

        engine = Engine(profiles, detectors=specs)
        watch = ScenarioWatch(attackers=frozenset(), benign=benign)
        trace = _Trace()
        t0 = time.perf_counter()
        drive(engine, scored[:prefix_len], watch, trace)
        snapshot = engine.snapshot()
        prefix_worst, prefix_trace = dict(watch.benign_worst), trace.copy()
        drive(engine, scored[prefix_len:], watch, trace)
        finish(engine, watch, trace, 0)
        seconds = time.perf_counter() - t0
        workloads: dict[str, int] = {}
        kind_of = {b.principal: b.workload for b in traffic.scored}
        for b in traffic.scored:
            workloads[b.workload] = workloads.get(b.workload, 0) + 1
        self.log(
            f"{victim.name}: {len(scored)} scored benign interactions, {len(watch.benign_worst)} principals "
            f"with a finding, {len(scored) / max(seconds, 1e-9):,.0f} interactions/s"
        )
        outcome = _BenignOutcome(
            victim=victim,
            calibration_principals=len(traffic.calibration),
            scored_principals=len(benign),
            scored_interactions=len(scored),
            workloads=workloads,
            flagged_worst=dict(watch.benign_worst),
            flagged_why={q: sorted(w) for q, w in watch.benign_why.items()},
            kind_of=kind_of,
            thresholds=threshold_rows(cal),
            engine_seconds=seconds,
            finding_events=trace.events,
            findings_digest=trace.digest.hexdigest(),
        )
        background = _Background(victim, specs, scored, prefix_len, snapshot, prefix_worst, prefix_trace, benign)
        return background, outcome

    # -- one attack variant ---------------------------------------------------------------
    def scenario(
        self, bg: _Background, run: AttackRun, variant: str, cache: dict[int, float]
    ) -> tuple[ScenarioResult, dict[str, Severity]]:
        p = self.profile
        victim = bg.victim
        sent = build(run, variant, p.seed, sybil_principals=p.sybil_principals, max_batch=p.max_batch)
        attack_stream = interactions(sent.requests, victim)
        attackers = frozenset(sent.principals)
        background = bg.scored
        fast = sent.start_ts >= ATTACK_START and bg.prefix_len > 0
        if fast and sent.requests:
            # a fast attack's scenario ends a day after its last request: what follows is the
            # benign-only timeline, already scored, and would only cost time
            end = sent.requests[-1].ts + TAIL
            background = background[: bisect.bisect_right([i.ts for i in background], end)]
        full = merge(background, attack_stream)

        engine = Engine({victim.profile.id: victim.profile}, detectors=bg.specs)
        watch = ScenarioWatch(attackers=attackers, benign=bg.benign)
        t0 = time.perf_counter()
        if fast:
            engine.restore(bg.snapshot)
            watch.benign_worst.update(bg.prefix_worst)
            trace = bg.prefix_trace.copy()
            stream: list[Interaction] = full[bg.prefix_len :]
        else:
            trace = _Trace()
            stream = full
        seen, processed = drive(engine, stream, watch, trace, stop_when_caught=True)
        finish(engine, watch, trace, seen)
        seconds = time.perf_counter() - t0
        # the traffic file holds exactly what the engine saw, so replay ends where this run did
        end = (bg.prefix_len if fast else 0) + processed
        file = self.out / "traffic" / victim.name / f"{run.name}--{variant}.jsonl.gz"
        write_jsonl(file, full[:end])

        actor_of = {q: engine.actors.actor_of(q) for q in sent.principals}
        is_grouped, largest = grouped(actor_of)
        det = watch.detection

        def success(k: int) -> float:
            if k not in cache:
                cache[k] = float(run.success_at(k)[run.primary])
            return cache[k]

        at_end = success(run.budget)
        at_detection = success(det.attack_queries) if det is not None else None
        start_ts = sent.start_ts
        result = ScenarioResult(
            victim=victim.name,
            attack=run.name,
            technique=run.technique,
            family=run.family,
            variant=variant,
            budget=run.budget,
            principals=len(sent.principals),
            detected=det is not None,
            queries_to_detection=det.attack_queries if det else None,
            share_of_budget=round(det.attack_queries / run.budget, 6) if det and run.budget else None,
            seconds_to_detection=round(det.ts - start_ts, 3) if det else None,
            detection_technique=det.technique if det else None,
            detection_severity=det.severity.label if det else None,
            detection_detectors=det.detectors if det else (),
            technique_match=bool(det and det.technique == run.technique),
            success_metric=run.primary,
            success_at_detection=None if at_detection is None else round(at_detection, 4),
            success_at_end=round(at_end, 4),
            grouped=is_grouped,
            largest_group=largest,
            benign_flagged_medium=sum(1 for s in watch.benign_worst.values() if s >= Severity.MEDIUM),
            interactions=end,
            caught_before_end=end < len(full),
            finding_events=trace.events,
            findings_digest=trace.digest.hexdigest(),
            engine_seconds=round(seconds, 3),
            traffic_file=str(file.relative_to(self.out)),
        )
        where = f"after {det.attack_queries}/{run.budget} queries" if det else f"not detected in {run.budget}"
        self.log(f"  {variant}: {where} ({seconds:.1f}s engine)")
        return result, dict(watch.benign_worst)


@dataclass(slots=True)
class _BenignOutcome:
    victim: Victim
    calibration_principals: int
    scored_principals: int
    scored_interactions: int
    workloads: dict[str, int]
    flagged_worst: dict[str, Severity]
    flagged_why: dict[str, list[str]]
    kind_of: dict[str, str]
    thresholds: list[dict[str, object]]
    engine_seconds: float
    finding_events: int
    findings_digest: str

    def result(self, with_attacks: dict[str, Rate]) -> VictimResult:
        return VictimResult(
            victim=self.victim.name,
            description=self.victim.description,
            calibration_principals=self.calibration_principals,
            scored_principals=self.scored_principals,
            scored_interactions=self.scored_interactions,
            workloads=self.workloads,
            fpr=benign_rates(self.flagged_worst, self.kind_of),
            fpr_with_attacks=with_attacks,
            flagged={
                q: f"{self.kind_of[q]}: {self.flagged_worst[q].label} ({'; '.join(self.flagged_why.get(q, []))})"
                for q in sorted(self.flagged_worst)
            },
            calibrated=bool(self.thresholds),
            thresholds=self.thresholds,
            engine_seconds=self.engine_seconds,
            finding_events=self.finding_events,
            findings_digest=self.findings_digest,
            by_workload=self.by_workload(),
        )

    def by_workload(self) -> dict[str, dict[str, int]]:
        out = {k: {"principals": n, "low": 0, "medium": 0} for k, n in sorted(self.workloads.items())}
        for principal, sev in self.flagged_worst.items():
            row = out[self.kind_of[principal]]
            row["low"] += sev >= Severity.LOW
            row["medium"] += sev >= Severity.MEDIUM
        return out
