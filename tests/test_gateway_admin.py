"""The admin side: health, Prometheus metrics with aggregate labels only, and mounts."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway_upstream import LoopbackServer, Upstream
from querywarden.core.engine import Engine
from querywarden.gateway import AdminContext, EnginePipeline, Gateway, GatewaySettings, create_admin_app

ROW = [0.2] * 8


def test_metrics_health_and_mounts_on_the_admin_port() -> None:
    up = Upstream()
    api = Starlette(routes=[Route("/ping", lambda request: PlainTextResponse("pong"))])
    with LoopbackServer(up.app) as upstream:
        settings = GatewaySettings(upstream=upstream.url, default_model="credit")
        engine = Engine({})
        pipeline = EnginePipeline.from_settings(engine, settings)
        gw = Gateway(settings, pipeline)
        gw.metrics.watch(pipeline)
        admin = create_admin_app(AdminContext(engine, pipeline, gw.metrics, settings), {"api": api})
        with LoopbackServer(gw) as traffic, LoopbackServer(admin) as adm, httpx.Client(timeout=10) as client:
            for key in ("alice-secret", "bob-secret"):
                r = client.post(f"{traffic.url}/predict", json={"instances": [ROW]}, headers={"x-api-key": key})
                assert r.status_code == 200
            client.post(f"{traffic.url}/predict", content=b"{", headers={"x-api-key": "alice-secret"})
            pipeline.drain(5)
            health = client.get(f"{adm.url}/healthz")
            assert health.status_code == 200 and health.json()["engine"] == "up"
            text = client.get(f"{adm.url}/metrics").text
            assert client.get(f"{adm.url}/api/ping").text == "pong"
            pipeline.stop()
            assert client.get(f"{adm.url}/healthz").status_code == 503

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(name.startswith("querywarden_") for name in families)
    requests = {
        (s.labels["route"], s.labels["outcome"]): s.value
        for s in families["querywarden_gateway_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("predict", "forwarded")] == 2 and requests[("predict", "bad_request")] == 1
    assert families["querywarden_engine_interactions"].samples[0].value == 2
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= {"route", "outcome", "action", "le"}, "no per-principal labels"
    assert "secret" not in text and "key_" not in text


@pytest.mark.parametrize("name", ["api", "/console/"])
def test_mount_names_are_normalized(name: str) -> None:
    settings = GatewaySettings()
    engine = Engine({})
    pipeline = EnginePipeline.from_settings(engine, settings)
    gw = Gateway(settings, pipeline)
    app = create_admin_app(AdminContext(engine, pipeline, gw.metrics, settings), {name: Starlette()})
    paths = [getattr(r, "path", None) for r in app.routes]
    assert f"/{name.strip('/')}" in paths
