"""Login, sessions and CSRF for the console and the REST API.

Two ways in, one check:
- a browser logs in at ``/console/login`` with a user and password (scrypt hashes from the
  config) or with an API token, and gets a session cookie: signed with itsdangerous,
  ``HttpOnly``, ``SameSite=Strict``, ``Secure`` by default, valid ``session_max_age``;
- a machine sends ``Authorization: Bearer <token>`` on every request (tokens are kept as
  SHA-256 digests in the config).

Every state change made with a session cookie must carry the session's CSRF token (a form
field ``csrf`` or an ``X-CSRF-Token`` header). Bearer requests carry no ambient
credential a third-party page could borrow, so they need none.

There are no default credentials. When the config names none, ``Auth.with_fallback``
mints a random token for this process only and hands it to ``announce`` (``serve`` and
``console`` print it to stderr); it stops working when the process ends.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from querywarden.console.settings import ConsoleSettings, token_digest, verify_password

COOKIE = "qw_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
FAILURE_WINDOW = 900.0
MAX_TRACKED_CLIENTS = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is making a request: ``via`` is ``session`` (a browser) or ``bearer`` (a machine)."""

    name: str
    via: str
    csrf: str = ""

    def csrf_ok(self, token: str | None) -> bool:
        """True when a state change may proceed: bearer always, a session only with its token."""
        if self.via == "bearer":
            return True
        return bool(token) and hmac.compare_digest(self.csrf, token or "")


class Auth:
    def __init__(self, settings: ConsoleSettings, *, extra_token: str | None = None) -> None:
        self.settings = settings
        self._digests = set(settings.token_sha256)
        if extra_token is not None:
            self._digests.add(token_digest(extra_token))
        key = settings.secret_key or secrets.token_urlsafe(32)
        self._signer = URLSafeTimedSerializer(key, salt="querywarden-console-session")
        self._failures: dict[str, list[float]] = {}
        self._refused: dict[str, float] = {}

    @classmethod
    def with_fallback(cls, settings: ConsoleSettings, announce: Callable[[str], None]) -> Auth:
        """Auth from ``settings``; with no credentials there, a one-time token given to ``announce``."""
        if settings.has_credentials:
            return cls(settings)
        token = secrets.token_urlsafe(24)
        announce(token)
        return cls(settings, extra_token=token)

    # -- credentials ----------------------------------------------------------------------
    def token_valid(self, token: str) -> bool:
        digest = token_digest(token)
        return any(hmac.compare_digest(digest, d) for d in self._digests)

    def login(self, user: str, password: str, client: str, now: float | None = None) -> str | None:
        """The logged-in name, or None. An empty ``user`` means ``password`` is an API token.

        A client with ``max_login_failures`` failures in the last 15 minutes is refused
        without checking, so a password cannot be guessed at scrypt speed forever.
        """
        now = time.monotonic() if now is None else now
        if self.locked_out(client, now):
            return None
        name: str | None = None
        if not user:
            name = "token" if self.token_valid(password) else None
        else:
            hashed = self.settings.users.get(user)
            if hashed is not None and verify_password(password, hashed):
                name = user
        if name is None:
            self._fail(client, now)
        return name

    def locked_out(self, client: str, now: float) -> bool:
        recent = [t for t in self._failures.get(client, ()) if now - t < FAILURE_WINDOW]
        return len(recent) >= self.settings.max_login_failures

    def first_refusal(self, client: str, now: float) -> bool:
        """True for a locked-out client's first refused attempt of this lockout (worth
        auditing), False for the ones after it."""
        since = self._refused.get(client)
        if since is not None and now - since < FAILURE_WINDOW:
            return False
        if client not in self._refused and len(self._refused) >= MAX_TRACKED_CLIENTS:
            self._refused.pop(next(iter(self._refused)))
        self._refused[client] = now
        return True

    def _fail(self, client: str, now: float) -> None:
        if client not in self._failures and len(self._failures) >= MAX_TRACKED_CLIENTS:
            self._failures.pop(next(iter(self._failures)))
        times = [t for t in self._failures.get(client, ()) if now - t < FAILURE_WINDOW]
        times.append(now)
        self._failures[client] = times

    # -- sessions -------------------------------------------------------------------------
    def new_session(self, name: str) -> str:
        """A signed cookie value holding the name and a fresh CSRF token."""
        return self._signer.dumps({"u": name, "c": secrets.token_urlsafe(24)})

    def identify(self, conn: HTTPConnection) -> Identity | None:
        """The request's identity from its bearer token or its session cookie, else None."""
        header = conn.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return Identity(name="token", via="bearer") if self.token_valid(token.strip()) else None
        cookie = conn.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=self.settings.session_max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("c"), str):
            return None
        return Identity(name=data["u"], via="session", csrf=data["c"])

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.settings.session_max_age,
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", secure=self.settings.secure_cookies, httponly=True, samesite="strict")
