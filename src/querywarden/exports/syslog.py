"""Syslog (RFC 5424) messages and their delivery over UDP (RFC 5426) or TCP (RFC 6587).

A message is ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG``.
Transports: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425, the receiver's certificate
verified against the system CAs or a given CA file).
Header fields are printable US-ASCII without spaces and within the RFC's lengths; an
empty one is the NILVALUE ``-``. The MSG is UTF-8 and starts with a byte-order mark, as
RFC 5424 asks when it is UTF-8. Over TCP every message is framed by octet counting
(``<length> <message>``), so a message can hold newlines (CEF escapes them anyway) and the
receiver never has to guess where one ends (TLS frames the same way). Over UDP one
datagram carries one message.

``SyslogExporter`` sends each finding as a CEF line (``querywarden.exports.cef``).
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime

from querywarden.core.records import Finding, Severity
from querywarden.exports.base import DeliveryError
from querywarden.exports.cef import cef_event

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORT = {"udp": 514, "tcp": 514, "tls": 6514}
NIL = "-"
BOM = b"\xef\xbb\xbf"

FACILITY_SECURITY = 10
"""security/authorization messages (RFC 5424 table 1): where SIEM pipelines look first."""

SYSLOG_SEVERITY = {
    Severity.CRITICAL: 2,
    Severity.HIGH: 3,
    Severity.MEDIUM: 4,
    Severity.LOW: 5,
    Severity.INFO: 6,
}
"""RFC 5424 severity (2 critical ... 6 informational) of each finding severity."""

_LIMITS = {"hostname": 255, "app_name": 48, "procid": 128, "msgid": 32}


def header_field(value: str | None, limit: int) -> str:
    """A header field: printable ASCII (33-126) only, at most ``limit`` characters, or ``-``."""
    if not value:
        return NIL
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in value)
    return cleaned[:limit]


def timestamp(ts: float) -> str:
    """RFC 3339 in UTC with milliseconds, as RFC 5424 allows (``2026-11-28T12:00:00.123Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc5424(
    message: str,
    *,
    ts: float,
    severity: int,
    facility: int = FACILITY_SECURITY,
    hostname: str | None = None,
    app_name: str = "querywarden",
    procid: str | None = None,
    msgid: str | None = None,
) -> bytes:
    """One RFC 5424 message, without transport framing."""
    if not 0 <= facility <= 23 or not 0 <= severity <= 7:
        raise ValueError(f"syslog facility must be 0-23 and severity 0-7, not {facility}/{severity}")
    head = " ".join(
        (
            f"<{facility * 8 + severity}>1",
            timestamp(ts),
            header_field(hostname, _LIMITS["hostname"]),
            header_field(app_name, _LIMITS["app_name"]),
            header_field(procid, _LIMITS["procid"]),
            header_field(msgid, _LIMITS["msgid"]),
            NIL,  # structured data: the CEF line carries every field
        )
    )
    return head.encode("ascii") + b" " + BOM + message.encode("utf-8")


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting frame: the length in decimal, a space, the message."""
    return str(len(message)).encode("ascii") + b" " + message


class SyslogSender:
    """A syslog connection over UDP or TCP. TCP connects lazily and reconnects after an error."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        transport: str = "udp",
        timeout: float = 5.0,
        ca_file: str | None = None,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown syslog transport {transport!r}; allowed: {', '.join(TRANSPORTS)}")
        self.host, self.port, self.transport, self.timeout = host, port, transport, timeout
        self._tls = ssl.create_default_context(cafile=ca_file) if transport == "tls" else None
        self._sock: socket.socket | None = None

    @property
    def where(self) -> str:
        return f"syslog+{self.transport}://{self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self.transport == "udp":
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0][0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.connect((self.host, self.port))
        else:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(sock, server_hostname=self.host)
                except OSError:
                    sock.close()
                    raise
        sock.settimeout(self.timeout)
        self._sock = sock
        return sock

    def send(self, messages: Sequence[bytes]) -> None:
        """Send every message; on a socket error close the connection and raise ``DeliveryError``."""
        try:
            sock = self._connect()
            if self.transport == "udp":
                for m in messages:
                    sock.send(m)
            else:
                sock.sendall(b"".join(octet_counted(m) for m in messages))  # TCP and TLS
        except ssl.SSLCertVerificationError as exc:  # sending again will not make the certificate valid
            self.close()
            raise DeliveryError(f"syslog: {self.where}: {exc}", retryable=False, source=self.where) from None
        except OSError as exc:
            self.close()
            raise DeliveryError(f"syslog: cannot send to {self.where}: {exc}", source=self.where) from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class SyslogExporter:
    """Findings as CEF over syslog."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        transport: str = "udp",
        facility: int = FACILITY_SECURITY,
        app_name: str = "querywarden",
        hostname: str | None = None,
        timeout: float = 5.0,
        ca_file: str | None = None,
        name: str = "cef",
    ) -> None:
        self.name = name
        self.facility = facility
        self.app_name = app_name
        self.hostname = hostname or socket.gethostname()
        self.procid = str(os.getpid())
        self.sender = SyslogSender(
            host, port or DEFAULT_PORT.get(transport, 514), transport=transport, timeout=timeout, ca_file=ca_file
        )

    def message(self, finding: Finding) -> bytes:
        return rfc5424(
            cef_event(finding),
            ts=finding.updated_ts,
            severity=SYSLOG_SEVERITY[finding.severity],
            facility=self.facility,
            hostname=self.hostname,
            app_name=self.app_name,
            procid=self.procid,
            msgid=f"finding-{finding.status}",
        )

    def send(self, findings: Sequence[Finding]) -> None:
        self.sender.send([self.message(f) for f in findings])

    def close(self) -> None:
        self.sender.close()


__all__ = ["SyslogExporter", "SyslogSender", "octet_counted", "rfc5424", "timestamp"]
