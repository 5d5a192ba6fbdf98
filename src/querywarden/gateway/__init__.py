"""The gateway: a reverse proxy that applies the response ladder to a model's traffic.

pipeline = EnginePipeline(engine, capacity=settings.queue_size)
gateway = Gateway(settings, pipeline)          # an ASGI app; run it with uvicorn
admin = create_admin_app(AdminContext(engine, pipeline, gateway.metrics, settings))
"""

from __future__ import annotations

from querywarden.gateway.admin import AdminContext, create_admin_app, discover_mounts
from querywarden.gateway.app import Gateway
from querywarden.gateway.metrics import GatewayMetrics
from querywarden.gateway.pipeline import EnginePipeline
from querywarden.gateway.settings import GatewaySettings

__all__ = [
    "AdminContext",
    "EnginePipeline",
    "Gateway",
    "GatewayMetrics",
    "GatewaySettings",
    "create_admin_app",
    "discover_mounts",
]
