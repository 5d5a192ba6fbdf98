"""``querywarden serve`` for real: a subprocess in front of a real upstream, and a restart
that keeps the engine's decisions through the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway_upstream import LoopbackServer, Upstream, free_port
from querywarden.core import registry
from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Detector
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.errors import ConfigError
from querywarden.gateway.server import build_server, load_gateway_settings

ROW = [0.3] * 8
QW = str(Path(sys.executable).with_name("querywarden"))


class ThirdQuery(Detector):
    name = "gw_serve_third"
    technique = EXTRACTION

    def __init__(self, *, profile: ModelProfile) -> None:
        super().__init__(profile=profile)
        self.counts: dict[str, int] = {}

    def update(self, interaction: Interaction) -> list[Signal]:
        n = self.counts[interaction.principal] = self.counts.get(interaction.principal, 0) + 1
        return [self.signal(interaction, score=1.0, severity=Severity.HIGH, evidence={})] if n == 3 else []


@pytest.fixture(autouse=True)
def _test_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, ThirdQuery.name, ThirdQuery)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with LoopbackServer(Upstream().app) as server:
        yield server.url


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve exited")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_serve_runs_both_ports_and_stops_cleanly(upstream: str, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [
            QW,
            "serve",
            "--upstream",
            upstream,
            "--port",
            str(port),
            "--admin-port",
            str(admin),
            "--db",
            f"sqlite:///{tmp_path / 'qw.db'}",
        ],
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        wait_up(f"http://127.0.0.1:{admin}/healthz", proc)
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"instances": [ROW]}, headers={"x-api-key": "k"})
        assert r.status_code == 200 and len(r.json()["predictions"][0]) == 3
        assert httpx.get(f"http://127.0.0.1:{port}/health").text == "upstream ok"
        metrics = httpx.get(f"http://127.0.0.1:{admin}/metrics").text
        assert 'querywarden_gateway_requests_total{outcome="forwarded",route="predict"} 1.0' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()

    from querywarden.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'qw.db'}") as store:
        assert store.load_snapshot("gateway-engine") is not None, "the engine state is saved on shutdown"


def test_serve_refuses_a_bad_upstream_with_exit_code_2() -> None:
    proc = subprocess.run([QW, "serve", "--upstream", "localhost"], capture_output=True, timeout=30)
    assert proc.returncode == 2 and b"--upstream must be a URL" in proc.stderr


def test_gateway_settings_errors_are_located(tmp_path: Path) -> None:
    cfg = tmp_path / "qw.toml"
    cfg.write_text("[models.credit]\nn_features = 8\n\n[gateway]\nread_timeout = 5\nqueue_sise = 10\n")
    with pytest.raises(ConfigError) as caught:
        load_gateway_settings(cfg)
    assert caught.value.line == 6 and "allowed:" in caught.value.reason and "queue_size" in caught.value.reason
    cfg.write_text('[gateway]\non_overflow = "maybe"\n')
    with pytest.raises(ConfigError, match="'open' or 'closed'"):
        load_gateway_settings(cfg)
    cfg.write_text('[gateway]\nqueue_size = 10\nprincipal_sources = ["bearer", "ip"]\n')
    s = load_gateway_settings(cfg, upstream="http://up:1")
    assert s.queue_size == 10 and s.principal_sources == ("bearer", "ip") and s.upstream == "http://up:1"


def test_decisions_survive_a_gateway_restart(upstream: str, tmp_path: Path) -> None:
    cfg = tmp_path / "qw.toml"
    db = tmp_path / "qw.db"
    cfg.write_text(f'[models.credit]\nn_features = 8\n\n[store]\nurl = "sqlite:///{db}"\n')
    settings = load_gateway_settings(None, upstream=upstream, default_model="credit")
    first = build_server(settings, cfg)
    with LoopbackServer(first.gateway) as gw, httpx.Client(base_url=gw.url) as client:
        codes = [
            client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"}).status_code
            for _ in range(3)
        ]
        first.pipeline.drain(5)
        blocked = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"})
    assert codes == [200, 200, 200] and blocked.status_code == 403
    first.store.flush()
    first.save_state()
    first.close()

    second = build_server(settings, cfg)
    with LoopbackServer(second.gateway) as gw, httpx.Client(base_url=gw.url) as client:
        again = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "thief"})
        fine = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "customer"})
    second.close()
    assert again.status_code == 403 and again.json()["error"]["finding_id"] == blocked.json()["error"]["finding_id"]
    assert fine.status_code == 200
