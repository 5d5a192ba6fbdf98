"""Real receivers on loopback for the export and intel tests: syslog over UDP and TCP, and
an HTTP server that records every request and answers from a script of status codes."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from querywarden.core.records import Finding, Severity


def make_finding(**overrides: Any) -> Finding:
    """A realistic extraction finding; ``overrides`` replace fields."""
    base: dict[str, Any] = {
        "finding_id": "fnd-0011223344556677",
        "status": "open",
        "principals": ("key_8f2c",),
        "actor": None,
        "model": "credit-risk",
        "technique": {"id": "AML.T0024.002", "name": "Extract AI Model"},
        "owasp": ("ML05:2023",),
        "severity": Severity.HIGH,
        "score": 0.87,
        "detectors": ("prada", "budget"),
        "first_seen_ts": 1_764_331_200.0,
        "detected_ts": 1_764_331_500.25,
        "updated_ts": 1_764_331_600.5,
        "trigger_id": "req-000123",
        "queries_at_detection": 412,
        "evidence": {"prada": {"shapiro_w": 0.81}},
        "action": "block",
    }
    base.update(overrides)
    return Finding(**base)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class UdpListener:
    """Collects datagrams on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 made with the openssl command (valid one day)."""
    cert, key = folder / "receiver.crt", folder / "receiver.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TcpListener:
    """Accepts connections on 127.0.0.1:<free port> and keeps the raw byte stream of each.
    With ``tls=(cert, key)`` it speaks TLS, as a syslog-over-TLS receiver does."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(*tls)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.streams: list[bytearray] = []
        self.connections: list[socket.socket] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    self.refused += 1
                    continue
            buf = bytearray()
            self.streams.append(buf)
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = conn.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buf.extend(data)

    def drop_connections(self) -> None:
        for c in self.connections:
            c.close()
        self.connections.clear()

    def data(self) -> bytes:
        return b"".join(bytes(s) for s in self.streams)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.drop_connections()
        self.sock.close()


def split_octet_counted(stream: bytes) -> list[bytes]:
    """RFC 6587 octet-counted frames, parsed strictly: a malformed frame fails the test."""
    out = []
    i = 0
    while i < len(stream):
        space = stream.index(b" ", i)
        length = int(stream[i:space].decode("ascii"))
        start = space + 1
        out.append(stream[start : start + length])
        assert len(out[-1]) == length, "truncated frame"
        i = start + length
    return out


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A threaded HTTP server on loopback. ``statuses`` is consumed one per request (then 200);
    ``respond`` may compute a (status, body) from a request instead."""

    statuses: list[int] = field(default_factory=list)
    body: bytes = b'{"ok": true}'
    respond: Callable[[Request], tuple[int, bytes, str]] | None = None
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers on every answer (e.g. Retry-After)."""
    request_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                req = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                receiver.requests.append(req)
                receiver.request_times.append(time.monotonic())
                if receiver.respond is not None:
                    status, body, ctype = receiver.respond(req)
                else:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    body, ctype = receiver.body, "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(2)
