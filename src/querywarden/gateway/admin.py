"""The admin side: ``/healthz``, ``/metrics`` and the mount points for ``/api/`` and ``/console/``.

It runs on its own port, loopback by default, so metrics and operator actions are never
reachable from the model-traffic port. The REST API and the console are separate
packages; they plug in by name, either passed to ``create_admin_app(mounts=...)`` or
advertised in the ``querywarden.admin`` entry-point group as a factory that takes the
``AdminContext`` and returns an ASGI app, mounted at ``/<name>/``:

    [project.entry-points."querywarden.admin"]
    api = "querywarden.api:create_app"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from querywarden.core.engine import Engine
from querywarden.errors import ConfigError
from querywarden.gateway.metrics import GatewayMetrics
from querywarden.gateway.pipeline import EnginePipeline, Pipeline
from querywarden.gateway.settings import GatewaySettings

MOUNT_GROUP = "querywarden.admin"


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What an admin app (REST API, console) may use: the live engine and its surroundings."""

    engine: Engine
    pipeline: EnginePipeline
    metrics: GatewayMetrics
    settings: GatewaySettings
    store: Any = None
    config_path: Path | None = None
    """The config file ``serve`` was started with; mounted apps read their own tables from it."""
    exports: Any = None
    """The export dispatcher, so an operator's close of a finding reaches the SIEM as the engine's events do."""


def discover_mounts(context: AdminContext) -> dict[str, ASGIApp]:
    """Build every admin app advertised in the ``querywarden.admin`` entry-point group."""
    mounts: dict[str, ASGIApp] = {}
    for ep in entry_points(group=MOUNT_GROUP):
        try:
            factory = ep.load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load admin app {ep.name!r} ({ep.value}): {exc}") from exc
        mounts[ep.name] = factory(context)
    return mounts


def health(pipeline: Pipeline) -> JSONResponse:
    """``/healthz``: 200 while the engine runs, 503 with ``"engine": "down"`` when it does not."""
    up = pipeline.alive
    body = {
        "status": "ok" if up else "degraded",
        "engine": "up" if up else "down",
        "queue_depth": pipeline.depth,
        "queue_dropped": pipeline.stats.dropped,
        "engine_errors": pipeline.stats.errors,
    }
    return JSONResponse(body, status_code=200 if up else 503)


def create_admin_app(context: AdminContext, mounts: Mapping[str, ASGIApp] | None = None) -> Starlette:
    """The admin ASGI app. ``mounts`` maps a name (``api``, ``console``) to an app at ``/<name>/``."""

    async def healthz(request: Request) -> JSONResponse:
        return health(context.pipeline)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/metrics", metrics)]
    for name, app in (mounts or {}).items():
        routes.append(Mount(f"/{name.strip('/')}", app=app))
    return Starlette(routes=routes)
