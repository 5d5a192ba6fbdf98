"""Process mode: the proxy in this process, the engine in a child, a real upstream on loopback.

Decisions taken in the engine process reach the proxy's mirror; killing the engine process
applies ``on_engine_failure`` at once, keeps every decision enforced, and a new engine
process takes over with the decisions from the store; a stalled engine fills the bounded
channel and ``on_overflow`` applies.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway_upstream import N_FEATURES, LoopbackServer, Upstream
from querywarden.core.records import Action, Client, Decision
from querywarden.gateway.adapters import Router
from querywarden.gateway.channel import (
    TO_PROXY,
    Batch,
    FrameReader,
    Update,
    adapters_by_name,
    frame,
    from_wire,
    to_wire,
)
from querywarden.gateway.exchange import Exchange
from querywarden.gateway.mirror import DecisionMirror
from querywarden.gateway.server import ProcessServer, build_process_server, load_gateway_settings

CONFIG = """
[models.credit]
n_features = {n}

[[policy.rules]]
min_severity = "medium"
action = "block"

[store]
url = "sqlite:///{db}"

[console]
token_sha256 = ["{token_sha256}"]
"""
TOKEN = "process-mode-test-token-0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with LoopbackServer(Upstream().app) as server:
        yield server.url


@contextmanager
def process_gateway(
    upstream: str, tmp_path: Path, **settings: Any
) -> Iterator[tuple[httpx.Client, httpx.Client, ProcessServer]]:
    cfg = tmp_path / "qw.toml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg.write_text(CONFIG.format(n=N_FEATURES, db=tmp_path / "qw.db", token_sha256=digest))
    server = build_process_server(
        load_gateway_settings(None, upstream=upstream, default_model="credit", **settings), cfg
    )
    server.pipeline.restart_delay = 0.1
    try:
        with (
            LoopbackServer(server.gateway) as gw,
            LoopbackServer(server.admin) as admin,
            httpx.Client(base_url=gw.url, timeout=10) as client,
            httpx.Client(base_url=admin.url, timeout=10) as admin_client,
        ):
            yield client, admin_client, server
    finally:
        server.close()


def probe(client: httpx.Client, key: str, n: int) -> list[int]:
    """A sweep along each feature in turn: the inversion detector's pattern."""
    codes = []
    for i in range(n):
        row = [0.0] * N_FEATURES
        row[i % N_FEATURES] = (i // N_FEATURES) * 0.01
        codes.append(client.post("/predict", json={"instances": [row]}, headers={"x-api-key": key}).status_code)
    return codes


def until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def metric(admin: httpx.Client, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", admin.get("/metrics").text, re.M)
    assert found is not None, name
    return float(found.group(1))


ROW = [0.3] * N_FEATURES


def test_an_engine_block_reaches_the_proxy_and_admin_reads_the_engine(upstream: str, tmp_path: Path) -> None:
    with process_gateway(upstream, tmp_path) as (client, admin, server):
        assert server.pipeline._proc is not None and server.pipeline._proc.pid != os.getpid()
        assert admin.get("/healthz").json()["engine"] == "up"
        codes = probe(client, "thief", 60)
        server.pipeline.drain(10)
        blocked = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"})
        assert codes[0] == 200 and blocked.status_code == 403, codes
        assert blocked.json()["error"]["finding_id"].startswith("fnd-")
        assert client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "customer"}).status_code == 200
        assert 10 < codes.count(200) < 60 and codes[-1] == 403, "blocked part-way, as soon as the engine decided"
        assert metric(admin, "querywarden_engine_interactions_total") >= codes.count(200)
        assert metric(admin, "querywarden_engine_up") == 1.0
        # the REST API answers from the engine process (it holds the store and the engine)
        assert admin.get("/api/stats").status_code == 401


def test_an_operator_decision_made_through_the_api_reaches_the_proxy(upstream: str, tmp_path: Path) -> None:
    from querywarden.gateway.principal import PrincipalResolver
    from querywarden.gateway.settings import GatewaySettings

    principal = PrincipalResolver(GatewaySettings()).hashed("key", "op")
    bearer = {"authorization": f"Bearer {TOKEN}"}
    with process_gateway(upstream, tmp_path) as (client, admin, server):

        def status() -> int:
            return client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "op"}).status_code

        assert status() == 200
        r = admin.put(f"/api/decisions/{principal}", json={"action": "block", "note": "seen"}, headers=bearer)
        assert r.status_code == 200 and r.json()["enforced_now"] is True, r.text
        until(lambda: status() == 403, "the operator's block never reached the proxy", 5)
        assert server.pipeline.mirror.decisions[principal].source == "operator"
        assert admin.delete(f"/api/decisions/{principal}", headers=bearer).status_code == 200
        until(lambda: status() == 200, "the operator's clear never reached the proxy", 5)


def test_killing_the_engine_fails_open_counts_and_restarts_with_decisions(upstream: str, tmp_path: Path) -> None:
    with process_gateway(upstream, tmp_path) as (client, admin, server):
        probe(client, "thief", 60)
        server.pipeline.drain(10)
        assert client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"}).status_code == 403
        first = server.pipeline._proc
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        until(lambda: admin.get("/healthz").status_code == 503, "the proxy never saw the engine die", 10)
        assert admin.get("/healthz").json()["engine"] == "down"
        assert admin.get("/api/stats").json()["error"]["code"] == "engine_down"
        dropped = metric(admin, "querywarden_engine_queue_dropped_total")
        passed = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "customer"})
        still = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"})
        assert passed.status_code == 200 and still.status_code == 403
        assert metric(admin, "querywarden_engine_queue_dropped_total") == dropped + 1
        until(lambda: admin.get("/healthz").status_code == 200, "the engine process was not restarted")
        assert server.pipeline._proc is not None and server.pipeline._proc.pid != first.pid
        again = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"})
        assert again.status_code == 403, "the restarted engine keeps the block (from the store or the mirror)"
        assert server.pipeline.mirror.decisions, "and its full table replaced the mirror's"


def test_killing_the_engine_fails_closed_with_503(upstream: str, tmp_path: Path) -> None:
    with process_gateway(upstream, tmp_path, on_engine_failure="closed") as (client, _, server):
        assert client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "c"}).status_code == 200
        server.pipeline.restart_delay = 60.0
        assert server.pipeline._proc is not None
        os.kill(server.pipeline._proc.pid, signal.SIGKILL)
        until(lambda: not server.pipeline.alive, "the proxy never saw the engine die", 10)
        r = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "c"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"


@pytest.mark.parametrize(("mode", "code"), [("open", 200), ("closed", 503)])
def test_a_stalled_engine_fills_the_channel(upstream: str, tmp_path: Path, mode: str, code: int) -> None:
    with process_gateway(upstream, tmp_path, queue_size=2, on_overflow=mode) as (client, admin, server):
        proc = server.pipeline._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            first = [client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "c"}) for _ in range(2)]
            third = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "c"})
            depth = admin.get("/healthz").json()["queue_depth"]
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert [r.status_code for r in first] == [200, 200] and depth == 2
        assert third.status_code == code
        assert server.pipeline.stats.dropped == (1 if mode == "open" else 0)
        until(lambda: server.pipeline.depth == 0, "the engine never caught up")


def test_the_engine_drains_and_saves_its_state_on_stop(upstream: str, tmp_path: Path) -> None:
    with process_gateway(upstream, tmp_path) as (client, _, server):
        for _ in range(20):
            client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "c"})
    assert server.pipeline._proc is None and not server.pipeline.alive
    assert server.pipeline.stats.interactions == 20, "everything sent was processed before the engine exited"
    from querywarden.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'qw.db'}") as store:
        assert store.load_snapshot("gateway-engine") is not None


# -- the channel and the mirror, without processes -----------------------------------------


def test_frames_survive_any_split_and_exchanges_cross_intact() -> None:
    router = Router()
    parsed = router.generic.parse_request({"instances": [[1.0, 2.5], [3.0, -4.0]]})
    exchange = Exchange(
        id="r-1",
        ts=12.5,
        principal="key_a",
        model="credit",
        client=Client(ip="10.0.0.1", user_agent="ua"),
        adapter=router.generic,
        request=parsed,
        response_raw=b'{"predictions": [[0.9, 0.1], [0.2, 0.8]]}',
    )
    data = frame(Batch([to_wire(exchange)])) * 3
    reader = FrameReader()
    bodies = [b for i in range(0, len(data), 7) for b in reader.feed(data[i : i + 7])]
    assert len(bodies) == 3
    from querywarden.gateway.channel import TO_ENGINE

    batch = TO_ENGINE.decode(bodies[0])
    assert isinstance(batch, Batch)
    back = from_wire(batch.exchanges[0], adapters_by_name(router))
    want, got = exchange.interactions(), back.interactions()
    assert [i.id for i in got] == ["r-1#0", "r-1#1"] and got[0].client == want[0].client
    for a, b in zip(want, got, strict=True):
        assert a.features is not None and b.features is not None
        np.testing.assert_array_equal(a.features, b.features)
        assert a.output is not None and b.output is not None
        np.testing.assert_array_equal(a.output.probabilities, b.output.probabilities)


def test_the_mirror_applies_actor_decisions_to_fresh_keys() -> None:
    mirror = DecisionMirror(max_actor_principals=2)
    block = Decision(principal="a", action=Action.BLOCK, ts=1.0, actor="actor-1", finding_id="f")
    update = TO_PROXY.decode(
        frame(Update(handled=1, stats=(1, 0, 1, 1, 0), decisions=[block], actors=[("b", "actor-1")]))[4:]
    )
    assert isinstance(update, Update)
    mirror.set_decisions(update.decisions)
    for principal, actor in update.actors:
        mirror.join(principal, actor)
    mirror.decide_actor(update.decisions[0])
    assert mirror.decision_for("a").action is Action.BLOCK
    inherited = mirror.decision_for("b")
    assert inherited.action is Action.BLOCK and inherited.principal == "b" and inherited.finding_id == "f"
    assert mirror.decision_for("c").action is Action.ALLOW
    mirror.join("c", "actor-2")
    mirror.join("d", "actor-2")  # past the cap: the oldest placement goes
    assert "b" not in mirror.actor_of and mirror.decision_for("b").action is Action.ALLOW
    mirror.clear(["a"])
    assert mirror.decision_for("a").action is Action.ALLOW


def test_a_bad_engine_mode_is_a_located_error(tmp_path: Path) -> None:
    from querywarden.errors import ConfigError

    cfg = tmp_path / "qw.toml"
    cfg.write_text('[gateway]\nqueue_size = 10\nengine_mode = "fork"\n')
    with pytest.raises(ConfigError, match="'process' or 'thread'") as caught:
        load_gateway_settings(cfg)
    assert caught.value.line == 3
    assert load_gateway_settings(None).engine_mode == "process"


def test_exports_run_in_the_engine_process_and_their_metrics_reach_the_admin_port(
    upstream: str, tmp_path: Path
) -> None:
    from exports_receivers import HttpReceiver, wait_for

    hook = HttpReceiver()
    (tmp_path / "scrapers.txt").write_text("127.0.0.0/8\n")
    cfg = tmp_path / "qw.toml"
    cfg.write_text(
        f"[models.credit]\nn_features = {N_FEATURES}\n\n"
        f'[[exports]]\nkind = "webhook"\nurl = "{hook.url}/qw"\nsecret = "s3cret"\n\n'
        '[[intel.feeds]]\nkind = "ip"\npath = "scrapers.txt"\nseverity = "high"\n'
    )
    server = build_process_server(load_gateway_settings(None, upstream=upstream, default_model="credit"), cfg)
    try:
        with LoopbackServer(server.gateway) as gw, LoopbackServer(server.admin) as admin:
            assert httpx.post(gw.url + "/predict", json={"instances": [ROW]}, headers={"x-api-key": "s"}).is_success
            assert wait_for(lambda: len(hook.requests) >= 1), "the engine process's webhook never fired"
            until(lambda: 'outcome="sent"} 1.0' in httpx.get(admin.url + "/metrics").text, "no export metric")
            metrics = httpx.get(admin.url + "/metrics").text
    finally:
        server.close()
        hook.close()
    assert 'querywarden_export_findings_total{exporter="webhook",outcome="sent"} 1.0' in metrics
    assert 'querywarden_gateway_requests_total{outcome="forwarded",route="predict"} 1.0' in metrics
    families = [line.split()[2] for line in metrics.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families)), "each family once: the proxy's and the engine process's are disjoint"


def test_a_mistake_found_in_the_engine_process_stops_start_up_located(upstream: str, tmp_path: Path) -> None:
    from querywarden.errors import QueryWardenError

    cfg = tmp_path / "qw.toml"
    cfg.write_text('[models.credit]\nn_features = 8\n\n[[exports]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n')
    with pytest.raises(QueryWardenError, match=r"qw\.toml:4: exports\[0\]: a webhook export needs secret"):
        build_process_server(load_gateway_settings(None, upstream=upstream), cfg)


# -- a stopped, slow or hung engine process ------------------------------------------------


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def timed_post(client: httpx.Client, key: str, rows: int = 1) -> tuple[int, float]:
    started = time.monotonic()
    r = client.post("/predict", json={"instances": [ROW] * rows}, headers={"x-api-key": key})
    return r.status_code, time.monotonic() - started


def test_a_stopped_engine_fails_open_reports_the_stall_and_recovers_on_sigcont(upstream: str, tmp_path: Path) -> None:
    settings = {"queue_size": 20, "engine_stall_timeout": 0.5}
    with process_gateway(upstream, tmp_path, **settings) as (client, admin, server):
        pipeline = server.pipeline
        time.sleep(1.5)  # idle for three stall timeouts: the heartbeat keeps it healthy
        assert admin.get("/healthz").json()["engine"] == "up"
        proc = pipeline._proc
        assert proc is not None
        with stopped(proc.pid):
            answers = [timed_post(client, f"k{i % 4}") for i in range(60)]
            until(lambda: admin.get("/healthz").status_code == 503, "the stall was never reported", 10)
            health = admin.get("/healthz").json()
            text = admin.get("/metrics").text
            api = admin.get("/api/stats")
            depth, dropped = pipeline.depth, pipeline.stats.dropped
        assert [code for code, _ in answers] == [200] * 60, "fail-open: the model answers while the engine is stopped"
        assert max(seconds for _, seconds in answers) < 1.0
        assert depth == 20 and dropped == 40, "the queue holds queue_size exchanges; the rest are counted"
        assert health["engine"] == "stalled" and health["queue_full"] is True and health["queue_depth"] == 20
        assert "querywarden_engine_stalled 1.0" in text and "querywarden_engine_up 0.0" in text
        assert "querywarden_engine_queue_full 1.0" in text and "querywarden_engine_queue_dropped_total 40.0" in text
        assert api.status_code == 503 and api.json()["error"]["code"] == "engine_stalled"
        until(lambda: pipeline.depth == 0 and admin.get("/healthz").status_code == 200, "no recovery after SIGCONT")
        assert pipeline._proc is proc and pipeline.restarts == 0, "recovered without a restart"
        before = pipeline.stats.interactions
        assert before == 20, "the queued exchanges were processed when the engine resumed"
        assert timed_post(client, "k0")[0] == 200
        until(lambda: pipeline.stats.interactions == before + 1, "traffic after the recovery reaches the engine", 10)


def test_a_stopped_engine_fails_closed_with_503_once_stalled(upstream: str, tmp_path: Path) -> None:
    settings = {"on_engine_failure": "closed", "engine_stall_timeout": 0.5}
    with process_gateway(upstream, tmp_path, **settings) as (client, _, server):
        proc = server.pipeline._proc
        assert proc is not None
        with stopped(proc.pid):
            assert timed_post(client, "c")[0] == 200, "queued: the stall is not known yet"
            until(lambda: not server.pipeline.alive, "the stall was never seen", 10)
            code, seconds = timed_post(client, "c")
        assert code == 503 and seconds < 1.0
        until(lambda: timed_post(client, "c")[0] == 200, "fail-closed never reopened after SIGCONT")


def test_a_stopped_engine_costs_the_proxy_bounded_memory(upstream: str, tmp_path: Path) -> None:
    with process_gateway(upstream, tmp_path, engine_stall_timeout=30.0) as (client, _, server):
        pipeline = server.pipeline
        cap = pipeline.max_buffered_bytes = 64 << 10
        proc = pipeline._proc
        assert proc is not None
        with stopped(proc.pid):
            codes = []
            peak = 0
            for i in range(150):  # ~13 kB of exchange each: the socket's buffer fills, then the proxy's
                codes.append(timed_post(client, f"k{i % 4}", rows=200)[0])
                peak = max(peak, pipeline.buffered_bytes)
            dropped = pipeline.stats.dropped
        assert codes == [200] * 150
        # 150 exchanges of ~25 kB (3.7 MB) were offered: past the cap only the last 5 ms batch is added
        assert 0 < peak < 4 * cap, peak
        assert dropped > 0 and pipeline.depth < 150, "the exchanges past the byte cap were counted, not kept"
        until(lambda: pipeline.depth == 0 and pipeline.buffered_bytes == 0, "the buffer never drained after SIGCONT")


def test_an_engine_stalled_past_the_hang_timeout_is_restarted_with_its_decisions(upstream: str, tmp_path: Path) -> None:
    settings = {"engine_stall_timeout": 0.5, "engine_hang_timeout": 1.5}
    with process_gateway(upstream, tmp_path, **settings) as (client, admin, server):
        probe(client, "thief", 60)
        server.pipeline.drain(10)
        assert timed_post(client, "thief")[0] == 403
        hung = server.pipeline._proc
        assert hung is not None
        os.kill(hung.pid, signal.SIGSTOP)  # never continued: the proxy kills it
        until(lambda: server.pipeline.hangs == 1, "the hung engine process was never killed", 15)
        assert hung.poll() is not None
        assert timed_post(client, "thief")[0] == 403, "decisions stay enforced from the mirror"
        until(lambda: admin.get("/healthz").json().get("engine") == "up", "no engine process after the hang", 30)
        assert server.pipeline._proc is not None and server.pipeline._proc.pid != hung.pid
        assert metric(admin, "querywarden_engine_hangs_total") == 1.0
        assert timed_post(client, "thief")[0] == 403


def test_an_exchange_the_engine_process_cannot_rebuild_is_acknowledged_as_an_error() -> None:
    import socket

    from querywarden.core.engine import Engine
    from querywarden.defaults import default_detectors
    from querywarden.gateway.engine_process import EngineLink
    from querywarden.gateway.pipeline import EnginePipeline

    router = Router()
    parsed = router.generic.parse_request({"instances": [[1.0, 2.0]]})
    good = to_wire(
        Exchange(
            id="ok",
            ts=1.0,
            principal="p",
            model="m",
            client=Client(ip=None, user_agent=None),
            adapter=router.generic,
            request=parsed,
            response_raw=b'{"predictions": [[0.5, 0.5]]}',
        )
    )
    import msgspec

    bad = msgspec.structs.replace(good, id="bad", adapter="nope")
    pipeline = EnginePipeline(Engine({}, detectors=default_detectors()))
    pipeline.start()
    ours, theirs = socket.socketpair()
    try:
        EngineLink(theirs, FrameReader(), pipeline, adapters_by_name(router))._queue(Batch([bad, good]))
        pipeline.drain(10)
    finally:
        pipeline.stop()
        ours.close()
        theirs.close()
    assert pipeline.stats.handled == 2 and pipeline.stats.errors == 1 and pipeline.stats.interactions == 1


def test_a_bad_frame_from_the_engine_process_ends_it_instead_of_wedging_the_channel(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from querywarden.gateway.remote import ProcessPipeline
    from querywarden.gateway.settings import GatewaySettings

    pipeline = ProcessPipeline(GatewaySettings(), admin=False)
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pipeline._attach_sync(_launched(ours, proc))
        theirs.sendall(b"\x00\x00\x00\x03abc")  # a frame whose body is not a message
        until(lambda: bool(select_readable(ours)), "the frame never arrived", 5)
        pipeline._on_readable()
        assert not pipeline.alive and pipeline._sock is None
        assert proc.poll() is not None, "the engine process that sent it was ended (and would be restarted)"
    finally:
        theirs.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _launched(sock: Any, proc: Any) -> Any:
    from querywarden.gateway.remote import _Launched

    sock.setblocking(False)
    return _Launched(sock, proc, FrameReader(), [])


def select_readable(sock: Any) -> list[Any]:
    import select

    return select.select([sock], [], [], 0)[0]


def test_stopping_beside_a_stalled_engine_process_does_not_wait_out_the_full_timeout(
    upstream: str, tmp_path: Path
) -> None:
    with process_gateway(upstream, tmp_path, engine_stall_timeout=0.5) as (client, _, server):
        proc = server.pipeline._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)  # the stop ends it: a stopped process still dies of SIGKILL
        assert timed_post(client, "c")[0] == 200
        until(lambda: server.pipeline.stalled, "the stall was never seen", 10)
        started = time.monotonic()
        server.pipeline.stop()
        assert time.monotonic() - started < 30, "a minute to send and a minute to wait, before"
        assert proc.poll() is not None


def test_a_very_slow_engine_process_costs_model_traffic_nothing(upstream: str, tmp_path: Path) -> None:
    """The engine process runs 10% of the time (stopped 200 ms, continued 20 ms, in turn)."""
    import threading

    with process_gateway(upstream, tmp_path, queue_size=30) as (client, admin, server):
        proc = server.pipeline._proc
        assert proc is not None
        done = threading.Event()

        def throttle() -> None:
            while not done.is_set():
                with stopped(proc.pid):
                    time.sleep(0.2)
                time.sleep(0.02)

        slow = threading.Thread(target=throttle)
        slow.start()
        try:
            answers = [timed_post(client, f"k{i % 4}") for i in range(150)]
            depths = server.pipeline.depth
        finally:
            done.set()
            slow.join()
        assert [code for code, _ in answers] == [200] * 150 and max(s for _, s in answers) < 1.0
        assert depths <= 30
        assert server.pipeline.restarts == 0 and admin.get("/healthz").json()["engine"] == "up"
        until(lambda: server.pipeline.depth == 0, "the engine never caught up")
        s = server.pipeline.stats
        assert s.handled + s.dropped == 150, "every exchange was either processed or counted as dropped"
