"""``querywarden serve --upstream URL``: run the gateway in front of a model server.

The traffic port (``--port``) carries model requests; the admin port (``--admin-port``,
loopback unless ``--admin-host`` says otherwise) serves ``/metrics``, ``/healthz`` and the
console and REST API when installed. Config errors exit with code 2 and a located
message, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from querywarden.errors import QueryWardenError


def serve_command(
    upstream: Annotated[
        str, typer.Option("--upstream", "-u", help="Base URL of the model server.", show_default=False)
    ],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file; its gateway table sets the gateway.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface for model traffic (0.0.0.0 for all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port for model traffic.")] = 8080,
    admin_host: Annotated[str, typer.Option("--admin-host", help="Interface for the admin port.")] = "127.0.0.1",
    admin_port: Annotated[
        int, typer.Option("--admin-port", help="Admin port (metrics, console, API); 0 disables.")
    ] = 8081,
    db: Annotated[str | None, typer.Option("--db", help="Store URL; overrides the config's store.url.")] = None,
) -> None:
    """Run the gateway: detect on live traffic and apply the response ladder."""
    err = Console(stderr=True)
    if "://" not in upstream:
        shown = escape(repr(upstream))
        err.print(f"[red]error:[/red] --upstream must be a URL such as http://127.0.0.1:9000, not {shown}")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from querywarden.gateway.server import build_process_server, build_server, load_gateway_settings, run

    try:
        settings = load_gateway_settings(config, upstream=upstream)
        if settings.engine_mode == "process":
            server: Any = build_process_server(settings, config, db, admin=bool(admin_port))
        else:
            server = build_server(settings, config, db)
    except QueryWardenError as exc:
        err.print(f"[red]error:[/red] {escape(exc.located())}", highlight=False)
        raise typer.Exit(2) from None
    if config is None:
        err.print("No --config given: every registered detector runs; model profiles are drafted from live traffic.")
    err.print(f"QueryWarden gateway on http://{host}:{port} -> {settings.upstream}", highlight=False)
    if admin_port:
        err.print(f"Admin (metrics, health, console) on http://{admin_host}:{admin_port}", highlight=False)
    run(server, host, port, admin_host, admin_port or None)
