"""What the console and the API answer when ``serve`` runs without a store.

Both read everything from the store; without one there are no findings to show. Rather
than failing the whole admin port, the mount answers 503 and says how to fix it.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MESSAGE = "the {name} needs a store: start querywarden serve with --db URL (or store.url in the config)"


def no_store_app(name: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        text = MESSAGE.format(name="REST API" if name == "api" else "console")
        response = (
            JSONResponse({"error": {"code": "no_store", "message": text}}, status_code=503)
            if name == "api"
            else PlainTextResponse(text, status_code=503)
        )
        await response(scope, receive, send)

    return app
