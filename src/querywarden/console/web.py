"""The console's plumbing: templates, page responses, the login gate and security headers.

Every page is rendered on the server from Jinja2 templates shipped in the package, with
CSS and a few lines of JavaScript from ``static/``: nothing is fetched from elsewhere, so
the console works on an air-gapped admin network. Responses carry a strict
Content-Security-Policy (only our own scripts and styles, no inline ones, no framing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from querywarden.console.auth import CSRF_FIELD, SAFE_METHODS, Identity
from querywarden.console.context import ConsoleContext
from querywarden.core.records import Decision

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
Page = Callable[[Request, Identity], Awaitable[Response]]


def fmt_ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def fmt_num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def decision_label(decision: Decision | None) -> str:
    """``allow`` for none, ``shadow:<action>`` when only logged, else the action."""
    if decision is None:
        return "allow"
    return f"shadow:{decision.action.value}" if decision.shadow else decision.action.value


def flat_evidence(evidence: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Evidence rows, one level of nesting (per detector) flattened to ``detector.key``."""
    rows: list[tuple[str, Any]] = []
    for key, value in sorted(evidence.items()):
        if isinstance(value, Mapping):
            rows += [(f"{key}.{k}", v) for k, v in sorted(value.items())]
        else:
            rows.append((key, value))
    return rows


def to_json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = fmt_ts
    env.filters["num"] = fmt_num
    env.filters["json"] = to_json
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * float(v):.0f}%"
    env.filters["dlabel"] = decision_label
    env.filters["flat"] = flat_evidence
    return env


class Pages:
    """Renders templates with what every page needs: the mount path, the user, CSRF."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.env = make_env()

    def render(
        self, request: Request, template: str, who: Identity | None, status: int = 200, **values: Any
    ) -> Response:
        base = request.scope.get("root_path", "")
        body = self.env.get_template(template).render(
            base=base,
            who=who,
            csrf=who.csrf if who else "",
            live=self.ctx.live,
            has_intel=self.ctx.intel is not None,
            path=request.url.path,
            query=lambda **kw: "?" + urlencode({k: v for k, v in kw.items() if v not in (None, "")}),
            **values,
        )
        return secure(HTMLResponse(body, status_code=status))

    def gate(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        """Require a session (or bearer token); require the CSRF field on every form post."""

        async def endpoint(request: Request) -> Response:
            who = self.ctx.auth.identify(request)
            base = request.scope.get("root_path", "")
            if who is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return secure(RedirectResponse(f"{base}/login?{urlencode({'next': target})}", status_code=303))
            if request.method not in SAFE_METHODS:
                form = await request.form()
                token = form.get(CSRF_FIELD)
                if not who.csrf_ok(token if isinstance(token, str) else None):
                    return self.render(
                        request,
                        "error.html",
                        who,
                        403,
                        message="The form's CSRF token is missing or stale; reload the page and try again.",
                    )
            return await page(request, who)

        return endpoint


def secure(response: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def safe_next(base: str, target: str | None) -> str:
    """Where to go after login: only a path inside the console, never another site."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


def client_address(request: HTTPConnection) -> str | None:
    """The address of the client an operator request came from.

    A TCP peer is the client. A request with no TCP peer came over the Unix socket that
    only the gateway's own admin front connects to (``serve`` with the engine in its own
    process): the front appends the real peer as the last ``X-Forwarded-For`` header, so
    that one is used; a client cannot reach the socket to forge it.
    """
    if request.client is not None:
        return request.client.host
    forwarded = request.headers.getlist("x-forwarded-for")
    if not forwarded:
        return None
    return forwarded[-1].rsplit(",", 1)[-1].strip() or None


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
