"""The gateway run for real on loopback in front of a real model server: every adapter,
principal identification, the response ladder and the engine hand-off."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest

from gateway_upstream import N_CLASSES, N_FEATURES, LoopbackServer, Upstream
from querywarden.core import registry
from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Detector
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, Decision, InputKind, Interaction, Severity, Signal
from querywarden.gateway import EnginePipeline, Gateway, GatewaySettings


class BurstDetector(Detector):
    """Raises a high extraction signal on a principal's ``after``-th query."""

    name = "gw_test_burst"
    technique = EXTRACTION

    def __init__(self, *, profile: ModelProfile, after: int = 3) -> None:
        super().__init__(profile=profile)
        self.after = after
        self.counts: dict[str, int] = {}

    def update(self, interaction: Interaction) -> list[Signal]:
        n = self.counts[interaction.principal] = self.counts.get(interaction.principal, 0) + 1
        if n != self.after:
            return []
        return [self.signal(interaction, score=0.9, severity=Severity.HIGH, evidence={"queries": n})]


PROFILES = {
    "credit": ModelProfile(id="credit", n_features=N_FEATURES),
    "chat": ModelProfile(id="chat", input_kind=InputKind.TEXT, output_kind="text"),
}
ROW = [0.1, -0.4, 1.2, 0.0, 0.3, -1.1, 0.7, 0.2]


@pytest.fixture(autouse=True)
def _test_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered only while a test here runs, so suites that walk the registry never see them."""
    monkeypatch.setitem(registry._REGISTRY, BurstDetector.name, BurstDetector)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    with LoopbackServer(up.app) as server:
        up.url = server.url  # type: ignore[attr-defined]
        yield up


@contextmanager
def gateway(
    upstream_url: str, *, engine: Engine | None = None, **settings: Any
) -> Iterator[tuple[httpx.Client, Gateway]]:
    engine = engine or Engine(PROFILES, detectors=[DetectorSpec("gw_test_burst", {"after": 1000})])
    s = GatewaySettings(upstream=upstream_url, default_model="credit", seed=7, **settings)
    pipeline = EnginePipeline.from_settings(engine, s)
    gw = Gateway(s, pipeline)
    with LoopbackServer(gw) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, gw


def pin(gw: Gateway, principal: str, action: Action, **params: Any) -> None:
    shadow = params.pop("shadow", False)
    finding = params.pop("finding_id", "f-test")
    actor = params.pop("actor", None)
    gw.pipeline.engine.set_decision(
        Decision(
            principal=principal, action=action, ts=0.0, finding_id=finding, params=params, shadow=shadow, actor=actor
        )
    )


def records(gw: Gateway) -> list[Interaction]:
    """Every interaction the engine has processed so far (the queue drained first)."""
    gw.pipeline.drain(5)
    return list(_SEEN.get(id(gw.pipeline), []))


_SEEN: dict[int, list[Interaction]] = {}


@pytest.fixture(autouse=True)
def _record_interactions(monkeypatch: pytest.MonkeyPatch) -> None:
    original = EnginePipeline.process
    _SEEN.clear()  # keyed by id(): a collected pipeline's id can come back in a later test

    def process(self: EnginePipeline, interaction: Interaction) -> Any:
        _SEEN.setdefault(id(self), []).append(interaction)
        return original(self, interaction)

    monkeypatch.setattr(EnginePipeline, "process", process)


KEY = {"x-api-key": "secret-key-1"}


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    """The server updates metrics after the last byte is sent, so the client may look first."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- adapters --------------------------------------------------------------------------------
def test_generic_predict_is_forwarded_unchanged_and_recorded(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        rows = [ROW, [0.0] * N_FEATURES]
        r = client.post("/predict", json={"instances": rows}, headers=KEY)
        assert r.status_code == 200
        direct = upstream.probs(rows)
        assert np.allclose(r.json()["predictions"], direct)
        seen = records(gw)
    assert [i.id.rsplit("#", 1)[1] for i in seen] == ["0", "1"]
    assert seen[0].model == "credit" and np.allclose(seen[0].features, ROW)
    assert np.allclose(seen[1].output.probabilities, direct[1])
    assert seen[0].principal.startswith("key_") and "secret-key-1" not in seen[0].principal


def test_tf_serving_route_names_the_model_from_the_path(upstream: Upstream) -> None:
    with gateway(upstream.url, models={"credit-v1": "credit"}) as (client, gw):
        r = client.post("/v1/models/credit-v1:predict", json={"instances": [ROW]}, headers=KEY)
        assert r.status_code == 200 and len(r.json()["predictions"][0]) == N_CLASSES
        (seen,) = records(gw)
    assert seen.model == "credit" and seen.output.probabilities is not None


def test_kserve_v2_tensors_become_one_interaction_per_row(upstream: Upstream) -> None:
    body = {"inputs": [{"name": "x", "shape": [2, N_FEATURES], "datatype": "FP64", "data": ROW + ROW}]}
    with gateway(upstream.url) as (client, gw):
        r = client.post("/v2/models/credit/infer", json=body, headers=KEY)
        assert r.status_code == 200
        assert r.json()["outputs"][0]["data"] == pytest.approx(upstream.probs([ROW, ROW]).ravel().tolist())
        seen = records(gw)
    assert len(seen) == 2 and seen[1].output.label == int(upstream.probs([ROW]).argmax())


def test_chat_completion_records_messages_text_and_params(upstream: Upstream) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}
    with gateway(upstream.url) as (client, gw):
        r = client.post("/v1/chat/completions", json=body, headers=KEY)
        assert r.json()["choices"][0]["message"]["content"] == "The answer is forty two."
        (seen,) = records(gw)
    assert seen.model == "chat" and seen.messages == ({"role": "user", "content": "hi"},)
    assert seen.output.text == "The answer is forty two." and seen.params == {"temperature": 0.2}


def test_completions_batch_maps_choices_to_prompts(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        r = client.post("/v1/completions", json={"model": "chat", "prompt": ["a", "b"]}, headers=KEY)
        assert r.status_code == 200
        seen = records(gw)
    assert [(i.prompt, i.output.text) for i in seen] == [("a", "echo:a"), ("b", "echo:b")]


def test_sse_is_streamed_chunk_by_chunk_and_recorded_when_it_ends(upstream: Upstream) -> None:
    upstream.release.clear()
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "tell me"}]}
    with gateway(upstream.url) as (client, gw):
        with client.stream("POST", "/v1/chat/completions", json=body, headers=KEY) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            chunks = r.iter_raw()
            first = next(chunks)  # the upstream holds the rest back until released: buffering would hang here
            assert b'"The"' in first
            assert not records(gw), "the interaction is recorded only when the stream ends"
            upstream.release.set()
            rest = b"".join(chunks)
        assert rest.endswith(b"data: [DONE]\n\n")
        (seen,) = records(gw)
    assert seen.output.text == "The answer is forty two."


def test_unknown_routes_pass_through_untouched_and_are_counted(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        r = client.get("/health")
        assert r.text == "upstream ok" and r.headers["x-upstream"] == "yes"
        blob = bytes(range(256)) * 100
        assert client.put("/echo", content=blob).content == blob
        assert eventually(lambda: gw.metrics.requests.labels("passthrough", "forwarded")._value.get() == 2)
        assert records(gw) == []


EMBED = {"model": "text-embed", "input": ["hello", "world"]}


def test_a_blocked_principal_is_refused_on_every_route(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.BLOCK, finding_id="f-9")
        before = len(upstream.seen)
        for r in (
            client.post("/v1/embeddings", json=EMBED, headers=KEY),
            client.get("/health", headers=KEY),
            client.put("/echo", content=b"x" * 10_000, headers=KEY),
            client.post("/v3/models/credit/next-version", json={"x": 1}, headers=KEY),
        ):
            assert r.status_code == 403 and r.json()["error"]["finding_id"] == "f-9"
        assert len(upstream.seen) == before, "a blocked call never reaches the model"
        other = client.post("/v1/embeddings", json=EMBED, headers={"x-api-key": "other"})
        assert other.status_code == 200 and len(other.json()["data"]) == 2
        assert eventually(lambda: gw.metrics.requests.labels("passthrough", "blocked")._value.get() == 4)


def test_passthrough_routes_take_tokens_from_the_same_bucket(upstream: Upstream) -> None:
    with gateway(upstream.url, throttle_scope="principal") as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.THROTTLE, rate=0.01, burst=2)
        codes = [
            client.post("/predict", json={"instances": [ROW]}, headers=KEY),
            client.post("/v1/embeddings", json=EMBED, headers=KEY),
            client.post("/v1/embeddings", json=EMBED, headers=KEY),
            client.post("/predict", json={"instances": [ROW]}, headers=KEY),
        ]
        assert [r.status_code for r in codes] == [200, 200, 429, 429]
        assert int(codes[2].headers["retry-after"]) >= 99 and codes[2].json()["error"]["code"] == "throttled"


def test_a_principal_of_a_blocked_actor_is_refused_on_passthrough_routes(upstream: Upstream) -> None:
    engine = Engine(PROFILES)
    with gateway(upstream.url, engine=engine) as (client, gw):
        a, b = key_principal(gw, "k-a"), key_principal(gw, "k-b")
        client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k-b"})
        gw.pipeline.drain(5)
        engine.actors.link(a, b, 10.0, "test")
        decision = Decision(
            principal=a, action=Action.BLOCK, ts=1.0, finding_id="f-actor", actor=engine.actors.actor_of(a)
        )
        gw.pipeline.actors.decide_actor(decision)  # as the worker records an engine decision
        client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k-b"})  # worker learns b's actor
        gw.pipeline.drain(5)
        r = client.post("/v1/embeddings", json=EMBED, headers={"x-api-key": "k-b"})
        assert r.status_code == 403 and r.json()["error"]["finding_id"] == "f-actor"


def test_a_hardened_principal_passes_unhardened_and_is_counted(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.HARDEN, label_only=True)
        r = client.post("/v1/embeddings", json=EMBED, headers=KEY)
        assert r.json()["data"][1]["embedding"] == [0.5, 5.0]
        assert eventually(lambda: gw.metrics.requests.labels("passthrough", "not_hardened")._value.get() == 1)
        assert gw.metrics.requests.labels("passthrough", "forwarded")._value.get() == 0


def test_shadowed_block_lets_passthrough_traffic_pass_and_counts_it(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.BLOCK, shadow=True)
        assert client.get("/health", headers=KEY).status_code == 200
        assert eventually(lambda: gw.metrics.shadowed.labels("block")._value.get() == 1)


def test_passthrough_without_a_principal_follows_on_missing_principal(upstream: Upstream) -> None:
    with gateway(upstream.url, principal_sources=["api_key"], on_missing_principal="refuse") as (client, _gw):
        r = client.get("/health")
        assert r.status_code == 401 and r.json()["error"]["code"] == "no_principal"
        assert client.get("/health", headers=KEY).text == "upstream ok"
    with gateway(upstream.url, principal_sources=["api_key"], on_missing_principal="ip") as (client, gw):
        pin(gw, "ip:127.0.0.1", Action.BLOCK, finding_id="f-ip")
        r = client.get("/health")
        assert r.status_code == 403 and r.json()["error"]["finding_id"] == "f-ip"


def test_the_gateway_never_shares_one_callers_cookies_with_another(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, _gw):
        login = client.get("/login?user=alice")
        assert login.text == "welcome" and "session=alice" in login.headers["set-cookie"]
        with httpx.Client(base_url=str(client.base_url)) as stranger:
            assert stranger.get("/whoami").text == "nobody"


# -- principals ------------------------------------------------------------------------------
def _principal(gw: Gateway) -> str:
    return records(gw)[-1].principal


@pytest.mark.parametrize(
    ("settings", "headers", "expected"),
    [
        ({"hash_api_keys": False}, {"x-api-key": "key-id-7"}, "key-id-7"),
        ({"principal_sources": ["auth_header"]}, {"x-authenticated-principal": "alice"}, "alice"),
        ({}, {}, "ip:127.0.0.1"),
    ],
)
def test_principal_sources(
    upstream: Upstream, settings: dict[str, Any], headers: dict[str, str], expected: str
) -> None:
    with gateway(upstream.url, **settings) as (client, gw):
        assert client.post("/predict", json={"instances": [ROW]}, headers=headers).status_code == 200
        assert _principal(gw) == expected


def test_bearer_token_is_hashed_and_never_recorded(upstream: Upstream, tmp_path: Any) -> None:
    out = tmp_path / "traffic.jsonl"
    with gateway(upstream.url, traffic_out=str(out)) as (client, gw):
        client.post("/predict", json={"instances": [ROW]}, headers={"authorization": "Bearer sk-live-SECRET"})
        client.post("/predict", json={"instances": [ROW]}, headers={"authorization": "Bearer sk-live-SECRET"})
        principals = {i.principal for i in records(gw)}
        gw.pipeline.drain(5)
    assert len(principals) == 1 and next(iter(principals)).startswith("tok_")
    assert "SECRET" not in out.read_text() and len(out.read_text().splitlines()) == 2


def test_missing_principal_is_refused_when_configured(upstream: Upstream) -> None:
    with gateway(upstream.url, principal_sources=["api_key"], on_missing_principal="refuse") as (client, _gw):
        r = client.post("/predict", json={"instances": [ROW]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "no_principal"
        assert client.post("/predict", json={"instances": [ROW]}, headers=KEY).status_code == 200


# -- the response ladder ---------------------------------------------------------------------
def key_principal(gw: Gateway, key: str) -> str:
    return gw.principals.hashed("key", key)


def test_block_answers_403_naming_the_finding(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.BLOCK, finding_id="f-42")
        r = client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        assert r.status_code == 403 and r.json()["error"] == {
            "code": "blocked",
            "message": "this principal is blocked",
            "finding_id": "f-42",
        }
        assert client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "other"}).status_code == 200


def test_throttle_answers_429_with_retry_after_once_the_bucket_is_empty(upstream: Upstream) -> None:
    with gateway(upstream.url, throttle_scope="principal") as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.THROTTLE, rate=0.01, burst=2)
        codes = [client.post("/predict", json={"instances": [ROW]}, headers=KEY) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert int(codes[2].headers["retry-after"]) >= 99 and codes[2].json()["error"]["code"] == "throttled"


def test_throttle_bucket_is_shared_by_an_actor(upstream: Upstream) -> None:
    with gateway(upstream.url, throttle_scope="actor") as (client, gw):
        for key in ("k1", "k2"):
            pin(gw, key_principal(gw, key), Action.THROTTLE, rate=0.01, burst=2, actor="actor-x")
        codes = [
            client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": k}).status_code
            for k in ("k1", "k2", "k1", "k2")
        ]
        assert codes == [200, 200, 429, 429]


def test_shadow_decision_passes_and_is_counted(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.BLOCK, shadow=True)
        r = client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        assert r.status_code == 200
        assert eventually(lambda: gw.metrics.shadowed.labels("block")._value.get() == 1)


def test_harden_default_returns_top1_rounded_and_engine_sees_the_truth(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.HARDEN)
        r = client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        (pred,) = r.json()["predictions"]
        truth = upstream.probs([ROW])[0]
        assert sum(v > 0 for v in pred) == 1 and pred[int(truth.argmax())] == round(truth.max(), 1)
        (seen,) = records(gw)
    assert np.allclose(seen.output.probabilities, truth)


def test_harden_kserve_keeps_labels_and_shapes(upstream: Upstream) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, N_FEATURES], "datatype": "FP64", "data": ROW}]}
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.HARDEN, label_only=True)
        out = client.post("/v2/models/credit/infer", json=body, headers=KEY).json()["outputs"]
    label = int(upstream.probs([ROW]).argmax())
    assert out[0]["shape"] == [1, N_CLASSES] and out[0]["data"] == [
        1.0 if i == label else 0.0 for i in range(N_CLASSES)
    ]
    assert out[1]["data"] == [label]


def test_harden_llm_strips_leaky_options_before_the_model_sees_them(upstream: Upstream) -> None:
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "x"}],
        "logprobs": True,
        "top_logprobs": 5,
        "logit_bias": {"42": 100},
    }
    with gateway(upstream.url) as (client, gw):
        pin(gw, key_principal(gw, "secret-key-1"), Action.HARDEN)
        r = client.post("/v1/chat/completions", json=body, headers={**KEY, "x-force-logprobs": "1"})
        assert r.json()["choices"][0]["logprobs"] is None
        forwarded = upstream.seen[-1]
        assert not {"logprobs", "top_logprobs", "logit_bias"} & set(forwarded)
        (seen,) = records(gw)
    assert seen.params["top_logprobs"] == 5, "the engine records what the principal asked for"


def test_engine_decision_from_traffic_blocks_the_principal(upstream: Upstream) -> None:
    engine = Engine(PROFILES, detectors=[DetectorSpec("gw_test_burst", {"after": 3})])
    with gateway(upstream.url, engine=engine) as (client, gw):
        for _ in range(3):
            assert client.post("/predict", json={"instances": [ROW]}, headers=KEY).status_code == 200
        gw.pipeline.drain(5)
        r = client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        assert r.status_code == 403
        decision = engine.decision_for(key_principal(gw, "secret-key-1"))
        assert r.json()["error"]["finding_id"] == decision.finding_id is not None


def test_a_principal_that_joins_an_actor_inherits_its_decision(upstream: Upstream) -> None:
    engine = Engine(PROFILES)
    with gateway(upstream.url, engine=engine) as (client, gw):
        a, b = key_principal(gw, "k-a"), key_principal(gw, "k-b")
        client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k-b"})
        gw.pipeline.drain(5)
        engine.actors.link(a, b, 10.0, "test")
        decision = Decision(
            principal=a, action=Action.BLOCK, ts=1.0, finding_id="f-actor", actor=engine.actors.actor_of(a)
        )
        gw.pipeline.actors.decide_actor(decision)  # as the worker records an engine decision
        client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k-b"})  # worker learns b's actor
        gw.pipeline.drain(5)
        r = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k-b"})
        assert r.status_code == 403 and r.json()["error"]["finding_id"] == "f-actor"


def test_hashing_is_keyed_by_the_salt() -> None:
    from querywarden.gateway.principal import PrincipalResolver

    one = PrincipalResolver(GatewaySettings(principal_salt="a")).hashed("key", "k")
    two = PrincipalResolver(GatewaySettings(principal_salt="b")).hashed("key", "k")
    plain = hashlib.blake2b(b"k", digest_size=8).hexdigest()
    assert one != two and plain not in (one, two)


def test_stats_are_json_serializable_for_the_admin_side(upstream: Upstream) -> None:
    with gateway(upstream.url) as (client, gw):
        client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        gw.pipeline.drain(5)
        assert (
            json.loads(json.dumps({k: getattr(gw.pipeline.stats, k) for k in gw.pipeline.stats.__slots__}))[
                "interactions"
            ]
            == 1
        )
