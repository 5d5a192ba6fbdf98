"""The console as an ASGI app: routes, static files and the login gate.

``create_console(ctx)`` builds it; mount it at ``/console`` (``querywarden serve`` does
through the ``querywarden.admin`` entry point, ``querywarden console`` does on its own).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from querywarden.console.actions import Actions
from querywarden.console.context import ConsoleContext
from querywarden.console.pages import Views
from querywarden.console.web import HERE, Pages


def create_console(ctx: ConsoleContext) -> Starlette:
    pages = Pages(ctx)
    views, actions = Views(pages), Actions(pages)
    gate = pages.gate
    routes = [
        Route("/login", actions.login_form, methods=["GET"]),
        Route("/login", actions.login, methods=["POST"]),
        Route("/logout", gate(actions.logout), methods=["POST"]),
        Route("/", gate(views.overview)),
        Route("/findings", gate(views.findings)),
        Route("/findings/{finding_id}", gate(views.finding), methods=["GET"]),
        Route("/findings/{finding_id}/triage", gate(actions.finding_triage), methods=["POST"]),
        Route("/principals", gate(views.principals)),
        Route("/principals/{principal}", gate(views.principal), methods=["GET"]),
        Route("/principals/{principal}/decision", gate(actions.principal_decision), methods=["POST"]),
        Route("/actors", gate(views.actors)),
        Route("/actors/{actor}", gate(views.actor), methods=["GET"]),
        Route("/actors/{actor}/decision", gate(actions.actor_decision), methods=["POST"]),
        Route("/models", gate(views.models)),
        Route("/audit", gate(views.audit)),
        Route("/intel", gate(views.intel)),
        Route("/search", gate(views.search)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes)
