"""The LLM benchmark: the fintech assistant, its benign users, its attacks, one engine each.

1. Build the assistant (corpus with canaries, n-gram model) and its benign chat traffic,
   split into a calibration half and a scored half (different principals).
2. Calibrate every detector on the calibration half's answered traffic.
3. Run the scored half alone, with enforcement: the benign false-positive rate.
4. For each attack, answer every request twice:

   - **unprotected**: straight from the assistant, the way the attack fares with no
     QueryWarden in front; this gives the attack's full success and the request at which
     each canary first leaked;
   - **protected**: merged with the scored benign traffic by time and passed through the
     engine exactly as the gateway would: a ``block`` decision refuses the request, a
     ``harden`` decision strips logprobs and logit_bias from it before the model sees it
     and redacts PII from the answer the caller reads, streamed or not.
     Whatever the attacker still got here, it got before QueryWarden acted (or despite it).

Requests are answered by the same function the server uses and recorded through the
gateway's own OpenAI adapters, so the engine sees what it would see in production. The
scored traffic of every scenario is written as a traffic file ``replay`` can read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from querywarden.bench.llm_attacks import REGISTRY, LlmAttack, Reply, Scale, leaked_canaries
from querywarden.bench.llm_benign import BenignChat, LlmRequest, LlmWorkloadSizes, generate
from querywarden.bench.llm_exchange import Answerer
from querywarden.bench.llm_report import CanaryOutcome, LlmResults, LlmScenarioResult, write_llm_results
from querywarden.bench.scenario import BenchError
from querywarden.bench.score import ScenarioWatch, benign_rates, grouped
from querywarden.bench.traffic import write_jsonl
from querywarden.calibrate import calibrate
from querywarden.config_text import toml_value
from querywarden.core.atlas import LLM_LEAKAGE
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.policy import DEFAULT_POLICY, Policy, Rule
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, InputKind, Interaction, Severity
from querywarden.defaults import default_detectors
from querywarden.gateway.enforcement.harden import HardenSpec
from querywarden.llm.assistant import MODEL_ID, Assistant, build_assistant
from querywarden.text.protected import ProtectedText

Log = Callable[[str], None]


POLICIES: dict[str, Policy] = {
    "default": DEFAULT_POLICY,
    "block-leakage": Policy(
        rules=(
            Rule(min_severity=Severity.MEDIUM, action=Action.BLOCK, techniques=(LLM_LEAKAGE,)),
            *DEFAULT_POLICY.rules,
        )
    ),
}
"""Each attack runs under both. ``default`` hardens at medium and blocks at high; for an LLM,
harden strips logprobs and logit_bias but leaves the text, so a greedy extraction goes on
until the block. ``block-leakage`` is what an operator of an assistant trained on customer
records would set: LLM data leakage (AML.T0057) at medium blocks."""


def policies_for(attack: LlmAttack) -> list[str]:
    """The policies an attack runs under: ``block-leakage`` differs from the default only on AML.T0057."""
    return [p for p in POLICIES if p == "default" or attack.technique == LLM_LEAKAGE]


@dataclass(frozen=True, slots=True)
class LlmProfile:
    name: str
    scale: Scale
    sizes: LlmWorkloadSizes
    seed: int = 4
    target_fpr: float = 0.001


LLM_PROFILES: dict[str, LlmProfile] = {
    "ci": LlmProfile("ci", "ci", LlmWorkloadSizes(principals=40)),
    "full": LlmProfile("full", "full", LlmWorkloadSizes(principals=200)),
}


def assistant_profile(assistant: Assistant | None = None) -> ModelProfile:
    """What the engine is told about the assistant: text in, text out, and, given the
    assistant, the digests of its system prompt, which its operator knows."""
    protected = ProtectedText.from_passages([assistant.system_prompt]) if assistant is not None else None
    return ModelProfile(id=MODEL_ID, input_kind=InputKind.TEXT, output_kind="text", protected=protected)


# -- the run -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Run:
    """One closed-loop pass of a stream through an engine, with enforcement."""

    interactions: list[Interaction] = field(default_factory=list)
    replies: dict[str, Reply] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    hardened: set[str] = field(default_factory=set)
    finding_events: int = 0
    """Finding events the engine emitted, flush included: what ``replay`` of the traffic file writes."""


class LlmRunner:
    def __init__(self, profile: LlmProfile, out: Path, *, log: Log | None = None) -> None:
        self.profile = profile
        self.out = out
        self.log = log or (lambda _msg: None)
        self.specs: list[DetectorSpec] = default_detectors()

    def run(self, attacks: Sequence[str] | None = None) -> LlmResults:
        started = time.perf_counter()
        p = self.profile
        names = list(attacks) if attacks is not None else list(REGISTRY)
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise BenchError(f"unknown LLM attack(s) {unknown}; known: {', '.join(REGISTRY)}")
        assistant = build_assistant(p.seed)
        profiles = {MODEL_ID: assistant_profile(assistant)}
        answerer = Answerer(assistant, profiles[MODEL_ID].protected)
        traffic = generate(assistant.corpus, p.sizes, p.seed)
        self.log(f"llm: {len(traffic.calibration)} calibration and {len(traffic.scored)} scored benign requests")
        calibration = [i for r in traffic.calibration for i in answerer.exchange(r, None)[0]]
        specs = calibrate(calibration, profiles, self.specs, target_fpr=p.target_fpr).specs
        write_config(self.out / "traffic" / "config.toml", profiles[MODEL_ID], specs)
        results = LlmResults(p.name, p.seed, [s.name for s in specs])
        benign = frozenset(traffic.principals("scored"))
        results.benign_principals, results.benign_requests = len(benign), len(traffic.scored)
        for principal in benign:
            kind = traffic.workloads[principal]
            results.workloads[kind] = results.workloads.get(kind, 0) + 1

        watch = ScenarioWatch(attackers=frozenset(), benign=benign)
        run = self.closed_loop(Engine(profiles, detectors=specs), traffic.scored, answerer, watch)
        write_jsonl(self.out / "traffic" / "benign-scored.jsonl.gz", run.interactions)
        kinds = {q: traffic.workloads[q] for q in benign}
        results.fpr = {k: v.to_dict() for k, v in benign_rates(watch.benign_worst, benign).items()}
        results.benign_flagged = {
            q: f"{kinds[q]}: {s.label} ({'; '.join(sorted(watch.benign_why.get(q, ())))})"
            for q, s in sorted(watch.benign_worst.items())
        }
        for name in names:
            attack = REGISTRY[name](assistant, p.seed, p.scale)
            for policy in policies_for(attack):
                results.scenarios.append(self.scenario(attack, traffic, answerer, profiles, specs, policy))
        results.seconds = time.perf_counter() - started
        return results

    def closed_loop(
        self, engine: Engine, stream: Iterable[LlmRequest], answerer: Answerer, watch: ScenarioWatch
    ) -> _Run:
        """Send every request through the engine's current decision, as the gateway does."""
        run = _Run()
        sent = 0
        for req in stream:
            if req.principal in watch.attackers:
                sent += 1
            decision = engine.decision_for(req.principal)
            action = decision.enforced_action
            if action is Action.BLOCK:
                run.refused.add(req.id)
                run.replies[req.id] = Reply("", refused=True)
                continue
            spec = None
            if action is Action.HARDEN:
                spec = HardenSpec.parse(decision.params)
                run.hardened.add(req.id)
            items, reply = answerer.exchange(req, spec, guarded=True)
            run.replies[req.id] = reply
            for it in items:
                run.interactions.append(it)
                step = engine.process(it)
                run.finding_events += len(step.findings)
                for f in step.findings:
                    actors = {a for q in watch.attackers if (a := engine.actors.actor_of(q)) is not None}
                    watch.observe(f, sent, actors)
        for f in engine.flush():
            run.finding_events += 1
            watch.observe(f, sent, set())
        return run

    def scenario(
        self,
        attack: LlmAttack,
        traffic: BenignChat,
        answerer: Answerer,
        profiles: dict[str, ModelProfile],
        specs: list[DetectorSpec],
        policy: str = "default",
    ) -> LlmScenarioResult:
        assistant = answerer.assistant
        unprotected = [answerer.exchange(r, None)[1] for r in attack.requests]
        first_leak: dict[str, int] = {}
        for i, reply in enumerate(unprotected, start=1):
            for cid in leaked_canaries(assistant, reply):
                first_leak.setdefault(cid, i)

        end = attack.requests[-1].ts + 3600 if attack.requests else 0.0
        background = [r for r in traffic.scored if r.ts <= end]
        stream = sorted([*background, *attack.requests], key=lambda r: (r.ts, r.id))
        benign = frozenset(traffic.principals("scored"))
        watch = ScenarioWatch(attackers=attack.principals, benign=benign)
        t0 = time.perf_counter()
        engine = Engine(profiles, detectors=specs, policy=POLICIES[policy])
        run = self.closed_loop(engine, stream, answerer, watch)
        seconds = time.perf_counter() - t0
        protected = [run.replies[r.id] for r in attack.requests]
        leaked_protected = {cid for reply in protected for cid in leaked_canaries(assistant, reply)}
        file = self.out / "traffic" / f"{attack.name}--{policy}.jsonl.gz"
        write_jsonl(file, run.interactions)

        det = watch.detection
        k = det.attack_queries if det else None
        start = attack.requests[0].ts if attack.requests else 0.0
        is_grouped, largest = grouped({q: engine.actors.actor_of(q) for q in attack.principals})
        result = LlmScenarioResult(
            attack=attack.name,
            policy=policy,
            technique=attack.technique,
            description=attack.description,
            principals=len(attack.principals),
            budget=attack.budget,
            detected=det is not None,
            queries_to_detection=k,
            share_of_budget=None if k is None else round(k / attack.budget, 4),
            seconds_to_detection=None if det is None else round(det.ts - start, 3),
            detection_technique=det.technique if det else None,
            detection_severity=det.severity.label if det else None,
            detection_detectors=det.detectors if det else (),
            technique_match=bool(det and det.technique == attack.technique),
            grouped=is_grouped,
            largest_group=largest,
            success_metric=attack.primary,
            success_unprotected=round(attack.scorer(unprotected)[attack.primary], 4),
            success_at_detection=None if k is None else round(attack.scorer(unprotected[:k])[attack.primary], 4),
            success_protected=round(attack.scorer(protected)[attack.primary], 4),
            refused=sum(1 for r in attack.requests if r.id in run.refused),
            hardened=sum(1 for r in attack.requests if r.id in run.hardened),
            canaries=[
                CanaryOutcome(
                    c.customer_id,
                    (at := first_leak.get(c.customer_id)),
                    at is not None and (k is None or at <= k),
                    c.customer_id in leaked_protected,
                )
                for c in assistant.corpus.canaries
            ],
            benign_flagged_medium=sum(1 for s in watch.benign_worst.values() if s >= Severity.MEDIUM),
            benign_refused=sum(1 for r in background if r.id in run.refused),
            finding_events=run.finding_events,
            engine_seconds=round(seconds, 3),
            traffic_file=str(file.relative_to(self.out)),
        )
        where = f"detected after {k}/{attack.budget} requests" if det else f"not detected in {attack.budget}"
        self.log(
            f"llm: {attack.name} ({policy} policy): {where}; "
            f"{attack.primary} {result.success_unprotected} unprotected, "
            f"{result.success_protected} protected; canaries leaked {result.canaries_leaked_unprotected} -> "
            f"{result.canaries_leaked_protected}"
        )
        return result


def write_config(path: Path, profile: ModelProfile, specs: Sequence[DetectorSpec]) -> Path:
    """The config ``querywarden replay FILE --config config.toml`` needs to rebuild the engine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"[models.{toml_value(profile.id)}]",
        f"input_kind = {toml_value(profile.input_kind.value)}",
        f"output_kind = {toml_value(profile.output_kind)}",
    ]
    if profile.protected is not None:  # digests only: the config never holds the system prompt's text
        digests = path.with_name("system-prompt-digests.json")
        digests.write_text(profile.protected.to_json() + "\n", encoding="utf-8")
        lines.append(f"protected_text = {toml_value(digests.name)}")
    for spec in specs:
        lines += ["", f"[detectors.{spec.name}]", *(f"{k} = {toml_value(v)}" for k, v in spec.params.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_llm_bench(
    profile: str,
    out: Path,
    *,
    log: Log | None = None,
    attacks: Sequence[str] | None = None,
    seed: int | None = None,
) -> LlmResults:
    """Run the LLM benchmark at ``profile`` (``ci`` or ``full``) and write its results under ``out``.

    ``seed`` replaces the profile's own seed when given.
    """
    chosen = LLM_PROFILES[profile] if seed is None else replace(LLM_PROFILES[profile], seed=seed)
    results = LlmRunner(chosen, out, log=log).run(attacks)
    write_llm_results(results, out)
    return results


__all__ = ["LLM_PROFILES", "POLICIES", "LlmProfile", "LlmRunner", "assistant_profile", "run_llm_bench"]
