"""The console over a real store filled by replaying sample attacks through the engine,
served by uvicorn on loopback and driven with plain HTTP: login, pages, decisions, CSRF."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from e2e.traffic import add_actor, copied_store, profiles
from gateway_upstream import LoopbackServer
from querywarden.console.auth import COOKIE, Auth
from querywarden.console.context import ConsoleContext
from querywarden.console.settings import ConsoleSettings, hash_password, token_digest
from querywarden.console.standalone import standalone_app
from querywarden.core.engine import Engine
from querywarden.core.records import Action
from querywarden.store import open_store

TOKEN = "console-test-token-0123456789"
PASSWORD_HASH = hash_password("hunter22")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ConsoleContext]:
    store = copied_store(tmp_path)
    settings = ConsoleSettings(
        users={"alice": PASSWORD_HASH}, token_sha256=(token_digest(TOKEN),), secure_cookies=False
    )
    context = ConsoleContext(store=store, auth=Auth(settings), engine=Engine(profiles()))
    yield context
    store.close()


@pytest.fixture
def server(ctx: ConsoleContext) -> Iterator[str]:
    with LoopbackServer(standalone_app(ctx)) as s:
        yield s.url


@contextmanager
def login(url: str, user: str = "alice", password: str = "hunter22") -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, follow_redirects=True) as client:
        r = client.post("/console/login", data={"user": user, "password": password, "next": "/console/models"})
        assert r.status_code == 200 and r.url.path == "/console/models", r.text[:300]
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "every page with a form carries the CSRF token"
    return found.group(1)


def test_every_page_needs_a_login(server: str) -> None:
    with httpx.Client(base_url=server) as anon:
        for path in ("/console/", "/console/findings", "/console/principals/inverter", "/console/models"):
            r = anon.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next="), path
        r = anon.post("/console/principals/inverter/decision", data={"action": "allow"})
        assert r.status_code == 303, "an anonymous post changes nothing and is sent to log in"
        assert anon.get("/console/login").status_code == 200


def test_login_with_password_or_token_and_wrong_ones(server: str) -> None:
    with httpx.Client(base_url=server, follow_redirects=True) as c:
        r = c.post("/console/login", data={"user": "alice", "password": "nope"})
        assert r.status_code == 401 and "Wrong credentials" in r.text and COOKIE not in c.cookies
        r = c.post("/console/login", data={"user": "alice", "password": "hunter22"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
    with login(server, "", TOKEN) as c:
        assert c.get("/console/").status_code == 200
    with httpx.Client(base_url=server, follow_redirects=True) as c:
        r = c.post("/console/login", data={"user": "", "password": TOKEN, "next": "https://evil.example/"})
        assert r.url.path == "/console/", "next never leaves the console"
        r = c.post(
            "/console/login", data={"user": "alice", "password": "hunter22"}, headers={"origin": "http://evil.example"}
        )
        assert r.status_code == 403, "a login posted from another site is refused"


def test_cookie_is_secure_by_default(ctx: ConsoleContext) -> None:
    ctx.auth = Auth(ConsoleSettings(users={"alice": PASSWORD_HASH}))
    with LoopbackServer(standalone_app(ctx)) as s, httpx.Client(base_url=s.url) as c:
        r = c.post("/console/login", data={"user": "alice", "password": "hunter22"}, follow_redirects=False)
        assert "secure" in r.headers["set-cookie"].lower().split("; ")


def test_pages_show_the_replayed_attack(server: str) -> None:
    with login(server) as c:
        overview = c.get("/console/")
        assert overview.status_code == 200
        assert "inverter" in overview.text and "Invert AI Model" in overview.text and "<svg" in overview.text
        csp = overview.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        findings = c.get("/console/findings", params={"status": "active", "severity": "high"})
        ids = re.findall(r'href="/console/findings/(fnd-[0-9a-f]+)"', findings.text)
        assert ids, "the inversion finding is listed"
        finding = c.get(f"/console/findings/{ids[0]}").text
        assert "AML.T0024.001" in finding or "AML.T0043" in finding
        assert "ML03:2023" in finding or "ML01:2023" in finding, "OWASP ids are shown"
        assert 'class="trigger"' in finding, "the triggering interaction is marked"
        assert "Affected principals" in finding and "/console/principals/inverter" in finding
        none = c.get("/console/findings", params={"technique": "AML.T0056"})
        assert "No findings match" in none.text
        principal = c.get("/console/principals/inverter").text
        for title in (
            "Query volume",
            "Output margin and target-class confidence",
            "Near-duplicate rate",
            "Extraction budget progress",
        ):
            assert f'aria-label="{title}"' in principal, title
        assert "AML.T0043 high" in principal, "the engine's decision and its reason are shown"
        models = c.get("/console/models").text
        assert "digits" in models and "credit" in models and "full probability vectors over 10 classes" in models
        assert c.get("/console/principals/nobody").status_code == 404
        assert c.get("/console/static/console.css").headers["content-type"].startswith("text/css")
        for path in ("/console/actors", "/console/audit", "/console/intel", "/console/principals?order=queries"):
            assert c.get(path).status_code == 200, path


def test_block_from_the_console_reaches_engine_store_and_audit(server: str, ctx: ConsoleContext) -> None:
    with login(server) as c:
        page = c.get("/console/principals/scraper").text
        token = csrf_of(page)
        r = c.post("/console/principals/scraper/decision", data={"action": "block", "note": "ticket 42"})
        assert r.status_code == 403, "no CSRF token, no change"
        assert ctx.engine is not None and ctx.engine.decision_for("scraper").action is Action.ALLOW
        r = c.post("/console/principals/scraper/decision", data={"action": "block", "note": "ticket 42", "csrf": token})
        assert r.status_code == 200 and "changed=block" in str(r.url)
        assert ctx.engine.decision_for("scraper").action is Action.BLOCK
        assert ctx.engine.decision_for("scraper").source == "operator"
        entry = ctx.store.audit(limit=1, principal="scraper")[0]
        assert (entry.action, entry.by, entry.note, entry.source) == ("block", "alice", "ticket 42", "operator")
        assert "ticket 42" in r.text
        c.post("/console/principals/scraper/decision", data={"action": "clear", "csrf": token})
        assert ctx.engine.decision_for("scraper").action is Action.ALLOW
        assert ctx.store.audit(limit=1, principal="scraper")[0].action == "clear"
        bad = c.post("/console/principals/scraper/decision", data={"action": "nuke", "csrf": token})
        assert bad.status_code == 400


def test_actor_decision_applies_to_every_member(server: str, ctx: ConsoleContext) -> None:
    actor = ctx.store.actor(add_actor(ctx.store))
    assert actor is not None
    with login(server) as c:
        token = csrf_of(c.get(f"/console/actors/{actor.actor}").text)
        r = c.post(f"/console/actors/{actor.actor}/decision", data={"action": "throttle", "csrf": token})
        assert r.status_code == 200
    assert ctx.engine is not None
    for member in actor.members:
        d = ctx.engine.decision_for(member)
        assert d.action is Action.THROTTLE and d.params == {"rate": 0.2, "burst": 5} and d.actor == actor.actor


def test_logout_needs_csrf_and_ends_the_session(server: str) -> None:
    with login(server) as c:
        token = csrf_of(c.get("/console/").text)
        assert c.post("/console/logout").status_code == 403
        r = c.post("/console/logout", data={"csrf": token})
        assert r.url.path == "/console/login"
        assert c.get("/console/", follow_redirects=False).status_code == 303


def test_serve_mounts_console_and_api_sharing_one_printed_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from querywarden.gateway.server import build_server, load_gateway_settings

    settings = load_gateway_settings(None, upstream="http://127.0.0.1:9")
    server = build_server(settings, None, f"sqlite:///{tmp_path / 'qw.db'}")
    try:
        printed = re.findall(r"One-time console and API token for this run: (\S+)", capsys.readouterr().err)
        assert len(printed) == 1, "one token for the console and the API together"
        with LoopbackServer(server.admin) as s, httpx.Client(base_url=s.url, follow_redirects=True) as c:
            assert c.get("/api/stats").status_code == 401
            r = c.post("/console/login", data={"user": "", "password": printed[0]}, follow_redirects=False)
            assert (
                r.status_code == 303
                and r.headers["location"] == "/console/"
                and "secure" in r.headers["set-cookie"].lower()
            )
            bearer = {"authorization": f"Bearer {printed[0]}"}
            assert c.get("/api/whoami", headers=bearer).json() == {"name": "token", "via": "bearer", "live": True}
            assert "Overview" in c.get("/console/", headers=bearer).text
            # a console elsewhere on the same store blocks a principal; this gateway follows
            other = open_store(f"sqlite:///{tmp_path / 'qw.db'}")
            try:
                elsewhere = ConsoleContext(store=other, auth=Auth(ConsoleSettings()))
                elsewhere.apply("key_remote", "block", by="bob")
            finally:
                other.close()
            deadline = time.monotonic() + 10
            while server.engine.decision_for("key_remote").action is not Action.BLOCK:
                assert time.monotonic() < deadline, "the operator decision never reached the engine"
                time.sleep(0.1)
            assert c.get("/healthz").status_code in (200, 503)
    finally:
        server.close()
    bare = build_server(settings, None, None)
    with LoopbackServer(bare.admin) as s:
        r = httpx.get(s.url + "/console/")
        assert r.status_code == 503 and "--db" in r.text
        assert httpx.get(s.url + "/api/findings").json()["error"]["code"] == "no_store"


def test_search_jumps_to_a_finding_principal_or_actor(server: str, ctx: ConsoleContext) -> None:
    finding = ctx.store.findings(limit=1)[0].finding_id
    actor = add_actor(ctx.store)
    with login(server) as c:
        assert c.get("/console/search", params={"q": finding}).url.path == f"/console/findings/{finding}"
        assert c.get("/console/search", params={"q": " inverter "}).url.path == "/console/principals/inverter"
        assert c.get("/console/search", params={"q": actor}).url.path == f"/console/actors/{actor}"
        missing = c.get("/console/search", params={"q": "<nobody>"})
        assert missing.status_code == 404 and "&lt;nobody&gt;" in missing.text
