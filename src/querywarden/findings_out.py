"""Writing findings as JSON lines: QueryWarden's own form, or OCSF Detection Findings.

Our form carries every field of a finding as DESIGN.md names it, with ``severity`` as its
lowercase label (``medium``), so a person can grep it and a SIEM can map it.
"""

from __future__ import annotations

from types import TracebackType
from typing import IO, Any

import msgspec

from querywarden.core.records import Finding
from querywarden.exports.ocsf import detection_finding

FORMATS = ("json", "ocsf")


def finding_record(finding: Finding) -> dict[str, Any]:
    """A finding as a JSON-ready dict, severity as its label."""
    rec: dict[str, Any] = msgspec.to_builtins(finding)
    rec["severity"] = finding.severity.label
    return rec


class FindingsWriter:
    """Appends one JSON line per finding event to a binary stream."""

    def __init__(self, stream: IO[bytes], fmt: str = "json") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown findings format {fmt!r}; allowed: {', '.join(FORMATS)}")
        self._stream = stream
        self._convert = finding_record if fmt == "json" else detection_finding
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self.written = 0

    def write(self, finding: Finding) -> None:
        self._encoder.encode_into(self._convert(finding), self._buffer, -1)
        self._buffer.extend(b"\n")
        self.written += 1
        if len(self._buffer) > 1 << 16:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._stream.write(self._buffer)
            self._buffer.clear()
        self._stream.flush()

    def __enter__(self) -> FindingsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()


__all__ = ["FORMATS", "FindingsWriter", "finding_record"]
