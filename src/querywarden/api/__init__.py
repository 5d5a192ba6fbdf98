"""The REST API of the command center, mounted at ``/api/`` on the admin port.

``create_app`` is the ``querywarden.admin`` entry point: it shares its login, sessions
and store with the console (``querywarden.console``) of the same admin app.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from querywarden.api.app import create_api
from querywarden.console.context import from_admin, starting_sync
from querywarden.console.unavailable import no_store_app


def create_app(admin: Any) -> ASGIApp:
    """The API for ``querywarden serve``'s admin port (an ``AdminContext``)."""
    if getattr(admin, "store", None) is None:
        return no_store_app("api")
    ctx = from_admin(admin)
    return starting_sync(ctx, create_api(ctx))


__all__ = ["create_api", "create_app"]
