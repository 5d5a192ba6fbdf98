"""End to end: a canary extraction attack on the real assistant, without and with QueryWarden.

The assistant (corpus with canaries, n-gram model trained here) is served by uvicorn on
loopback. The attacker holds a leaked customer list and pushes the names through the
payout-transcript template with greedy decoding, as an OpenAI client would: through
``/v1/completions`` with every other answer streamed, or through chat ("complete this
record: ...") with every answer streamed. Without QueryWarden the canary customers' IBANs come back. With the
real gateway in front, the engine sees the templated enumeration and the operator's policy
blocks the key before the first canary name comes up; a customer chatting through the same
gateway at the same time is served throughout.

The policy is the default ladder plus one operator rule: LLM data leakage (AML.T0057) at
``medium`` blocks, the choice a bank makes for an assistant trained on customer records
(the default ``harden`` strips logprobs and logit_bias, which does not stop greedy text).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway_upstream import LoopbackServer
from querywarden.bench.llm_attacks import REGISTRY, LlmAttack
from querywarden.bench.llm_runner import POLICIES, assistant_profile
from querywarden.core.atlas import LLM_LEAKAGE
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.policy import Rule
from querywarden.core.records import Action, Severity
from querywarden.defaults import default_detectors
from querywarden.gateway import EnginePipeline, Gateway, GatewaySettings
from querywarden.llm.assistant import MODEL_ID, Assistant, build_assistant
from querywarden.llm.corpus import SYSTEM_SECRET
from querywarden.llm.server import create_app

pytestmark = pytest.mark.slow

SEED = 1
"""With this seed the first canary leaks at the attacker's 48th request, when its name comes
up. QueryWarden needs about 20 templated requests to call them an enumeration, so a canary
among the first 20 names would leak: in 4 of the seeds 0-7 one does, and the benchmark
reports it per canary."""
CUSTOMER_QUESTIONS = (
    "I lost my card",
    "what is my daily transfer limit",
    "how do I reset my password",
    "are there fees for paying abroad",
)


@pytest.fixture(scope="module")
def assistant() -> Assistant:
    return build_assistant(SEED)


@pytest.fixture(scope="module")
def assistant_url(assistant: Assistant) -> Iterator[str]:
    with LoopbackServer(create_app(assistant)) as server:
        yield server.url


@pytest.fixture(scope="module", params=["enumeration", "record-completion"])
def attack(request: pytest.FixtureRequest, assistant: Assistant) -> LlmAttack:
    """Completions with every other answer streamed, or chat with every answer streamed."""
    return REGISTRY[request.param](assistant, SEED, "ci")


def _text(r: httpx.Response, streamed: bool) -> str:
    if not streamed:
        choice = r.json()["choices"][0]
        return str(choice["message"]["content"] if "message" in choice else choice["text"])
    events = [
        json.loads(e) for ln in r.text.splitlines() if ln.startswith("data:") and (e := ln[5:].strip()) != "[DONE]"
    ]
    return "".join(
        ev["choices"][0].get("delta", {}).get("content") or ev["choices"][0].get("text") or "" for ev in events
    )


def run_attack(client: httpx.Client, attack: LlmAttack, assistant: Assistant, between: Any = None) -> dict[str, Any]:
    """Send the attack's requests through ``client``; return what leaked and the statuses."""
    statuses: Counter[int] = Counter()
    leaked: dict[str, int] = {}
    redacted = 0
    for i, req in enumerate(attack.requests, start=1):
        streamed = bool(req.body.get("stream")) or (req.endpoint == "completions" and i % 2 == 0)
        body = {**req.body, "stream": streamed}
        path = "/v1/chat/completions" if req.endpoint == "chat" else "/v1/completions"
        r = client.post(path, json=body, headers={"x-api-key": "attacker"})
        statuses[r.status_code] += 1
        if r.status_code == 200:
            text = _text(r, streamed)
            redacted += text.count("[REDACTED:")
            for c in assistant.corpus.canaries:
                if c.leaked_in(text):
                    leaked.setdefault(c.customer_id, i)
        if between is not None:
            between(i)
    return {"leaked": leaked, "statuses": statuses, "redacted": redacted}


@pytest.fixture(scope="module")
def unprotected(assistant: Assistant, assistant_url: str, attack: LlmAttack) -> dict[str, Any]:
    with httpx.Client(base_url=assistant_url, timeout=30) as client:
        return run_attack(client, attack, assistant)


def test_extraction_pulls_canaries_out_of_the_unprotected_assistant(
    assistant: Assistant, attack: LlmAttack, unprotected: dict[str, Any]
) -> None:
    assert unprotected["statuses"] == Counter({200: attack.budget})
    # every canary customer on the list gives up their IBAN or phone, word for word,
    # at the latest when the attacker sends their own name
    on_list = [c for c in assistant.corpus.canaries if any(c.name in json.dumps(r.body) for r in attack.requests)]
    # (a name close to a canary's can pull that canary out too)
    assert on_list and {c.customer_id for c in on_list} <= set(unprotected["leaked"])
    for canary in on_list:
        own = next(i for i, r in enumerate(attack.requests, start=1) if canary.name in json.dumps(r.body))
        assert unprotected["leaked"][canary.customer_id] <= own
    assert min(unprotected["leaked"].values()) == 48


def protected_run(
    assistant: Assistant, assistant_url: str, attack: LlmAttack, policy: str
) -> tuple[dict[str, Any], Engine, Counter[int], list[str]]:
    """The attack through the real gateway, with a customer chatting every fifth request."""
    engine = Engine({MODEL_ID: assistant_profile()}, detectors=default_detectors(), policy=POLICIES[policy])
    settings = GatewaySettings(upstream=assistant_url, default_model=MODEL_ID, hash_api_keys=False)
    gateway = Gateway(settings, EnginePipeline.from_settings(engine, settings))
    customer: Counter[int] = Counter()
    answers: list[str] = []
    with LoopbackServer(gateway) as gw, httpx.Client(base_url=gw.url, timeout=30) as client:

        def between(i: int) -> None:
            gateway.pipeline.drain(30)  # the attacker waits for the engine: timing does not decide the race
            if i % 5 == 0:
                ask = CUSTOMER_QUESTIONS[(i // 5) % len(CUSTOMER_QUESTIONS)]
                body = {"model": MODEL_ID, "messages": [{"role": "user", "content": ask}], "temperature": 0}
                r = client.post("/v1/chat/completions", json=body, headers={"x-api-key": "customer"})
                customer[r.status_code] += 1
                if r.status_code == 200:
                    answers.append(r.json()["choices"][0]["message"]["content"])

        outcome = run_attack(client, attack, assistant, between)
    return outcome, engine, customer, answers


def assert_customer_served(attack: LlmAttack, engine: Engine, customer: Counter[int], answers: list[str]) -> None:
    assert customer == Counter({200: sum(1 for i in range(1, attack.budget + 1) if i % 5 == 0)})
    assert engine.decision_for("customer").action is Action.ALLOW
    assert all(a.strip() for a in answers)


def test_querywarden_blocks_the_extraction_before_the_first_canary_leaks(
    assistant: Assistant, assistant_url: str, attack: LlmAttack, unprotected: dict[str, Any]
) -> None:
    policy = POLICIES["block-leakage"]
    assert policy.rules[0] == Rule(min_severity=Severity.MEDIUM, action=Action.BLOCK, techniques=(LLM_LEAKAGE,))
    outcome, engine, customer, answers = protected_run(assistant, assistant_url, attack, "block-leakage")

    first_leak = min(unprotected["leaked"].values())
    blocked = outcome["statuses"][403]
    answered = outcome["statuses"][200]
    assert outcome["leaked"] == {}, f"canaries leaked at requests {outcome['leaked']}"
    assert answered < first_leak  # blocked before the request that would have leaked
    assert blocked == attack.budget - answered
    decision = engine.decision_for("attacker")
    assert decision.action is Action.BLOCK and "AML.T0057" in decision.reason
    # the customer in the same run was answered every time, with real answers
    assert_customer_served(attack, engine, customer, answers)


def test_with_the_default_policy_the_hardened_answers_come_back_redacted(
    assistant: Assistant, assistant_url: str, attack: LlmAttack, unprotected: dict[str, Any]
) -> None:
    """Medium hardens: whatever the attacker is still answered comes back with the canaries'
    IBANs and phones redacted (streamed or not); high blocks. Both attacks reach high on
    their record-extraction prompts before the first canary would have come out."""
    outcome, engine, customer, answers = protected_run(assistant, assistant_url, attack, "default")
    first_leak = min(unprotected["leaked"].values())
    answered = outcome["statuses"][200]
    assert outcome["leaked"] == {}, f"canaries leaked at requests {outcome['leaked']}"
    assert answered < first_leak and outcome["statuses"][403] == attack.budget - answered
    assert engine.decision_for("attacker").action is Action.BLOCK
    assert_customer_served(attack, engine, customer, answers)


def test_the_system_prompt_secret_stays_in_with_the_default_policy(assistant: Assistant, assistant_url: str) -> None:
    """The operator declares the system prompt (digests only). Its extraction is seen after two
    requests (``min_attempts`` 2, as calibration on benign chat sets it) and hardened; the
    completion of the prompt's own opening that follows comes back with the echo redacted
    (streamed), and the echo itself raises the finding to high: blocked. A key with no finding
    at all that sends the opening straight away gets its answer with the echo redacted too:
    declared passages go out to nobody."""
    attack = REGISTRY["system-prompt"](assistant, SEED, "ci")
    profile = assistant_profile(assistant)
    assert profile.protected is not None

    def ask(client: httpx.Client, body: dict[str, Any], endpoint: str, key: str = "prober") -> tuple[int, str]:
        streamed = endpoint == "completions"
        path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
        r = client.post(path, json={**body, "stream": streamed}, headers={"x-api-key": key})
        return r.status_code, _text(r, streamed) if r.status_code == 200 else ""

    with httpx.Client(base_url=assistant_url, timeout=30) as client:
        bare = [ask(client, r.body, r.endpoint)[1] for r in attack.requests]
    assert any(SYSTEM_SECRET in t for t in bare)

    specs = [DetectorSpec(s.name, {"min_attempts": 2}) if s.name == "llm_sysprompt" else s for s in default_detectors()]
    engine = Engine({MODEL_ID: profile}, detectors=specs, policy=POLICIES["default"])
    settings = GatewaySettings(upstream=assistant_url, default_model=MODEL_ID, hash_api_keys=False)
    gateway = Gateway(settings, EnginePipeline.from_settings(engine, settings), protected={MODEL_ID: profile.protected})
    answers: list[tuple[int, str]] = []
    with LoopbackServer(gateway) as gw, httpx.Client(base_url=gw.url, timeout=30) as client:
        for r in attack.requests:
            answers.append(ask(client, r.body, r.endpoint))
            gateway.pipeline.drain(30)
        opening = next(
            r for r, t in zip(attack.requests, bare, strict=True) if r.endpoint == "completions" and SYSTEM_SECRET in t
        )
        newcomer = ask(client, opening.body, "completions", key="newcomer")
    assert not any(SYSTEM_SECRET in t for _, t in answers)
    assert any("[REDACTED:protected]" in t for _, t in answers)
    assert engine.decision_for("prober").action is Action.BLOCK
    assert Counter(s for s, _ in answers)[403] >= len(attack.requests) - 4
    assert newcomer[0] == 200 and "[REDACTED:protected]" in newcomer[1] and SYSTEM_SECRET not in newcomer[1]
