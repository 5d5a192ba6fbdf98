"""A TAXII 2.1 client for one thing: reading the STIX objects of a collection.

``GET <collection>/objects/`` with ``Accept: application/taxii+json;version=2.1``, asking
for indicators only (``match[type]=indicator``) and following the envelope's ``more`` /
``next`` pagination. Authentication is a bearer token or HTTP basic, as TAXII servers
commonly take. Every failure is an ``IntelError`` naming the URL: an unreachable server,
an HTTP error, a body that is not a TAXII envelope, or pagination that never ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from querywarden.errors import IntelError

MEDIA_TYPE = "application/taxii+json;version=2.1"
PAGE_LIMIT = 1_000
MAX_PAGES = 10_000
"""A server that keeps answering ``more: true`` past this many pages is broken or hostile."""


def objects_url(collection_url: str) -> str:
    """``.../collections/<id>/`` -> ``.../collections/<id>/objects/`` (a trailing slash is added)."""
    base = collection_url if collection_url.endswith("/") else collection_url + "/"
    return base if base.endswith("/objects/") else base + "objects/"


def fetch_objects(
    collection_url: str,
    *,
    token: str | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 30.0,
    types: tuple[str, ...] = ("indicator",),
    client: httpx.Client | None = None,
) -> list[Mapping[str, Any]]:
    """Every object of the collection (of ``types``), across all pages."""
    url = objects_url(collection_url)
    headers = {"Accept": MEDIA_TYPE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    own = client is None
    http = client or httpx.Client(timeout=timeout, auth=auth)
    params: dict[str, Any] = {"limit": PAGE_LIMIT}
    if types:
        params["match[type]"] = ",".join(types)
    objects: list[Mapping[str, Any]] = []
    try:
        for _ in range(MAX_PAGES):
            envelope = _page(http, url, headers, params)
            page = envelope.get("objects", [])
            if not isinstance(page, list):
                raise IntelError("TAXII envelope 'objects' is not a list", source=url)
            objects.extend(page)
            if not envelope.get("more"):
                return objects
            cursor = envelope.get("next")
            if not isinstance(cursor, str) or not cursor:
                raise IntelError("TAXII envelope says more but gives no next", source=url)
            params["next"] = cursor
        raise IntelError(f"more than {MAX_PAGES} pages; refusing to go on", source=url)
    finally:
        if own:
            http.close()


def _page(http: httpx.Client, url: str, headers: Mapping[str, str], params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        response = http.get(url, headers=dict(headers), params=dict(params))
    except httpx.HTTPError as exc:
        raise IntelError(f"cannot reach TAXII server: {exc}", source=url) from None
    if response.status_code == 204 or not response.content:
        return {}  # some servers answer an empty collection with no body
    if not response.is_success:
        raise IntelError(f"TAXII server answered HTTP {response.status_code}: {response.text[:200]}", source=url)
    try:
        body = response.json()
    except ValueError:
        raise IntelError("TAXII server did not answer JSON", source=url) from None
    if not isinstance(body, dict):
        raise IntelError("TAXII answer is not an envelope object", source=url)
    return body


__all__ = ["MEDIA_TYPE", "fetch_objects", "objects_url"]
