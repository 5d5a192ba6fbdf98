"""The gateway with exports and intel configured: a request from a listed address becomes a
finding that reaches a real webhook and a real syslog listener, off the request path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from exports_receivers import HttpReceiver, UdpListener, wait_for
from gateway_upstream import LoopbackServer, Upstream
from querywarden.exports.webhook import SIGNATURE_HEADER, verify
from querywarden.gateway.server import build_server, load_gateway_settings

ROW = [0.3] * 8
SECRET = "gateway-webhook-secret"


def test_listed_client_is_found_exported_and_listed_as_a_match(tmp_path: Path) -> None:
    hook, udp = HttpReceiver(), UdpListener()
    (tmp_path / "scrapers.txt").write_text("127.0.0.0/8\n")
    cfg = tmp_path / "qw.toml"
    cfg.write_text(
        f"""[models.credit]
n_features = 8

[[exports]]
kind = "webhook"
url = "{hook.url}/qw"
secret = "{SECRET}"

[[exports]]
kind = "cef"
host = "127.0.0.1"
port = {udp.port}
min_severity = "high"

[[intel.feeds]]
kind = "ip"
path = "scrapers.txt"
severity = "high"
"""
    )
    with LoopbackServer(Upstream().app) as up:
        server = build_server(load_gateway_settings(None, upstream=up.url, default_model="credit"), cfg)
        try:
            with LoopbackServer(server.gateway) as gw, httpx.Client(base_url=gw.url) as client:
                first = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k_scraper"})
                server.pipeline.drain(5)
                second = client.post("/predict", json={"instances": [ROW]}, headers={"x-api-key": "k_scraper"})
            assert first.status_code == 200 and second.status_code == 403  # high: the default policy blocks
            assert server.dispatcher.drain(10)
            assert wait_for(lambda: len(udp.datagrams) >= 1)
            req = hook.requests[0]
            assert verify(SECRET.encode(), req.body, req.headers[SIGNATURE_HEADER.lower()], now=time.time())
            finding = json.loads(req.body)["findings"][0]
            principal = finding["principals"][0]  # the gateway names a caller by a keyed hash of its key
            assert principal.startswith("key_") and finding["technique"]["id"] == "AML.T0040"
            assert finding["evidence"]["intel"]["feed"] == "scrapers.txt" and finding["severity"] == "high"
            assert f"suser={principal}".encode() in udp.datagrams[0]
            from querywarden.intel import load_registry

            registry = load_registry(cfg)
            assert registry is not None and [m.principal for m in registry.matches()] == [principal]
            with LoopbackServer(server.admin) as admin:
                metrics = httpx.get(admin.url + "/metrics").text
            assert 'querywarden_export_findings_total{exporter="webhook",outcome="sent"} 1.0' in metrics
            assert 'querywarden_export_findings_total{exporter="cef",outcome="sent"} 1.0' in metrics
            # the rules for /metrics: querywarden_* names, aggregates only, _total counters
            samples = [line for line in metrics.splitlines() if line and not line.startswith("#")]
            assert samples and all(line.startswith("querywarden_") for line in samples)
            assert principal not in metrics and "k_scraper" not in metrics and "127.0.0.1" not in metrics
            for line in metrics.splitlines():
                if line.startswith("# TYPE") and line.endswith(" counter"):
                    assert line.split()[2].endswith("_total"), line
        finally:
            server.close()
            hook.close()
            udp.close()


def test_intel_refresh_runs_beside_the_engine_and_stops_with_the_exports(tmp_path: Path) -> None:
    import threading

    from querywarden.config import load_config
    from querywarden.exports.edge import attach_exports
    from querywarden.gateway.pipeline import EnginePipeline
    from querywarden.intel import load_registry

    (tmp_path / "keys.txt").write_text("key_a\n")
    cfg = tmp_path / "qw.toml"
    cfg.write_text(
        "[models.credit]\nn_features = 8\n\n[intel]\nrefresh = 0.05\n\n"
        '[[intel.feeds]]\nkind = "key"\npath = "keys.txt"\n'
    )
    pipeline = EnginePipeline(load_config(cfg).engine())
    dispatcher = attach_exports(pipeline, None, cfg)
    registry = load_registry(cfg)
    assert registry is not None
    first = registry.feeds()[0].loaded_ts
    assert wait_for(lambda: registry.feeds()[0].loaded_ts > first)  # reloaded in the background
    dispatcher.close()
    assert not any(t.name == "querywarden-intel-refresh" for t in threading.enumerate())
