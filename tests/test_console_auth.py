"""Credentials, sessions and CSRF: no default login, hashed secrets, signed cookies, lockout."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from querywarden.console.auth import COOKIE, Auth, Identity
from querywarden.console.settings import (
    ConsoleSettings,
    hash_password,
    load_console_settings,
    settings_from_dict,
    token_digest,
    verify_password,
)
from querywarden.errors import ConfigError


def test_scrypt_hash_round_trip_and_salting() -> None:
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2, "each hash has its own salt"
    assert h1.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", h1) and verify_password("correct horse", h2)
    assert not verify_password("correct hors", h1)
    assert not verify_password("x", "scrypt$16384$8$1$zz$00"), "a malformed hash never verifies"


def test_console_table_is_checked_with_located_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "qw.toml"
    good = hash_password("pw")
    cfg.write_text(f'[models.m]\nn_features = 2\n\n[console]\nusers = {{ alice = "{good}" }}\nsession_max_age = 60\n')
    s = load_console_settings(cfg)
    assert s.users == {"alice": good} and s.session_max_age == 60 and s.has_credentials
    cfg.write_text("[console]\nsecure_cookies = true\nusres = {}\n")
    with pytest.raises(ConfigError) as caught:
        load_console_settings(cfg)
    assert caught.value.line == 3 and "allowed:" in caught.value.reason and "users" in caught.value.reason
    with pytest.raises(ConfigError, match="scrypt hash"):
        settings_from_dict({"users": {"bob": "plaintext"}})
    with pytest.raises(ConfigError, match="SHA-256"):
        settings_from_dict({"token_sha256": ["abc"]})
    with pytest.raises(ConfigError, match="at least 16"):
        settings_from_dict({"secret_key": "short"})
    assert not load_console_settings(None).has_credentials


def test_no_credentials_means_a_fresh_one_time_token() -> None:
    told: list[str] = []
    a = Auth.with_fallback(ConsoleSettings(), told.append)
    b = Auth.with_fallback(ConsoleSettings(), told.append)
    assert b.login("", told[1], "c") == "token"
    assert len(told) == 2 and told[0] != told[1] and len(told[0]) >= 30
    assert a.login("", told[0], "c") == "token"
    assert a.login("", told[1], "c") is None, "a token is good only for the process that printed it"
    assert a.login("admin", "admin", "c") is None and a.login("", "", "c") is None
    configured = Auth.with_fallback(ConsoleSettings(token_sha256=(token_digest("t" * 32),)), told.append)
    assert len(told) == 2, "configured credentials print nothing"
    assert configured.token_valid("t" * 32) and not configured.token_valid("t" * 31)


def test_password_login_and_lockout_per_client() -> None:
    auth = Auth(ConsoleSettings(users={"alice": hash_password("s3cret")}, max_login_failures=3))
    assert auth.login("alice", "s3cret", "10.0.0.1", now=0.0) == "alice"
    for _ in range(3):
        assert auth.login("alice", "guess", "10.0.0.2", now=1.0) is None
    assert auth.login("alice", "s3cret", "10.0.0.2", now=2.0) is None, "locked out after 3 failures"
    assert auth.login("alice", "s3cret", "10.0.0.3", now=2.0) == "alice", "other clients are unaffected"
    assert auth.login("alice", "s3cret", "10.0.0.2", now=2.0 + 901) == "alice", "the window expires"
    assert auth.login("mallory", "s3cret", "10.0.0.4", now=0.0) is None


def _request(headers: dict[str, str]) -> httpx.Request:
    return httpx.Request("GET", "http://127.0.0.1/", headers=headers)


def test_sessions_are_signed_and_carry_csrf() -> None:
    from starlette.requests import Request

    auth = Auth(ConsoleSettings(token_sha256=(token_digest("tok"),), secret_key="k" * 20))
    cookie = auth.new_session("alice")

    def identify(headers: dict[str, str]) -> Identity | None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return auth.identify(Request({"type": "http", "headers": raw, "method": "GET", "path": "/"}))

    who = identify({"cookie": f"{COOKIE}={cookie}"})
    assert who is not None and who.name == "alice" and who.via == "session"
    assert who.csrf_ok(who.csrf) and not who.csrf_ok(None) and not who.csrf_ok("forged")
    assert identify({"cookie": f"{COOKIE}={cookie[:-2]}xx"}) is None, "a tampered cookie is refused"
    other = Auth(ConsoleSettings(secret_key="z" * 20))
    raw = [(b"cookie", f"{COOKIE}={cookie}".encode())]
    assert other.identify(Request({"type": "http", "headers": raw, "method": "GET", "path": "/"})) is None
    bearer = identify({"authorization": "Bearer tok"})
    assert bearer is not None and bearer.via == "bearer" and bearer.csrf_ok(None)
    assert identify({"authorization": "Bearer nope"}) is None
    assert identify({}) is None


def test_session_expires_after_max_age() -> None:
    from starlette.requests import Request

    auth = Auth(ConsoleSettings(secret_key="k" * 20, session_max_age=1))
    cookie = auth.new_session("alice")
    raw = [(b"cookie", f"{COOKIE}={cookie}".encode())]
    import time

    time.sleep(2.1)
    assert auth.identify(Request({"type": "http", "headers": raw, "method": "GET", "path": "/"})) is None
