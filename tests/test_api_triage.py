"""Operators acknowledge and close findings through the REST API, over a store filled by
replaying sample attacks: audited with who, when and why, CSRF-checked for browsers, and
a closed finding re-opens when the engine raises it again."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from e2e.traffic import copied_store, fill, profiles
from gateway_upstream import LoopbackServer
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext
from querywarden.console.settings import ConsoleSettings, hash_password, token_digest
from querywarden.console.standalone import standalone_app
from querywarden.core.engine import Engine
from querywarden.core.records import Severity
from querywarden.store import Store, open_store

TOKEN = "api-triage-token-abcdefghijklmnop"


def context(store: Store) -> ConsoleContext:
    settings = ConsoleSettings(
        users={"alice": hash_password("pw-alice")}, token_sha256=(token_digest(TOKEN),), secure_cookies=False
    )
    return ConsoleContext(store=store, auth=Auth(settings), engine=Engine(profiles()))


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ConsoleContext]:
    store = copied_store(tmp_path)
    yield context(store)
    store.close()


@pytest.fixture
def api(ctx: ConsoleContext) -> Iterator[httpx.Client]:
    with (
        LoopbackServer(standalone_app(ctx)) as s,
        httpx.Client(base_url=s.url + "/api", headers={"authorization": f"Bearer {TOKEN}"}) as c,
    ):
        yield c


def inverter_finding(api: httpx.Client) -> dict[str, Any]:
    found = api.get("/findings", params={"principal": "inverter", "severity": "high"}).json()["items"]
    assert found, "the sample traffic raises a high finding on the inverter"
    return dict(found[0])


def test_acknowledge_keeps_the_finding_active_and_audits_who_when_why(api: httpx.Client) -> None:
    fid = inverter_finding(api)["finding_id"]
    assert inverter_finding(api)["triage"] is None
    r = api.post(f"/findings/{fid}/acknowledge", json={"note": "SOC-12 investigating"})
    assert r.status_code == 200
    body = r.json()["finding"]
    assert body["status"] == "updated" and body["triage"]["acknowledged_by"] == "token"
    assert body["triage"]["acknowledged_note"] == "SOC-12 investigating" and body["triage"]["closed_by"] is None
    active = api.get("/findings", params={"status": "active"}).json()["items"]
    assert fid in [f["finding_id"] for f in active], "an acknowledged finding stays visible"
    assert api.get(f"/findings/{fid}").json()["triage"]["acknowledged_at"] > 0
    (event,) = api.get("/audit/operator", params={"subject": fid}).json()["items"]
    assert (event["event"], event["by"], event["note"], event["client_ip"]) == (
        "acknowledge",
        "token",
        "SOC-12 investigating",
        "127.0.0.1",
    )


def test_close_hides_the_finding_and_it_reopens_when_the_engine_raises_it(api: httpx.Client, ctx: Any) -> None:
    f = inverter_finding(api)
    fid = f["finding_id"]
    r = api.post(f"/findings/{fid}/close", json={"note": "known red-team exercise"})
    assert r.status_code == 200 and r.json()["finding"]["status"] == "closed"
    assert r.json()["finding"]["triage"]["closed_revision"] == f["revision"]
    active = api.get("/findings", params={"status": "active"}).json()["items"]
    assert fid not in [x["finding_id"] for x in active]
    detail = api.get(f"/findings/{fid}").json()
    assert [e["status"] for e in detail["events"]][-1] == "closed"

    again = api.post(f"/findings/{fid}/close")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert "re-opens when the engine raises it again" in again.json()["error"]["message"]
    assert api.post(f"/findings/{fid}/acknowledge").status_code == 409

    stored = ctx.store.finding(fid).finding  # the engine raises it again: a new revision
    ctx.store.add_findings(
        [msgspec.structs.replace(stored, status="updated", revision=stored.revision + 1, severity=Severity.CRITICAL)]
    )
    reopened = api.get(f"/findings/{fid}").json()
    assert reopened["status"] == "updated" and reopened["triage"]["reopened"] is True
    assert reopened["triage"]["closed_note"] == "known red-team exercise"
    assert fid in [x["finding_id"] for x in api.get("/findings", params={"status": "active"}).json()["items"]]
    events = [e["event"] for e in api.get("/audit/operator", params={"event": "close"}).json()["items"]]
    assert events == ["close"], "the refused attempts are not audited"


def test_bad_triage_requests_are_refused_with_the_reason(api: httpx.Client) -> None:
    fid = inverter_finding(api)["finding_id"]
    r = api.post("/findings/fnd-missing/close")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for body, reason in (
        (b"not json", "body: expected a JSON object"),
        (b"[1]", "body: expected a JSON object"),
        (b'{"note": "x", "status": "closed"}', "body: unknown field(s) ['status']; allowed: note"),
        (b'{"note": 7}', "note: expected a string of at most 500 characters"),
    ):
        r = api.post(f"/findings/{fid}/close", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"] == reason
    r = api.get("/audit/operator", params={"event": "explode"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("event: unknown value 'explode'")
    assert inverter_finding(api)["status"] == "updated"


def test_a_browser_session_needs_the_csrf_header_to_triage(ctx: ConsoleContext) -> None:
    with LoopbackServer(standalone_app(ctx)) as s, httpx.Client(base_url=s.url, follow_redirects=True) as browser:
        page = browser.post("/console/login", data={"user": "alice", "password": "pw-alice"}).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        fid = browser.get("/api/findings", params={"principal": "inverter"}).json()["items"][0]["finding_id"]
        r = browser.post(f"/api/findings/{fid}/close", json={"note": "x"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
        assert ctx.store.finding(fid).finding.status != "closed"  # type: ignore[union-attr]
        r = browser.post(f"/api/findings/{fid}/close", json={"note": "x"}, headers={"x-csrf-token": csrf.group(1)})
        assert r.status_code == 200 and r.json()["finding"]["triage"]["closed_by"] == "alice"


@pytest.mark.postgres
def test_triage_answers_the_same_on_postgresql(postgres_server: Any, ctx: ConsoleContext) -> None:
    pg = open_store(postgres_server.new_database())
    try:
        fill(pg)
        answers = []
        for c in (ctx, context(pg)):
            with (
                LoopbackServer(standalone_app(c)) as s,
                httpx.Client(base_url=s.url + "/api", headers={"authorization": f"Bearer {TOKEN}"}) as client,
            ):
                fid = inverter_finding(client)["finding_id"]
                client.post(f"/findings/{fid}/acknowledge", json={"note": "mine"})
                closed = client.post(f"/findings/{fid}/close", json={"note": "done"}).json()["finding"]
                for t in ("acknowledged_at", "closed_at"):
                    assert closed["triage"].pop(t) > 0
                listed = client.get("/findings", params={"status": "closed"}).json()["total"]
                audit = [(e["event"], e["note"]) for e in client.get("/audit/operator").json()["items"]]
                answers.append((closed, listed, audit))
        assert answers[0] == answers[1]
    finally:
        pg.close()


def test_a_close_inside_serve_is_exported_as_an_ocsf_close(tmp_path: Path) -> None:
    from gateway_upstream import Upstream
    from querywarden.gateway.server import build_server, load_gateway_settings

    (tmp_path / "scrapers.txt").write_text("127.0.0.0/8\n")
    events = tmp_path / "findings.ocsf.jsonl"
    cfg = tmp_path / "qw.toml"
    cfg.write_text(
        f"""[models.credit]
n_features = 8

[store]
url = "sqlite:///{tmp_path}/qw.db"

[console]
token_sha256 = ["{token_digest(TOKEN)}"]

[[exports]]
kind = "ocsf"
path = "{events}"

[[intel.feeds]]
kind = "ip"
path = "scrapers.txt"
severity = "high"
"""
    )
    with LoopbackServer(Upstream().app) as up:
        server = build_server(load_gateway_settings(None, upstream=up.url, default_model="credit"), cfg)
        try:
            with LoopbackServer(server.gateway) as gw:
                r = httpx.post(gw.url + "/predict", json={"instances": [[0.3] * 8]}, headers={"x-api-key": "k_1"})
                assert r.status_code == 200
            server.pipeline.drain(5)
            assert server.dispatcher.drain(10) and server.store is not None
            server.store.flush()
            (opened,) = [json.loads(line) for line in events.read_text().splitlines()]
            fid = opened["finding_info"]["uid"]
            with (
                LoopbackServer(server.admin) as admin,
                httpx.Client(base_url=admin.url + "/api", headers={"authorization": f"Bearer {TOKEN}"}) as api,
            ):
                assert api.post(f"/findings/{fid}/acknowledge", json={"note": "on it"}).status_code == 200
                assert api.post(f"/findings/{fid}/close", json={"note": "key revoked"}).status_code == 200
            assert server.dispatcher.drain(10)
            lines = [json.loads(line) for line in events.read_text().splitlines()]
            assert len(lines) == 2, "an acknowledge changes no status and is not exported"
            closed = lines[1]
            assert closed["finding_info"]["uid"] == fid
            assert (closed["activity_id"], closed["status_id"], closed["status"]) == (3, 4, "Resolved")
        finally:
            server.close()
