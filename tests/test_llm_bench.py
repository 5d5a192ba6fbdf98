"""The LLM benchmark: benign chat traffic, the attacks, their scorers and the ci run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from querywarden.bench.llm_attacks import (
    REGISTRY,
    LlmAttack,
    Reply,
    canary_scorer,
    divergence,
    enumeration,
    enumeration_split,
    enumeration_sybil,
    llm_attack_names,
    payout_readback,
    record_completion,
    verbatim_prefix,
)
from querywarden.bench.llm_benign import LlmRequest, LlmWorkloadSizes, generate
from querywarden.bench.llm_exchange import Answerer, reply_of
from querywarden.bench.llm_report import LlmResults, markdown
from querywarden.bench.llm_runner import LLM_PROFILES, POLICIES, LlmRunner, run_llm_bench
from querywarden.bench.scenario import BenchError
from querywarden.core.atlas import TECHNIQUES
from querywarden.detectors.llm_extraction import patterns
from querywarden.gateway.enforcement.harden import HardenSpec
from querywarden.llm.assistant import Assistant, build_assistant
from querywarden.llm.corpus import SYSTEM_SECRET
from querywarden.llm.server import answer

LEAKAGE = (enumeration, enumeration_sybil, record_completion, verbatim_prefix, divergence)
"""The AML.T0057 attacks: they also run under the block-leakage policy."""


@pytest.fixture(scope="module")
def assistant() -> Assistant:
    return build_assistant(4)


@pytest.fixture(scope="module")
def attacks(assistant: Assistant) -> dict[str, LlmAttack]:
    return {name: REGISTRY[name](assistant, 4, "ci") for name in llm_attack_names()}


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlmResults, Path]:
    out = tmp_path_factory.mktemp("llm-bench")
    return run_llm_bench("ci", out), out


# -- benign --------------------------------------------------------------------------------
def test_benign_chat_is_reproducible_diverse_and_split_by_principal(assistant: Assistant) -> None:
    a = generate(assistant.corpus, LlmWorkloadSizes(principals=40), 1)
    b = generate(assistant.corpus, LlmWorkloadSizes(principals=40), 1)
    assert [(r.principal, r.body) for r in a.scored] == [(r.principal, r.body) for r in b.scored]
    assert not a.principals("calibration") & a.principals("scored")
    assert set(a.workloads.values()) == {"faq", "account", "retry", "agent_desk", "confidence_app"}
    chats = [r.body["messages"][-1]["content"] for r in a.scored if r.endpoint == "chat"]
    assert len(set(chats)) > 0.6 * len(chats)  # varied phrasing ...
    lengths = [len(c) for c in chats]
    assert max(lengths) > 3 * min(lengths)  # ... and lengths
    streamed = sum(1 for r in a.scored if r.body.get("stream"))
    assert 0.2 < streamed / len(a.scored) < 0.8
    assert any(len(r.body.get("messages", [])) > 2 for r in a.scored)  # multi-turn histories


def test_benign_retries_resend_identical_bodies_within_seconds(assistant: Assistant) -> None:
    traffic = generate(assistant.corpus, LlmWorkloadSizes(principals=40), 2)
    retries = [r for r in traffic.scored if r.workload == "retry"]
    by_body = Counter((r.principal, json.dumps(r.body, sort_keys=True)) for r in retries)
    assert max(by_body.values()) >= 2


def test_several_customers_ask_the_same_questions(assistant: Assistant) -> None:
    traffic = generate(assistant.corpus, LlmWorkloadSizes(principals=40), 3)
    askers: dict[str, set[str]] = {}
    for r in traffic.scored:
        if r.workload == "faq":
            core = r.body["messages"][-1]["content"].lower().strip("?!. ")
            askers.setdefault(core.split(", ")[-1], set()).add(r.principal)
    assert max(len(p) for p in askers.values()) >= 2


def test_every_benign_request_is_one_the_server_accepts(assistant: Assistant) -> None:
    traffic = generate(assistant.corpus, LlmWorkloadSizes(principals=20), 5)
    for r in traffic.scored[:150]:
        answer(assistant, r.endpoint, r.body)


# -- attacks -------------------------------------------------------------------------------
def test_attacks_are_valid_requests_with_valid_techniques(attacks: dict[str, LlmAttack], assistant: Assistant) -> None:
    for attack in attacks.values():
        assert attack.technique in TECHNIQUES
        assert attack.budget > 0
        ts = [r.ts for r in attack.requests]
        assert ts == sorted(ts)
        answer(assistant, attack.requests[0].endpoint, attack.requests[0].body)
    assert len(attacks["distillation"].principals) == 8
    assert len(attacks["enumeration-sybil"].principals) == 10
    assert all(len(a.principals) == 1 for n, a in attacks.items() if n not in ("distillation", "enumeration-sybil"))
    assert all(r.body["stream"] for r in attacks["record-completion"].requests)
    # the Sybil variant sends the very same prompts as the single-key one, only spread out
    prompts = [r.body["prompt"] for r in attacks["enumeration"].requests]
    assert [r.body["prompt"] for r in attacks["enumeration-sybil"].requests] == prompts
    sweep = attacks["logit-bias-sweep"].requests
    assert len({json.dumps(r.body["logit_bias"], sort_keys=True) for r in sweep}) == len(sweep)


def test_attacks_really_work_against_the_unprotected_assistant(
    attacks: dict[str, LlmAttack], assistant: Assistant
) -> None:
    answerer = Answerer(assistant)
    success = {}
    for name, attack in attacks.items():
        replies = [answerer.exchange(r, None)[1] for r in attack.requests]
        success[name] = attack.scorer(replies)[attack.primary]
    assert success["enumeration"] == success["enumeration-sybil"] == 1.0  # every canary on the list comes out
    assert success["record-completion"] > 0  # the canaries among the first 60 names, through chat
    assert success["verbatim-prefix"] > 0.5
    assert success["system-prompt"] == 1.0
    assert success["logit-bias-sweep"] > 0.1
    assert success["distillation"] > 0.5


def test_canary_scorer_counts_prefixes_and_ignores_refusals(assistant: Assistant) -> None:
    score = canary_scorer(assistant)
    c0, c1 = assistant.corpus.canaries[:2]
    replies = [Reply("nothing here"), Reply(f"IBAN {c0.iban}"), Reply("", (c1.phone,)), Reply(c1.iban, refused=True)]
    n = len(assistant.corpus.canaries)
    assert [score(replies[:k])["canaries_leaked"] for k in range(5)] == [0, 0, 1 / n, 2 / n, 2 / n]


def test_hardening_strips_what_the_logit_bias_sweep_harvests(
    attacks: dict[str, LlmAttack], assistant: Assistant
) -> None:
    answerer = Answerer(assistant)
    req = attacks["logit-bias-sweep"].requests[0]
    _, plain = answerer.exchange(req, None)
    items, hardened = answerer.exchange(req, HardenSpec.parse({}))
    assert plain.logprob_tokens and not hardened.logprob_tokens
    assert items[0].params["logit_bias"]  # the engine still sees what the caller asked for


@pytest.mark.parametrize("stream", [False, True])
def test_hardened_answers_reach_the_caller_redacted_and_the_engine_whole(assistant: Assistant, stream: bool) -> None:
    canary = assistant.corpus.canaries[0]
    body = {"prompt": canary.prefix, "temperature": 0, "max_tokens": 6, "stream": stream}
    req = LlmRequest("r", 0.0, "p", "completions", body, "192.0.2.1", "ua")
    answerer = Answerer(assistant)
    _, plain = answerer.exchange(req, None)
    (item,), hardened = answerer.exchange(req, HardenSpec.parse({}))
    assert canary.iban in plain.text
    assert canary.iban not in hardened.text and "[REDACTED:iban]" in hardened.text
    assert item.output is not None and canary.iban in (item.output.text or "")


def test_exchanges_record_streamed_and_plain_answers_alike(assistant: Assistant) -> None:
    answerer = Answerer(assistant)
    body = {"messages": [{"role": "user", "content": "I lost my card"}], "temperature": 0}
    plain = LlmRequest("a", 0.0, "p", "chat", body, "192.0.2.1", "ua")
    streamed = LlmRequest("b", 0.0, "p", "chat", {**body, "stream": True}, "192.0.2.1", "ua")
    (i1,), r1 = answerer.exchange(plain, None)
    (i2,), r2 = answerer.exchange(streamed, None)
    assert i1.output is not None and i2.output is not None
    assert i1.output.text == i2.output.text == r1.text == r2.text
    assert i1.messages == ({"role": "user", "content": "I lost my card"},)


def test_reply_of_reads_legacy_and_chat_logprobs(assistant: Assistant) -> None:
    legacy = answer(assistant, "completions", {"prompt": "You are", "max_tokens": 2, "logprobs": 3})
    chat = answer(
        assistant,
        "chat",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "logprobs": True, "top_logprobs": 3},
    )
    assert len(reply_of(legacy).logprob_tokens) >= 3
    assert len(reply_of(chat).logprob_tokens) >= 4


def test_unknown_llm_attack_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="enumeration"):
        run_llm_bench("ci", tmp_path, attacks=["nope"])


# -- the ci run ----------------------------------------------------------------------------
def test_ci_run_detects_every_attack_with_the_right_technique(ci_run: tuple[LlmResults, Path]) -> None:
    results, _ = ci_run
    expected = [(a, p) for a in llm_attack_names() for p in POLICIES if p == "default" or REGISTRY[a] in LEAKAGE]
    assert [(s.attack, s.policy) for s in results.scenarios] == expected
    for s in results.scenarios:
        assert s.detected, s.attack
        assert s.technique_match, (s.attack, s.detection_technique)
        assert s.success_protected <= s.success_unprotected
        assert s.refused + s.hardened > 0  # the policy acted on the attacker
        assert s.share_of_budget == round((s.queries_to_detection or 0) / s.budget, 4)
        assert s.seconds_to_detection is not None and s.seconds_to_detection >= 0
        # keys split over one campaign end up in one actor
        assert s.grouped and s.largest_group == s.principals, s.attack


def test_ci_run_reports_canaries_against_detection(ci_run: tuple[LlmResults, Path]) -> None:
    results, _ = ci_run
    for s in results.scenarios:
        for c in s.canaries:
            if c.leaked_before_detection:
                assert c.first_leak_unprotected is not None and s.queries_to_detection is not None
                assert c.first_leak_unprotected <= s.queries_to_detection
            if c.first_leak_unprotected is None:
                assert not c.leaked_before_detection
    sweep = next(s for s in results.scenarios if s.attack == "logit-bias-sweep")
    assert sweep.success_protected < sweep.success_unprotected / 2  # hardening and the block cut the haul


def test_blocking_on_leakage_stops_the_enumeration_at_detection(ci_run: tuple[LlmResults, Path]) -> None:
    results, _ = ci_run
    runs = {s.policy: s for s in results.scenarios if s.attack == "enumeration"}
    strict, default = runs["block-leakage"], runs["default"]
    assert strict.canaries_leaked_unprotected == len(strict.canaries)
    # blocked at the first medium finding: only what leaked before it is lost ...
    assert strict.canaries_leaked_protected == strict.canaries_leaked_before_detection
    assert strict.refused == strict.budget - (strict.queries_to_detection or 0)
    # ... while harden (the default at medium) leaves greedy text alone until the block at high
    assert default.canaries_leaked_protected >= strict.canaries_leaked_protected


def test_the_system_prompt_secret_does_not_get_through_and_a_split_distillation_is_blocked(
    ci_run: tuple[LlmResults, Path],
) -> None:
    results, out = ci_run
    runs = {s.attack: s for s in results.scenarios if s.policy == "default"}
    prompt = runs["system-prompt"]
    assert prompt.success_unprotected == 1.0 and prompt.success_protected == 0.0
    assert "protected_text" in (out / "traffic" / "config.toml").read_text()
    assert "ESC-" not in (out / "traffic" / "system-prompt-digests.json").read_text()
    distill = runs["distillation"]
    assert distill.detection_severity == "high" and distill.refused > distill.budget / 2
    assert distill.success_protected < distill.success_unprotected


def test_ci_run_keeps_benign_users_mostly_unflagged(ci_run: tuple[LlmResults, Path]) -> None:
    results, _ = ci_run
    assert results.fpr["high"]["hits"] == 0
    assert results.fpr["medium"]["rate"] <= 0.1
    assert results.seconds < 90


def test_ci_run_writes_results_traffic_and_a_replayable_config(ci_run: tuple[LlmResults, Path]) -> None:
    results, out = ci_run
    data = json.loads((out / "results.json").read_text())
    assert data["scenarios"][0]["canaries_leaked_unprotected"] == results.scenarios[0].canaries_leaked_unprotected
    assert "| enumeration |" in (out / "results.md").read_text()
    assert (out / "traffic" / "config.toml").read_text().startswith('[models."northgate-assistant"]')
    for s in results.scenarios:
        assert (out / s.traffic_file).stat().st_size > 0
    assert "LLM benchmark" in markdown(results)
    assert f"Detected with the right technique: {len(llm_attack_names())}/{len(llm_attack_names())}" in markdown(
        results
    )
    assert SYSTEM_SECRET not in (out / "results.md").read_text()


def test_a_scenario_replays_to_the_findings_the_benchmark_counted(ci_run: tuple[LlmResults, Path]) -> None:
    results, out = ci_run
    cli = Path(sys.executable).parent / "querywarden"
    for s in results.scenarios:
        if s.attack != "enumeration":
            continue
        findings = out / f"{s.attack}-{s.policy}.findings.jsonl"
        config = out / "traffic" / "config.toml"
        args = [str(cli), "replay", str(out / s.traffic_file), "--config", str(config), "--findings", str(findings)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(ln) for ln in findings.read_text().splitlines() if ln.strip()]
        assert len(lines) == s.finding_events > 0
        assert any(f["technique"]["id"] == s.technique and f["severity"] == s.detection_severity for f in lines)


def test_querywarden_bench_runs_the_llm_suite(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "querywarden"
    done = subprocess.run(
        [str(cli), "bench", "--suite", "llm", "--attack", "system-prompt", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| system-prompt | default | AML.T0056 |" in done.stdout
    data = json.loads((tmp_path / "llm" / "results.json").read_text())
    assert [(s["attack"], s["policy"]) for s in data["scenarios"]] == [("system-prompt", "default")]
    assert not (tmp_path / "results.json").exists()  # the classifier suite did not run
    bad = subprocess.run(
        [str(cli), "bench", "--suite", "nope", "--out", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "allowed: all, classifier, llm" in bad.stderr


def test_a_split_enumeration_through_another_template_is_linked_and_caught_early(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 keys drawn at random, through a payout template with no open field at its end: no extraction
    pattern, each key names about four customers, and yet the canaries come out unprotected."""

    def split(a: Assistant, seed: int, scale: str) -> LlmAttack:
        return enumeration_split(a, seed, "ci", keys=30, shuffled=True, template=payout_readback, name="split-30")

    attack = split(assistant, 4, "ci")
    assert len(attack.principals) == 30 and not any(patterns(r.body["prompt"]) for r in attack.requests)
    answerer = Answerer(assistant)
    assert attack.scorer([answerer.exchange(r, None)[1] for r in attack.requests])["canaries_leaked"] == 1.0
    monkeypatch.setitem(REGISTRY, "split-30", split)
    [run, _] = LlmRunner(LLM_PROFILES["ci"], tmp_path).run(["split-30"]).scenarios
    assert run.detected and run.queries_to_detection is not None and run.queries_to_detection <= 30
    assert "llm_templated" in run.detection_detectors and run.largest_group >= 25
