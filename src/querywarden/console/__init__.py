"""The command center's web console, mounted at ``/console/`` on the admin port.

Server-rendered pages (overview, findings, principals, actors, models, audit, threat
intel) with inline SVG charts and shipped static assets, behind the login of
``querywarden.console.auth``. ``create_app`` is the ``querywarden.admin`` entry point;
``create_console`` builds the app from a ``ConsoleContext`` for ``querywarden console``
and tests.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from querywarden.console.app import create_console
from querywarden.console.context import ConsoleContext, from_admin, starting_sync
from querywarden.console.unavailable import no_store_app


def create_app(admin: Any) -> ASGIApp:
    """The console for ``querywarden serve``'s admin port (an ``AdminContext``)."""
    if getattr(admin, "store", None) is None:
        return no_store_app("console")
    ctx = from_admin(admin)
    return starting_sync(ctx, create_console(ctx))


__all__ = ["ConsoleContext", "create_app", "create_console"]
