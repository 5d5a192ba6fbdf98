"""What every exporter is: a named sink that delivers a batch of findings or raises.

Exporters are synchronous and simple on purpose. They never run on the request path:
the ``Dispatcher`` calls them from its own worker threads, retries a ``DeliveryError``
marked ``retryable`` with backoff, and counts what it finally drops. An exporter only
needs ``send`` (deliver the whole batch or raise) and ``close``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import httpx

from querywarden.core.records import Finding
from querywarden.errors import ExportError


class DeliveryError(ExportError):
    """A receiver did not take a batch. ``retryable`` is False when sending again cannot help
    (e.g. HTTP 400 or 401: the payload or the credentials are wrong)."""

    def __init__(
        self, reason: str, *, retryable: bool = True, retry_after: float | None = None, source: str | None = None
    ) -> None:
        super().__init__(reason, source=source)
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the receiver asked us to wait (HTTP ``Retry-After``), if it said."""


class Exporter(Protocol):
    """A sink for findings. ``name`` labels its counters (``cef``, ``webhook``, ...)."""

    name: str

    def send(self, findings: Sequence[Finding]) -> None:
        """Deliver every finding in the batch, or raise ``DeliveryError``."""
        ...

    def close(self) -> None: ...


_RETRY_STATUS = frozenset({408, 425, 429})


def post(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], *, who: str) -> httpx.Response:
    """POST ``body`` and raise ``DeliveryError`` unless the receiver answers 2xx.

    Connection failures, timeouts, 5xx, 408, 425 and 429 are retryable; any other 4xx is
    not, since the same request would be refused again. A ``Retry-After`` in seconds is
    passed on for the dispatcher to honour.
    """
    try:
        response = client.post(url, content=body, headers=dict(headers))
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{who}: cannot reach {url}: {exc}", source=url) from None
    if response.is_success:
        return response
    code = response.status_code
    retryable = code >= 500 or code in _RETRY_STATUS
    detail = response.text[:200].replace("\n", " ")
    wait = response.headers.get("retry-after", "")
    retry_after = float(wait) if wait.isdigit() else None  # the HTTP-date form is rare from SIEMs: ignored
    raise DeliveryError(
        f"{who}: {url} answered HTTP {code}: {detail}", retryable=retryable, retry_after=retry_after, source=url
    )


__all__ = ["DeliveryError", "Exporter", "post"]
