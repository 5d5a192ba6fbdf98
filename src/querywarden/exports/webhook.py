"""Findings POSTed as JSON to a webhook, signed with HMAC-SHA256 so the receiver can trust them.

Every request carries

    X-QueryWarden-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
    X-QueryWarden-Delivery: <digest of the body: the same on every retry of one batch>

where the HMAC key is the shared secret and the signed bytes are the timestamp, a dot and
the exact request body: ``f"{t}.".encode() + body``. Signing the timestamp with the body
lets a receiver refuse replays: it recomputes the HMAC, compares in constant time, and
rejects a timestamp older than its tolerance (``verify`` does all three). The delivery id
lets it drop a batch it already took when a retry follows a lost answer.

The body is ``{"findings": [...]}``, each finding in QueryWarden's own JSON form (the
form ``replay --findings`` writes).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

import httpx
import msgspec

from querywarden.core.records import Finding
from querywarden.exports.base import post
from querywarden.findings_out import finding_record

SIGNATURE_HEADER = "X-QueryWarden-Signature"
DELIVERY_HEADER = "X-QueryWarden-Delivery"
TOLERANCE = 300.0
"""Seconds a receiver should accept a signature for, by default (clock skew plus retries)."""


def sign(secret: bytes, body: bytes, ts: int) -> str:
    """The signature header value for ``body`` sent at ``ts``."""
    mac = hmac.new(secret, str(ts).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, now: float, tolerance: float = TOLERANCE) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance`` of ``now``.

    For receivers (and our tests). Every ``v1`` in the header is tried, so a sender can
    sign with an old and a new secret while the secret is rotated.
    """
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    macs = [v.strip() for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not macs:
        return False
    ts = int(stamps[0])
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, m) for m in macs)


class WebhookExporter:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout: float = 10.0,
        name: str = "webhook",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("webhook: a signing secret is required")
        self.name = name
        self.url = url
        self.secret = secret
        self.clock = clock
        self._client = httpx.Client(timeout=timeout)
        self._encoder = msgspec.json.Encoder()

    def body(self, findings: Sequence[Finding]) -> bytes:
        return self._encoder.encode({"findings": [finding_record(f) for f in findings]})

    def send(self, findings: Sequence[Finding]) -> None:
        body = self.body(findings)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(self.clock())),
            DELIVERY_HEADER: hashlib.sha256(body).hexdigest()[:32],
            "User-Agent": "QueryWarden-Webhook",
        }
        post(self._client, self.url, body, headers, who="webhook")

    def close(self) -> None:
        self._client.close()


__all__ = ["DELIVERY_HEADER", "SIGNATURE_HEADER", "WebhookExporter", "sign", "verify"]
