"""What the console and the REST API work on: the store, the live engine if any, and auth.

Both apps are mounted on the gateway's admin port (``querywarden serve``) or run alone
(``querywarden console``). Mounted, an operator's decision goes into the live engine, so
the gateway enforces it on the next request, and into the store, where it is audited and
survives a restart. Alone, there is no engine to tell: the decision is stored and audited,
and every gateway on the same store applies it from the audit log (``sync``).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from querywarden.console.auth import Auth
from querywarden.console.settings import load_console_settings
from querywarden.core.engine import Engine
from querywarden.core.policy import DEFAULT_HARDEN, DEFAULT_POLICY, DEFAULT_THROTTLE, Policy
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, Decision, Finding
from querywarden.store import Store

OPERATOR_ACTIONS = ("allow", "harden", "throttle", "block", "clear")
"""What an operator can do to a principal; ``clear`` lifts the operator's pin and the
engine's decision, handing the principal back to the policy."""


@dataclass
class ConsoleContext:
    store: Store
    auth: Auth
    engine: Engine | None = None
    config_path: Path | None = None
    static_profiles: Mapping[str, ModelProfile] = field(default_factory=dict)
    static_policy: Policy = DEFAULT_POLICY
    intel: Any = None
    """The threat-intel registry when ``querywarden.intel`` is installed and configured."""
    gateway_decision: Callable[[str], Decision] | None = None
    """What the gateway applies to a principal now (its pipeline also lets a principal that
    joined an actor inherit the actor's decision); the engine's view when not given."""

    sync: Any = None
    """A ``DecisionSync`` to start once the admin port serves (``serve`` only)."""
    exports: Any = None
    """The export dispatcher of ``serve`` (None alone, or without ``[[exports]]``)."""

    def enforced(self, principal: str) -> Decision | None:
        """The decision a running gateway applies to ``principal`` now; None when not live."""
        if self.gateway_decision is not None:
            return self.gateway_decision(principal)
        return self.engine.decision_for(principal) if self.engine is not None else None

    @property
    def live(self) -> bool:
        """True when decisions reach a running gateway's engine at once."""
        return self.engine is not None

    @property
    def profiles(self) -> Mapping[str, ModelProfile]:
        return self.engine.profiles if self.engine is not None else self.static_profiles

    @property
    def policy(self) -> Policy:
        return self.engine.policy if self.engine is not None else self.static_policy

    def apply(
        self,
        principal: str,
        action: str,
        *,
        by: str,
        note: str = "",
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> Decision | None:
        """Record and enforce an operator's decision on ``principal``; None for ``clear``.

        Raises ``ValueError`` naming the allowed actions for anything else.
        """
        if action not in OPERATOR_ACTIONS:
            raise ValueError(f"unknown action {action!r}; allowed: {', '.join(OPERATOR_ACTIONS)}")
        if action == "clear":
            if self.engine is not None:
                self.engine.clear_decision(principal)
            self.store.clear_decision(principal, note, by=by)
            return None
        act = Action(action)
        defaults = {Action.HARDEN: DEFAULT_HARDEN, Action.THROTTLE: DEFAULT_THROTTLE}.get(act, {})
        decision = Decision(
            principal=principal,
            action=act,
            ts=time.time(),
            reason=f"set by {by} (operator)",
            actor=actor,
            params=dict(params) if params else dict(defaults),
            source="operator",
        )
        if self.engine is not None:
            self.engine.set_decision(decision)
        self.store.set_decision(decision, note, by=by)
        return decision

    def triage(
        self, finding_id: str, action: str, note: str = "", *, by: str, client_ip: str | None = None
    ) -> Finding | None:
        """Record an operator's ``acknowledge`` or ``close`` of a finding (audited); the finding
        as it is now, None if unknown. A close is exported like the engine's closed events
        (OCSF activity Close, status Resolved) when ``serve`` has exports."""
        found = self.store.triage_finding(finding_id, action, note, by=by, client_ip=client_ip)
        if found is not None and action == "close" and self.exports:
            self.exports.submit([found])
        return found


def announce_token(token: str) -> None:
    """Print the one-time login token where the operator starting the process sees it."""
    sys.stderr.write(
        "No console credentials configured ([console] users or token_sha256).\n"
        f"One-time console and API token for this run: {token}\n"
    )
    sys.stderr.flush()


_SHARED: dict[int, tuple[object, ConsoleContext]] = {}


def shared_context(key: object, build: Callable[[], ConsoleContext]) -> ConsoleContext:
    """One context per admin app, so the console and the API share sessions and the token."""
    found = _SHARED.get(id(key))
    if found is not None and found[0] is key:
        return found[1]
    ctx = build()
    _SHARED[id(key)] = (key, ctx)
    return ctx


def from_admin(admin: Any) -> ConsoleContext:
    """The context for an ``AdminContext`` of ``querywarden serve`` (built once per server)."""

    def build() -> ConsoleContext:
        config_path = getattr(admin, "config_path", None)
        settings = load_console_settings(config_path)
        from querywarden.console.sync import DecisionSync

        sync = DecisionSync(admin.store, admin.engine, running=lambda: bool(admin.pipeline.alive))
        return ConsoleContext(
            store=admin.store,
            auth=Auth.with_fallback(settings, announce_token),
            engine=admin.engine,
            config_path=config_path,
            intel=load_intel(config_path),
            gateway_decision=admin.pipeline.decision_for,
            sync=sync,
            exports=getattr(admin, "exports", None),
        )

    return shared_context(admin, build)


def intel_installed() -> bool:
    try:
        importlib.import_module("querywarden.intel")
    except ImportError:
        return False
    return True


def load_intel(config_path: Path | None) -> Any:
    """The config's threat-intel registry (feeds loaded once, shared with the ``intel``
    detector of this process); None without the intel package or feeds in the config."""
    if config_path is None or not intel_installed():
        return None
    loader = getattr(importlib.import_module("querywarden.intel"), "load_registry", None)
    return None if loader is None else loader(config_path)


def starting_sync(ctx: ConsoleContext, app: ASGIApp) -> ASGIApp:
    """``app``, starting the context's decision sync on its first request: only a process
    that serves the admin port follows the audit log."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if ctx.sync is not None:
            ctx.sync.start()
        await app(scope, receive, send)

    return wrapped
