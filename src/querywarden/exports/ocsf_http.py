"""OCSF Detection Findings delivered over HTTP, or appended to a JSON-lines file.

Over HTTP a batch is one ``POST`` of a JSON array of events (``Content-Type:
application/json``), the form OCSF-native lakes and collectors (e.g. an HTTP source of
Vector or Cribl) take; a bearer token is sent when configured. The file form appends one
event per line, as ``replay --format ocsf`` writes. The mapping itself is
``querywarden.exports.ocsf.detection_finding``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import msgspec

from querywarden.core.records import Finding
from querywarden.exports.base import DeliveryError, post
from querywarden.exports.ocsf import detection_finding


class OcsfHttpExporter:
    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0, name: str = "ocsf") -> None:
        self.name = name
        self.url = url
        self.token = token
        self._client = httpx.Client(timeout=timeout)
        self._encoder = msgspec.json.Encoder()

    def body(self, findings: Sequence[Finding]) -> bytes:
        return self._encoder.encode([detection_finding(f) for f in findings])

    def send(self, findings: Sequence[Finding]) -> None:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        post(self._client, self.url, self.body(findings), headers, who="ocsf")

    def close(self) -> None:
        self._client.close()


class OcsfFileExporter:
    """Appends OCSF events as JSON lines; each batch is flushed before ``send`` returns."""

    def __init__(self, path: str | Path, *, name: str = "ocsf") -> None:
        self.name = name
        self.path = Path(path)
        self._encoder = msgspec.json.Encoder()

    def send(self, findings: Sequence[Finding]) -> None:
        data = b"".join(self._encoder.encode(detection_finding(f)) + b"\n" for f in findings)
        try:
            with self.path.open("ab") as fh:
                fh.write(data)
        except OSError as exc:
            raise DeliveryError(f"ocsf: cannot append to {self.path}: {exc}", source=str(self.path)) from None

    def close(self) -> None:
        return None


__all__ = ["OcsfFileExporter", "OcsfHttpExporter"]
