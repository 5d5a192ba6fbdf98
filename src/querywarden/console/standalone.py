"""The command center on its own: console at ``/console/``, REST API at ``/api/``, one store.

``querywarden console --db URL`` serves this app. It reads the same store a gateway
writes; with no live engine in the process, operator decisions are stored and audited,
and every gateway on the store applies them from the audit log within seconds.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route

from querywarden.api.app import create_api
from querywarden.console.app import create_console
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext, announce_token, load_intel
from querywarden.console.settings import load_console_settings
from querywarden.store import Store


def standalone_context(store: Store, config_path: Path | None = None) -> ConsoleContext:
    """The context for ``store``, with models, policy and credentials from the config if given."""
    settings = load_console_settings(config_path)
    ctx = ConsoleContext(
        store=store,
        auth=Auth.with_fallback(settings, announce_token),
        config_path=config_path,
        intel=load_intel(config_path),
    )
    if config_path is not None:
        from querywarden.config import load_config

        cfg = load_config(config_path)
        ctx.static_profiles, ctx.static_policy = cfg.profiles, cfg.policy
    return ctx


def standalone_app(ctx: ConsoleContext) -> Starlette:
    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    return Starlette(routes=[Route("/", home), Mount("/console", create_console(ctx)), Mount("/api", create_api(ctx))])
