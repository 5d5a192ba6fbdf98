"""Findings sent to a Splunk HTTP Event Collector (HEC).

``POST <url>/services/collector/event`` with ``Authorization: Splunk <token>``. The body is
one HEC envelope per finding, concatenated (HEC's batch form):

    {"time": 1764331200.123, "host": "gw-1", "source": "querywarden",
     "sourcetype": "querywarden:finding", "index": "security", "event": {...}}

``time`` is the finding's last update in epoch seconds; ``event`` is the finding in
QueryWarden's own JSON form; ``index`` is left out unless configured, so the token's
default index applies. HEC answers ``{"text": "Success", "code": 0}``; anything else is a
failed delivery (HEC uses 503 for a busy server and 400 for a malformed event).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from querywarden.core.records import Finding
from querywarden.exports.base import DeliveryError, post
from querywarden.findings_out import finding_record

EVENT_PATH = "/services/collector/event"


class SplunkHecExporter:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        index: str | None = None,
        source: str = "querywarden",
        sourcetype: str = "querywarden:finding",
        host: str | None = None,
        verify_tls: bool = True,
        timeout: float = 10.0,
        name: str = "splunk",
    ) -> None:
        if not token:
            raise ValueError("splunk: a HEC token is required")
        self.name = name
        self.endpoint = url.rstrip("/") + EVENT_PATH if not url.rstrip("/").endswith(EVENT_PATH) else url
        self.token = token
        self.index = index
        self.source = source
        self.sourcetype = sourcetype
        self.host = host or socket.gethostname()
        self._client = httpx.Client(timeout=timeout, verify=verify_tls)
        self._encoder = msgspec.json.Encoder()

    def envelope(self, finding: Finding) -> dict[str, Any]:
        env: dict[str, Any] = {
            "time": round(finding.updated_ts, 3),
            "host": self.host,
            "source": self.source,
            "sourcetype": self.sourcetype,
            "event": finding_record(finding),
        }
        if self.index:
            env["index"] = self.index
        return env

    def body(self, findings: Sequence[Finding]) -> bytes:
        return b"\n".join(self._encoder.encode(self.envelope(f)) for f in findings)

    def send(self, findings: Sequence[Finding]) -> None:
        headers = {"Authorization": f"Splunk {self.token}", "Content-Type": "application/json"}
        response = post(self._client, self.endpoint, self.body(findings), headers, who="splunk")
        try:
            answer = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            answer = None
        if not isinstance(answer, dict) or answer.get("code", 0) != 0:
            raise DeliveryError(f"splunk: HEC refused the batch: {response.text[:200]}", source=self.endpoint)

    def close(self) -> None:
        self._client.close()


__all__ = ["EVENT_PATH", "SplunkHecExporter"]
