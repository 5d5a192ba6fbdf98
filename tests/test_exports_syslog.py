"""CEF over syslog: escaping, RFC 5424 structure, and delivery to real UDP and TCP listeners."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from exports_receivers import TcpListener, UdpListener, make_finding, self_signed, split_octet_counted, wait_for
from querywarden.core.records import Severity
from querywarden.errors import ExportError
from querywarden.exports.cef import cef_event, escape_header, escape_value
from querywarden.exports.syslog import BOM, SyslogExporter, SyslogSender, rfc5424

RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<host>[!-~]{1,255}) "
    rb"(?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) (?P<sd>-|\[.*?\]) (?P<msg>.*)$",
    re.DOTALL,
)


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """A strict CEF reader: unescaped pipes split the header, unescaped '=' starts a value."""
    header, i, field = [], 0, ""
    while len(header) < 7:
        ch = line[i]
        if ch == "\\":
            field += line[i + 1]
            i += 2
            continue
        if ch == "|":
            header.append(field)
            field = ""
        else:
            field += ch
        i += 1
    ext = line[i:]
    pairs = re.findall(r"(\w+)=((?:\\.|[^\\])*?)(?= \w+=|$)", ext)
    unescape = {"\\\\": "\\", "\\=": "=", "\\n": "\n", "\\r": "\r"}
    values = {k: re.sub(r"\\[\\=nr]", lambda m: unescape[m.group(0)], v) for k, v in pairs}
    return header, values


def test_escaping_round_trips_hostile_names() -> None:
    hostile = "evil|key\\with=equals\nand\rbreaks"
    f = make_finding(
        principals=(hostile, "b"), model="m|x", technique={"id": "AML.T0024.002", "name": "Extract AI Model"}
    )
    line = cef_event(f)
    assert "\n" not in line and "\r" not in line
    header, ext = parse_cef(line)
    assert header[:3] == ["CEF:0", "QueryWarden", "QueryWarden"]
    assert header[4] == "AML.T0024.002" and header[6] == "8"
    assert ext["suser"] == hostile
    assert ext["cs1"] == f"{hostile},b"
    assert ext["cs4"] == "m|x"
    assert ext["rt"] == "1764331500250" and ext["externalId"] == f.finding_id
    assert ext["act"] == "block" and ext["cat"] == "AML.T0024.002" and ext["cfp1"] == "0.8700"


def test_escape_rules_follow_the_spec() -> None:
    assert escape_header("a|b\\c=d\ne") == "a\\|b\\\\c=d e"
    assert escape_value("a|b\\c=d\ne\rf") == "a|b\\\\c\\=d\\ne\\rf"


def test_rfc5424_structure_and_priority() -> None:
    msg = rfc5424("hello", ts=1_764_331_200.5, severity=3, facility=10, hostname="gw 1", app_name="querywarden")
    m = RFC5424.match(msg)
    assert m is not None
    assert int(m["pri"]) == 10 * 8 + 3
    assert m["ts"] == b"2025-11-28T12:00:00.500Z"
    assert m["host"] == b"gw_1"  # a space is not allowed in a header field
    assert m["procid"] == b"-" and m["sd"] == b"-"
    assert m["msg"] == BOM + b"hello"
    with pytest.raises(ValueError):
        rfc5424("x", ts=0, severity=9)


@pytest.fixture
def udp() -> Iterator[UdpListener]:
    listener = UdpListener()
    yield listener
    listener.close()


@pytest.fixture
def tcp() -> Iterator[TcpListener]:
    listener = TcpListener()
    yield listener
    listener.close()


def test_cef_over_udp_one_datagram_per_finding(udp: UdpListener) -> None:
    exporter = SyslogExporter("127.0.0.1", udp.port, transport="udp", hostname="gw-1")
    findings = [make_finding(), make_finding(status="updated", severity=Severity.CRITICAL, revision=2)]
    exporter.send(findings)
    exporter.close()
    assert wait_for(lambda: len(udp.datagrams) == 2)
    first, second = (RFC5424.match(d) for d in udp.datagrams)
    assert first is not None and second is not None
    assert int(first["pri"]) == 10 * 8 + 3 and int(second["pri"]) == 10 * 8 + 2
    assert first["msgid"] == b"finding-open" and second["msgid"] == b"finding-updated"
    header, ext = parse_cef(first["msg"].removeprefix(BOM).decode())
    assert header[5] == "Extract AI Model (open)" and ext["suser"] == "key_8f2c"


def test_cef_over_tcp_is_octet_counted_and_reconnects(tcp: TcpListener) -> None:
    exporter = SyslogExporter("127.0.0.1", tcp.port, transport="tcp", hostname="gw-1")
    exporter.send([make_finding(principals=("multi\nline",)), make_finding(finding_id="fnd-2")])
    assert wait_for(lambda: len(split_octet_counted(tcp.data())) == 2)
    frames = split_octet_counted(tcp.data())
    assert all(RFC5424.match(f) for f in frames)
    assert b"externalId=fnd-2" in frames[1]
    tcp.drop_connections()  # the receiver restarts: the next send fails or reconnects, never hangs
    delivered = False
    for _ in range(3):
        try:
            exporter.send([make_finding(finding_id="fnd-3")])
            delivered = wait_for(lambda: b"fnd-3" in tcp.data(), 1.0)
        except ExportError:
            continue
        if delivered:
            break
    exporter.close()
    assert delivered


def test_unreachable_tcp_receiver_is_a_retryable_delivery_error() -> None:
    listener = TcpListener()
    port = listener.port
    listener.close()
    sender = SyslogSender("127.0.0.1", port, transport="tcp", timeout=1.0)
    with pytest.raises(ExportError) as info:
        sender.send([b"x"])
    assert getattr(info.value, "retryable", False)
    assert f"127.0.0.1:{port}" in str(info.value)


def test_cef_over_tls_verifies_the_receiver(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    listener = TcpListener(tls=(cert, key))
    try:
        trusted = SyslogExporter("127.0.0.1", listener.port, transport="tls", ca_file=str(cert), hostname="gw-1")
        trusted.send([make_finding(), make_finding(finding_id="fnd-tls")])
        assert wait_for(lambda: len(split_octet_counted(listener.data())) == 2)
        frames = split_octet_counted(listener.data())
        assert all(RFC5424.match(f) for f in frames) and b"externalId=fnd-tls" in frames[1]
        trusted.close()
        stranger = SyslogExporter("127.0.0.1", listener.port, transport="tls")  # the system CAs do not know it
        with pytest.raises(ExportError, match="certificate") as info:
            stranger.send([make_finding()])
        assert not getattr(info.value, "retryable", True)
        assert len(split_octet_counted(listener.data())) == 2
    finally:
        listener.close()
