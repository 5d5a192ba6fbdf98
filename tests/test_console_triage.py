"""Operators acknowledge and close findings from the console (CSRF-checked, audited with
who, when and why), and every login attempt lands in the audit with the client IP and
never the secret. Served by uvicorn on loopback over a store filled by replaying attacks."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from starlette.requests import Request

from e2e.traffic import copied_store, profiles
from gateway_upstream import LoopbackServer
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext
from querywarden.console.settings import ConsoleSettings, hash_password, token_digest
from querywarden.console.standalone import standalone_app
from querywarden.console.web import client_address
from querywarden.core.engine import Engine
from querywarden.core.records import Severity

TOKEN = "console-triage-token-0123456789"
PASSWORD = "hunter22-triage"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ConsoleContext]:
    store = copied_store(tmp_path)
    settings = ConsoleSettings(
        users={"alice": hash_password(PASSWORD)},
        token_sha256=(token_digest(TOKEN),),
        secure_cookies=False,
        max_login_failures=3,
    )
    context = ConsoleContext(store=store, auth=Auth(settings), engine=Engine(profiles()))
    yield context
    store.close()


@pytest.fixture
def browser(ctx: ConsoleContext) -> Iterator[httpx.Client]:
    with LoopbackServer(standalone_app(ctx)) as s, httpx.Client(base_url=s.url, follow_redirects=True) as c:
        r = c.post("/console/login", data={"user": "alice", "password": PASSWORD})
        assert r.status_code == 200
        yield c


def inverter_finding(ctx: ConsoleContext) -> str:
    found = ctx.store.findings(principal="inverter", severity_at_least="high")
    assert found, "the sample traffic raises a high finding on the inverter"
    return found[0].finding_id


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_acknowledge_and_close_from_the_finding_page(browser: httpx.Client, ctx: ConsoleContext) -> None:
    fid = inverter_finding(ctx)
    page = browser.get(f"/console/findings/{fid}").text
    assert 'value="acknowledge"' in page and 'value="close"' in page
    token = csrf_of(page)

    r = browser.post(f"/console/findings/{fid}/triage", data={"action": "close", "note": "x"})
    assert r.status_code == 403, "no CSRF token, no change"
    assert ctx.store.finding(fid).finding.status != "closed"  # type: ignore[union-attr]

    r = browser.post(f"/console/findings/{fid}/triage", data={"action": "acknowledge", "note": "SOC-9", "csrf": token})
    assert r.status_code == 200 and "changed=acknowledge" in str(r.url)
    assert "Finding acknowledged" in r.text and "by alice" in r.text and "SOC-9" in r.text
    listed = browser.get("/console/findings", params={"status": "active"}).text
    assert fid in listed and ">ack</span>" in listed, "an acknowledged finding stays visible, marked"

    r = browser.post(f"/console/findings/{fid}/triage", data={"action": "close", "note": "exercise", "csrf": token})
    assert r.status_code == 200 and "Finding closed" in r.text
    assert 'value="close"' not in r.text, "a closed finding offers no triage buttons"
    assert fid not in browser.get("/console/findings", params={"status": "active"}).text

    again = browser.post(f"/console/findings/{fid}/triage", data={"action": "close", "csrf": token})
    assert again.status_code == 409 and "re-opens when the engine raises it again" in html.unescape(again.text)
    bad = browser.post(f"/console/findings/{fid}/triage", data={"action": "delete", "csrf": token})
    assert bad.status_code == 400
    missing = browser.post("/console/findings/fnd-none/triage", data={"action": "close", "csrf": token})
    assert missing.status_code == 404

    audit = browser.get("/console/audit", params={"log": "operator"}).text
    assert audit.count(f">{fid}</a>") == 2 and "exercise" in audit and "SOC-9" in audit


def test_the_engine_raising_a_closed_finding_reopens_it_in_the_console(
    browser: httpx.Client, ctx: ConsoleContext
) -> None:
    fid = inverter_finding(ctx)
    ctx.store.triage_finding(fid, "close", "looked benign", by="bob")
    stored = ctx.store.finding(fid).finding  # type: ignore[union-attr]
    ctx.store.add_findings(
        [msgspec.structs.replace(stored, status="updated", revision=stored.revision + 1, severity=Severity.CRITICAL)]
    )
    page = browser.get(f"/console/findings/{fid}").text
    assert "re-opened by the engine" in page and "by bob" in page and 'value="close"' in page
    assert "re-opened</span>" in browser.get("/console/findings").text


def test_login_attempts_are_audited_with_the_client_ip_never_the_secret(ctx: ConsoleContext) -> None:
    with LoopbackServer(standalone_app(ctx)) as s, httpx.Client(base_url=s.url, follow_redirects=True) as c:
        assert c.post("/console/login", data={"user": "alice", "password": "wrong-guess-1"}).status_code == 401
        assert c.post("/console/login", data={"user": "", "password": "not-the-token"}).status_code == 401
        assert c.post("/console/login", data={"user": "alice", "password": PASSWORD}).status_code == 200
        with httpx.Client(base_url=s.url, follow_redirects=True) as other:
            assert other.post("/console/login", data={"user": "", "password": TOKEN}).status_code == 200
        events = [(e.event, e.by, e.subject, e.client_ip) for e in ctx.store.operator_audit()]
        assert events == [
            ("login", "token", "token", "127.0.0.1"),
            ("login", "alice", "alice", "127.0.0.1"),
            ("login_failed", "token", "token", "127.0.0.1"),
            ("login_failed", "alice", "alice", "127.0.0.1"),
        ]
        page = c.get("/console/audit", params={"log": "operator"}).text
        assert "login failed" in page and "127.0.0.1" in page
        for secret in ("wrong-guess-1", "not-the-token", PASSWORD, TOKEN):
            assert secret not in page
            assert all(secret not in (e.note + e.subject + e.by) for e in ctx.store.operator_audit())


def test_a_locked_out_client_is_audited_once_per_lockout(ctx: ConsoleContext) -> None:
    with LoopbackServer(standalone_app(ctx)) as s, httpx.Client(base_url=s.url) as c:
        for n in range(10):  # max_login_failures = 3: the 4th attempt onwards is refused unchecked
            assert c.post("/console/login", data={"user": "alice", "password": f"guess-{n}"}).status_code == 401
        assert c.post("/console/login", data={"user": "alice", "password": PASSWORD}).status_code == 401
    failed = ctx.store.operator_audit(event="login_failed")
    assert len(failed) == 4, "three checked failures and one note that the client is locked out"
    assert failed[0].note.startswith("locked out after too many failures")
    assert ctx.store.operator_audit(event="login") == []


def test_the_client_address_behind_the_admin_front_is_the_one_it_forwards() -> None:
    def request(client: tuple[str, int] | None, *forwarded: bytes) -> Request:
        headers = [(b"x-forwarded-for", value) for value in forwarded]
        return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "client": client})

    assert client_address(request(("192.0.2.1", 5000), b"10.9.9.9")) == "192.0.2.1", "a TCP peer is the client"
    # over the admin Unix socket: the front appends the real peer after whatever the client sent
    assert client_address(request(None, b"6.6.6.6, 7.7.7.7", b"192.0.2.44")) == "192.0.2.44"
    assert client_address(request(None)) is None
