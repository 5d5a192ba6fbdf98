"""The gateway's failure table, run for real on loopback: upstream down or slow, bad and
oversized bodies, a full engine queue (fail-open and fail-closed), and engine failures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gateway_upstream import N_FEATURES, LoopbackServer, Upstream, free_port
from querywarden.core import registry
from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Detector
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Signal
from querywarden.gateway import EnginePipeline, Gateway, GatewaySettings

GATE = threading.Event()


class StallDetector(Detector):
    """Holds the engine worker until ``GATE`` opens: an engine that cannot keep up."""

    name = "gw_test_stall"
    technique = EXTRACTION

    def update(self, interaction: Interaction) -> list[Signal]:
        GATE.wait(10)
        return []


class CrashDetector(Detector):
    """Fails on any input whose first feature is 999: an engine bug."""

    name = "gw_test_crash"
    technique = EXTRACTION

    def update(self, interaction: Interaction) -> list[Signal]:
        if interaction.features is not None and interaction.features[0] == 999:
            raise RuntimeError("detector bug")
        return []


PROFILES = {"credit": ModelProfile(id="credit", n_features=N_FEATURES)}
ROW = [0.5] * N_FEATURES
KEY = {"x-api-key": "k"}


@pytest.fixture(autouse=True)
def _test_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered only while a test here runs, so suites that walk the registry never see them."""
    monkeypatch.setitem(registry._REGISTRY, StallDetector.name, StallDetector)
    monkeypatch.setitem(registry._REGISTRY, CrashDetector.name, CrashDetector)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    with LoopbackServer(up.app) as server:
        up.url = server.url  # type: ignore[attr-defined]
        yield up


@contextmanager
def gateway(upstream_url: str, detector: str | None = None, **settings: Any) -> Iterator[tuple[httpx.Client, Gateway]]:
    engine = Engine(PROFILES, detectors=[DetectorSpec(detector)] if detector else [])
    s = GatewaySettings(upstream=upstream_url, default_model="credit", **settings)
    gw = Gateway(s, EnginePipeline.from_settings(engine, s))
    with LoopbackServer(gw) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, gw


def outcome_count(gw: Gateway, outcome: str, route: str = "predict") -> float:
    deadline = time.monotonic() + 2
    value: float = gw.metrics.requests.labels(route, outcome)._value.get()
    while value == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
        value = gw.metrics.requests.labels(route, outcome)._value.get()
    return value


def test_upstream_down_answers_502_with_a_clear_body() -> None:
    with gateway(f"http://127.0.0.1:{free_port()}") as (client, gw):
        r = client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "upstream_error" and "unreachable" in r.json()["error"]["message"]
        assert client.get("/anything").status_code == 502
        assert outcome_count(gw, "upstream_error") == 1


def test_slow_upstream_answers_504_after_the_configured_timeout(upstream: Upstream) -> None:
    with gateway(upstream.url, read_timeout=0.3) as (client, _gw):
        started = time.monotonic()
        r = client.post("/predict", json={"instances": [ROW]}, headers={**KEY, "x-delay": "2"})
        assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
        assert time.monotonic() - started < 1.5


def test_malformed_json_answers_400_with_the_reason_and_is_recorded(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "querywarden.gateway")
    with gateway(upstream.url) as (client, gw):
        r = client.post("/predict", content=b'{"instances": [1, 2', headers={**KEY, "x-request-id": "req-9"})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "bad_request" and "malformed JSON" in err["message"] and err["request_id"] == "req-9"
        assert outcome_count(gw, "bad_request") == 1
    assert any("req-9" in rec.getMessage() and "malformed JSON" in rec.getMessage() for rec in caplog.records)
    assert all(body != {"instances": [1, 2]} for body in upstream.seen)


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/predict", {"rows": [[1]]}, "none of the keys"),
        ("/predict", {"instances": [[1, 2], [3]]}, "equal length"),
        ("/predict", {"instances": [["a", "b"]]}, "numbers"),
        ("/v2/models/credit/infer", {"inputs": [{"shape": [1, 3], "data": [1, 2]}]}, "needs 3"),
        ("/v1/chat/completions", {"messages": "hi"}, "'messages'"),
        ("/v1/completions", {"prompt": 3}, "'prompt'"),
    ],
)
def test_bodies_the_adapter_cannot_read_are_refused(upstream: Upstream, path: str, body: Any, reason: str) -> None:
    with gateway(upstream.url) as (client, _gw):
        r = client.post(path, json=body, headers=KEY)
        assert r.status_code == 400 and reason in r.json()["error"]["message"]


def test_oversized_body_answers_413(upstream: Upstream) -> None:
    with gateway(upstream.url, max_body_bytes=2000) as (client, _gw):
        big = {"instances": [[0.123456789] * N_FEATURES] * 100}
        assert client.post("/predict", json=big, headers=KEY).status_code == 413

        def chunked() -> Iterator[bytes]:  # no content-length: the limit is enforced while reading
            yield b'{"instances": ['
            for _ in range(200):
                yield b"[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],"
            yield b"[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]}"

        r = client.post("/predict", content=chunked(), headers=KEY)
        assert r.status_code == 413 and "2000 bytes" in r.json()["error"]["message"]
        assert client.post("/predict", json={"instances": [ROW]}, headers=KEY).status_code == 200


@pytest.mark.parametrize(("mode", "third"), [("open", 200), ("closed", 503)])
def test_full_engine_queue_follows_the_overflow_policy(upstream: Upstream, mode: str, third: int) -> None:
    GATE.clear()
    try:
        with gateway(upstream.url, "gw_test_stall", queue_size=1, on_overflow=mode) as (client, gw):
            codes = []
            for _ in range(3):  # 1: held by the stalled worker, 2: fills the queue, 3: overflows
                codes.append(client.post("/predict", json={"instances": [ROW]}, headers=KEY).status_code)
                time.sleep(0.05)
            assert codes == [200, 200, third]
            if mode == "open":
                assert gw.pipeline.stats.dropped == 1
            else:
                assert outcome_count(gw, "overloaded") == 1
            GATE.set()
    finally:
        GATE.set()


def test_engine_exception_is_logged_with_the_interaction_id_and_traffic_continues(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    with gateway(upstream.url, "gw_test_crash") as (client, gw):
        bad = [999.0, *ROW[1:]]
        r = client.post("/predict", json={"instances": [bad]}, headers={**KEY, "x-request-id": "req-crash"})
        assert r.status_code == 200
        assert client.post("/predict", json={"instances": [ROW]}, headers=KEY).status_code == 200
        gw.pipeline.drain(5)
        assert gw.pipeline.stats.errors == 1 and gw.pipeline.stats.interactions == 1 and gw.pipeline.alive
    assert any("req-crash" in rec.getMessage() and rec.exc_info for rec in caplog.records)


@pytest.mark.parametrize(("mode", "code"), [("open", 200), ("closed", 503)])
def test_dead_engine_follows_the_engine_failure_policy(upstream: Upstream, mode: str, code: int) -> None:
    with gateway(upstream.url, on_engine_failure=mode) as (client, gw):
        gw.pipeline.stop()
        r = client.post("/predict", json={"instances": [ROW]}, headers=KEY)
        assert r.status_code == code
