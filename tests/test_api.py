"""The REST API over a real store filled by replaying sample attacks, served on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from e2e.traffic import add_actor, copied_store, fill, profiles
from gateway_upstream import LoopbackServer
from querywarden.api.app import create_api
from querywarden.api.openapi import document
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext
from querywarden.console.settings import ConsoleSettings, hash_password, token_digest
from querywarden.console.standalone import standalone_app
from querywarden.core.engine import Engine
from querywarden.core.records import Action

TOKEN = "api-test-token-abcdefghijklmnop"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ConsoleContext]:
    store = copied_store(tmp_path)
    settings = ConsoleSettings(
        users={"alice": hash_password("pw-alice")}, token_sha256=(token_digest(TOKEN),), secure_cookies=False
    )
    context = ConsoleContext(store=store, auth=Auth(settings), engine=Engine(profiles()))
    yield context
    store.close()


@pytest.fixture
def api(ctx: ConsoleContext) -> Iterator[httpx.Client]:
    with (
        LoopbackServer(standalone_app(ctx)) as s,
        httpx.Client(base_url=s.url + "/api", headers={"authorization": f"Bearer {TOKEN}"}) as c,
    ):
        yield c


def test_openapi_describes_every_route_and_nothing_else(ctx: ConsoleContext) -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    routed: dict[str, set[str]] = {}
    for route in create_api(ctx).routes:
        assert isinstance(route, Route)
        methods = {m.lower() for m in (route.methods or ())} - {"head"}
        routed.setdefault(route.path, set()).update(methods)
    described = {path: set(ops) for path, ops in doc["paths"].items()}
    assert routed == described
    refs = set(re.findall(r'"#/components/(?:schemas|responses)/(\w+)"', str(doc).replace("'", '"')))
    known = set(doc["components"]["schemas"]) | set(doc["components"]["responses"])
    assert refs <= known, refs - known


def test_requests_without_credentials_are_refused(api: httpx.Client) -> None:
    r = httpx.get(str(api.base_url).rstrip("/") + "/findings")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(str(api.base_url).rstrip("/") + "/findings", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert httpx.get(str(api.base_url).rstrip("/") + "/openapi.json").status_code == 200


def test_findings_filters_and_pagination(api: httpx.Client, ctx: ConsoleContext) -> None:
    body = api.get("/findings").json()
    assert body["total"] == ctx.store.count_findings() >= 2
    attacks = api.get("/findings", params={"severity": "medium"}).json()["items"]
    assert {f["principals"][0] for f in attacks} == {"inverter"}, "attack patterns only on the attacker"
    exposure = [f for f in body["items"] if f["severity"] in ("info", "low")]
    assert len(exposure) + len(attacks) == body["total"], "the rest is exposure (low/info), no attack pattern"
    crit = api.get("/findings", params={"severity": "critical"}).json()
    assert crit["total"] == ctx.store.count_findings(severity_at_least="critical")
    assert all(f["severity"] == "critical" for f in crit["items"])
    inv = api.get("/findings", params={"technique": "AML.T0024.001", "status": "active"}).json()
    assert [f["technique"]["id"] for f in inv["items"]] == ["AML.T0024.001"]
    assert inv["items"][0]["owasp"] == ["ML03:2023"]
    page1 = api.get("/findings", params={"limit": 1}).json()
    page2 = api.get("/findings", params={"limit": 1, "offset": 1}).json()
    assert page1["next_offset"] == 1 and page1["items"][0]["finding_id"] != page2["items"][0]["finding_id"]
    detail = api.get(f"/findings/{inv['items'][0]['finding_id']}").json()
    assert detail["events"] and detail["signals"] and detail["signals"][0]["principal"] == "inverter"
    assert api.get("/findings/fnd-nope").status_code == 404
    for params, name in (
        ({"status": "pending"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"severity": "urgent"}, "severity"),
    ):
        r = api.get("/findings", params=params)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(name), params


def test_principals_actors_and_stats(api: httpx.Client, ctx: ConsoleContext) -> None:
    first = api.get("/principals", params={"limit": 5}).json()
    assert first["items"][0]["principal"] == "inverter" and first["items"][0]["max_severity"] == "critical"
    second = api.get("/principals", params={"limit": 5, "offset": 5}).json()
    names = [p["principal"] for p in first["items"] + second["items"]]
    assert len(set(names)) == 10, "pages do not overlap"
    by_queries = api.get("/principals", params={"order_by": "queries", "limit": 2}).json()["items"]
    assert by_queries[0]["queries"] >= by_queries[1]["queries"]
    one = api.get("/principals/inverter").json()
    assert one["decision"]["action"] == "block" and one["audit"][0]["principal"] == "inverter"
    rows = api.get("/principals/inverter/interactions", params={"limit": 3}).json()["items"]
    assert len(rows) == 3 and rows[0]["ts"] >= rows[1]["ts"] >= rows[2]["ts"]
    sigs = api.get("/principals/inverter/signals", params={"detector": "inversion"}).json()["items"]
    assert sigs and {s["detector"] for s in sigs} == {"inversion"}
    add_actor(ctx.store)
    actors = api.get("/actors").json()["items"]
    assert actors and api.get(f"/actors/{actors[0]['actor']}").json()["members"] == actors[0]["members"]
    assert api.get("/actors/nobody").status_code == 404
    stats = api.get("/stats").json()
    assert stats["interactions"] == ctx.store.stats().interactions == 1474
    models = api.get("/models").json()["items"]
    assert {m["model"] for m in models} == {"digits", "credit"}
    for m in models:
        assert m["score"] == min(100, sum(r["points"] for r in m["reasons"]))
        assert m["probabilities"] and m["calls_per_day"] > 0


def test_decisions_change_the_live_engine_and_the_audit(api: httpx.Client, ctx: ConsoleContext) -> None:
    assert ctx.engine is not None
    r = api.put("/decisions/scraper", json={"action": "harden", "params": {"round": 2}, "note": "SOC-7"})
    assert r.status_code == 200 and r.json()["enforced_now"] is True
    live = ctx.engine.decision_for("scraper")
    assert live.action is Action.HARDEN and live.params == {"round": 2}
    got = api.get("/decisions/scraper").json()
    assert got["stored"]["action"] == "harden" and got["live"]["source"] == "operator"
    assert api.get("/decisions", params={"source": "operator"}).json()["total"] == 1
    audit = api.get("/audit", params={"principal": "scraper"}).json()["items"][0]
    assert (audit["action"], audit["note"], audit["by"]) == ("harden", "SOC-7", "token")
    assert api.delete("/decisions/scraper").status_code == 200
    assert ctx.engine.decision_for("scraper").action is Action.ALLOW
    for bad in ({"action": "explode"}, {"action": "block", "extra": 1}, {"action": "block", "params": [1]}):
        r = api.put("/decisions/scraper", json=bad)
        assert r.status_code == 400, bad
    assert api.put("/decisions/scraper", content=b"not json").status_code == 400


def test_a_browser_session_needs_the_csrf_header_to_change_anything(ctx: ConsoleContext) -> None:
    with LoopbackServer(standalone_app(ctx)) as s, httpx.Client(base_url=s.url, follow_redirects=True) as browser:
        page = browser.post("/console/login", data={"user": "alice", "password": "pw-alice"}).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        assert browser.get("/api/whoami").json() == {"name": "alice", "via": "session", "live": True}
        r = browser.put("/api/decisions/scraper", json={"action": "block"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
        assert ctx.engine is not None and ctx.engine.decision_for("scraper").action is Action.ALLOW
        r = browser.put("/api/decisions/scraper", json={"action": "block"}, headers={"x-csrf-token": csrf.group(1)})
        assert r.status_code == 200 and ctx.engine.decision_for("scraper").action is Action.BLOCK
        assert ctx.store.audit(limit=1, principal="scraper")[0].by == "alice"


@pytest.mark.postgres
def test_the_api_answers_the_same_on_postgresql(postgres_server: Any, ctx: ConsoleContext) -> None:
    from querywarden.store import open_store

    pg = open_store(postgres_server.new_database())
    try:
        fill(pg)
        pg_ctx = ConsoleContext(store=pg, auth=ctx.auth, engine=Engine(profiles()))
        paths = (
            "/findings?severity=high",
            "/principals?limit=20",
            "/principals?order_by=queries&limit=7&offset=3",
            "/stats",
            "/models",
            "/actors",
            "/decisions",
            "/principals/inverter/interactions?limit=5",
        )
        answers = []
        for context in (ctx, pg_ctx):
            with (
                LoopbackServer(standalone_app(context)) as s,
                httpx.Client(base_url=s.url + "/api", headers={"authorization": f"Bearer {TOKEN}"}) as c,
            ):
                answers.append([c.get(p).json() for p in paths])
                r = c.put("/decisions/scraper", json={"action": "block"})
                assert (
                    r.status_code == 200
                    and c.get("/audit", params={"principal": "scraper"}).json()["items"][0]["action"] == "block"
                )
        for path, sqlite_answer, pg_answer in zip(paths, *answers, strict=True):
            assert sqlite_answer == pg_answer, path
    finally:
        pg.close()
