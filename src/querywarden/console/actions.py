"""The console's state changes: log in, log out, change a principal's or an actor's
decision, and acknowledge or close a finding.

Decision forms post ``action`` (allow, harden, throttle, block or clear), an optional
``note`` and the session's ``csrf`` token. The change goes through ``ConsoleContext.apply``:
into the live engine (so the gateway enforces it on the next request) and into the store's
audit log under the logged-in name. Finding forms post ``action`` (acknowledge or close),
``note`` and ``csrf``; the store audits them. Every login attempt is audited too: who was
tried (``token`` for an API token), the outcome and the client IP, never the secret. While a
client is locked out after too many failures, only its first refused attempt is audited,
so a guessing script cannot grow the audit log without bound.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from querywarden.console.auth import Identity
from querywarden.console.context import OPERATOR_ACTIONS
from querywarden.console.web import Pages, client_address, safe_next, same_origin, secure
from querywarden.store import TRIAGE_ACTIONS, TriageRefused

MAX_NOTE = 500
MAX_NAME = 256


class Actions:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.ctx = pages.ctx

    async def login_form(self, request: Request) -> Response:
        who = self.ctx.auth.identify(request)
        base = request.scope.get("root_path", "")
        if who is not None:
            return secure(RedirectResponse(safe_next(base, request.query_params.get("next")), status_code=303))
        return self.pages.render(request, "login.html", None, next=request.query_params.get("next", ""), failed=False)

    async def login(self, request: Request) -> Response:
        if not same_origin(request):
            return self.pages.render(request, "error.html", None, 403, message="Log in from the console's own page.")
        form = await request.form()
        user, password, target = (str(form.get(k, "")) for k in ("user", "password", "next"))
        client = client_address(request) or "unknown"
        tried = user.strip()[:MAX_NAME] or "token"
        now = time.monotonic()
        locked = self.ctx.auth.locked_out(client, now)
        name = self.ctx.auth.login(user.strip(), password, client, now)
        if name is None:
            if not locked:
                self.ctx.store.audit_operator("login_failed", by=tried, subject=tried, client_ip=client)
            elif self.ctx.auth.first_refusal(client, now):
                note = "locked out after too many failures; further attempts are not audited until it ends"
                self.ctx.store.audit_operator("login_failed", by=tried, subject=tried, note=note, client_ip=client)
            return self.pages.render(request, "login.html", None, 401, next=target, failed=True, user=user)
        self.ctx.store.audit_operator("login", by=name, subject=tried, client_ip=client)
        response = RedirectResponse(safe_next(request.scope.get("root_path", ""), target), status_code=303)
        self.ctx.auth.set_cookie(response, self.ctx.auth.new_session(name))
        return secure(response)

    async def logout(self, request: Request, who: Identity) -> Response:
        response = RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
        self.ctx.auth.clear_cookie(response)
        return secure(response)

    async def _form(self, request: Request) -> tuple[str, str]:
        form = await request.form()
        return str(form.get("action", "")), str(form.get("note", ""))[:MAX_NOTE]

    async def principal_decision(self, request: Request, who: Identity) -> Response:
        name = request.path_params["principal"]
        action, note = await self._form(request)
        if action not in OPERATOR_ACTIONS:
            return self.pages.render(request, "error.html", who, 400, message=f"Unknown action {action!r}.")
        summary = self.ctx.store.principal(name)
        self.ctx.apply(name, action, by=who.name, note=note, actor=summary.actor if summary else None)
        base = request.scope.get("root_path", "")
        return secure(RedirectResponse(f"{base}/principals/{_q(name)}?changed={action}", status_code=303))

    async def actor_decision(self, request: Request, who: Identity) -> Response:
        """Apply one decision to every member of an actor (a Sybil is one adversary)."""
        name = request.path_params["actor"]
        action, note = await self._form(request)
        found = self.ctx.store.actor(name)
        if found is None or action not in OPERATOR_ACTIONS:
            return self.pages.render(request, "error.html", who, 400, message="Unknown actor or action.")
        for member in found.members:
            self.ctx.apply(member, action, by=who.name, note=note or f"actor {name}", actor=name)
        base = request.scope.get("root_path", "")
        return secure(RedirectResponse(f"{base}/actors/{_q(name)}?changed={action}", status_code=303))

    async def finding_triage(self, request: Request, who: Identity) -> Response:
        """Acknowledge or close a finding; audited under the logged-in name."""
        fid = request.path_params["finding_id"]
        action, note = await self._form(request)
        if action not in TRIAGE_ACTIONS:
            return self.pages.render(request, "error.html", who, 400, message=f"Unknown action {action!r}.")
        client = client_address(request)
        try:
            found = self.ctx.triage(fid, action, note, by=who.name, client_ip=client)
        except TriageRefused as exc:
            return self.pages.render(request, "error.html", who, 409, message=exc.reason)
        if found is None:
            return self.pages.render(request, "error.html", who, 404, message=f"No finding {fid}.")
        base = request.scope.get("root_path", "")
        return secure(RedirectResponse(f"{base}/findings/{_q(fid)}?changed={action}", status_code=303))


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
