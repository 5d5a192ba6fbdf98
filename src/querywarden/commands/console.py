"""``querywarden console --db URL``: the command center without a gateway.

Serves the web console and the REST API over a store that ``serve`` or ``replay --db``
filled. The port listens on loopback unless ``--host`` says otherwise. With no
``[console]`` credentials in ``--config`` it prints a one-time token to stderr.
``--hash-password`` prints the scrypt hash to put under ``[console] users``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from querywarden.errors import QueryWardenError


def console_command(
    db: Annotated[str | None, typer.Option("--db", help="Store URL, e.g. sqlite:///querywarden.db.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file: models, policy and \\[console] credentials.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the console and API.")] = 8081,
    hash_password: Annotated[
        bool,
        typer.Option("--hash-password", help="Read a password and print its hash for \\[console] users, then exit."),
    ] = False,
) -> None:
    """Serve the web console and the REST API over a store."""
    err = Console(stderr=True)
    if hash_password:
        from querywarden.console.settings import hash_password as make_hash

        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        typer.echo(make_hash(password))
        return
    if db is None:
        err.print("[red]error:[/red] --db URL is required (the store a gateway or replay --db wrote)")
        raise typer.Exit(2)
    import uvicorn

    from querywarden.console.standalone import standalone_app, standalone_context
    from querywarden.store import open_store, redact

    try:
        store = open_store(db)
        try:
            ctx = standalone_context(store, config)
        except QueryWardenError:
            store.close()
            raise
    except QueryWardenError as exc:
        err.print(f"[red]error:[/red] {escape(exc.located())}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"QueryWarden console on http://{host}:{port}/console/ (API at /api/) over {redact(db)}", highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            "[yellow]warning:[/yellow] listening beyond loopback over plain HTTP: put TLS in front "
            "(browsers send the Secure session cookie only over HTTPS or to loopback)"
        )
    try:
        uvicorn.run(standalone_app(ctx), host=host, port=port, log_level="warning")
    finally:
        store.close()
