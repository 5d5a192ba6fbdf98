"""Webhook, Splunk HEC and OCSF over HTTP, each delivered to a real HTTP server on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import querywarden
from exports_receivers import HttpReceiver, Request, make_finding
from querywarden.core.records import Severity
from querywarden.exports.base import DeliveryError
from querywarden.exports.ocsf_http import OcsfFileExporter, OcsfHttpExporter
from querywarden.exports.splunk import SplunkHecExporter
from querywarden.exports.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, WebhookExporter, sign, verify

SECRET = b"s3cret-shared-with-the-receiver"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.close()


def test_webhook_body_is_signed_and_the_receiver_verifies_it(receiver: HttpReceiver) -> None:
    def check(req: Request) -> tuple[int, bytes, str]:
        ok = verify(SECRET, req.body, req.headers[SIGNATURE_HEADER.lower()], now=time.time())
        return (204 if ok else 401), b"", "text/plain"

    receiver.respond = check
    exporter = WebhookExporter(receiver.url + "/hook", SECRET)
    exporter.send([make_finding(), make_finding(finding_id="fnd-2", severity=Severity.MEDIUM)])
    req = receiver.requests[0]
    assert req.method == "POST" and req.path == "/hook"
    body = json.loads(req.body)
    assert [f["finding_id"] for f in body["findings"]] == ["fnd-0011223344556677", "fnd-2"]
    assert body["findings"][1]["severity"] == "medium"
    assert len(req.headers[DELIVERY_HEADER.lower()]) == 32

    wrong = WebhookExporter(receiver.url + "/hook", b"another secret")
    with pytest.raises(DeliveryError) as info:
        wrong.send([make_finding()])
    assert not info.value.retryable  # 401: sending again cannot help
    exporter.close()
    wrong.close()


def test_verify_refuses_tampering_stale_and_malformed_signatures() -> None:
    body = b'{"findings": []}'
    header = sign(SECRET, body, 1_000)
    assert verify(SECRET, body, header, now=1_100)
    assert not verify(SECRET, body + b" ", header, now=1_100)
    assert not verify(SECRET, body, header, now=1_000 + 301)  # outside the 300 s tolerance: a replay
    assert not verify(b"other", body, header, now=1_100)
    assert not verify(SECRET, body, "v1=" + header.split("v1=")[1], now=1_100)  # no timestamp
    rotated = header + ",v1=" + sign(b"old", body, 1_000).split("v1=")[1]
    assert verify(SECRET, body, rotated, now=1_100) and verify(b"old", body, rotated, now=1_100)


def test_splunk_hec_path_auth_and_envelope(receiver: HttpReceiver) -> None:
    receiver.body = b'{"text":"Success","code":0}'
    exporter = SplunkHecExporter(receiver.url, "11111111-2222-3333-4444-555555555555", index="security", host="gw-1")
    exporter.send([make_finding(), make_finding(finding_id="fnd-2", status="closed", revision=3)])
    req = receiver.requests[0]
    assert req.path == "/services/collector/event"
    assert req.headers["authorization"] == "Splunk 11111111-2222-3333-4444-555555555555"
    envelopes = [json.loads(line) for line in req.body.decode().splitlines()]
    assert len(envelopes) == 2
    env = envelopes[0]
    assert set(env) == {"time", "host", "source", "sourcetype", "index", "event"}
    assert env["time"] == 1_764_331_600.5 and env["host"] == "gw-1" and env["index"] == "security"
    assert env["sourcetype"] == "querywarden:finding" and env["source"] == "querywarden"
    assert env["event"]["technique"]["id"] == "AML.T0024.002"
    assert envelopes[1]["event"]["status"] == "closed"
    exporter.close()


def test_splunk_refusals_are_delivery_errors(receiver: HttpReceiver) -> None:
    receiver.statuses = [503, 403]
    exporter = SplunkHecExporter(receiver.url + "/", "tok")
    with pytest.raises(DeliveryError) as busy:
        exporter.send([make_finding()])
    assert busy.value.retryable
    with pytest.raises(DeliveryError) as forbidden:
        exporter.send([make_finding()])
    assert not forbidden.value.retryable
    receiver.body = b'{"text":"Invalid data format","code":6}'
    with pytest.raises(DeliveryError, match="HEC refused"):
        exporter.send([make_finding()])
    exporter.close()


def test_ocsf_over_http_carries_detection_findings(receiver: HttpReceiver) -> None:
    exporter = OcsfHttpExporter(receiver.url + "/ocsf", token="t0k")
    findings = [
        make_finding(),
        make_finding(status="updated", revision=2, severity=Severity.CRITICAL),
        make_finding(
            status="closed", revision=3, technique={"id": "AML.T0040", "name": "AI Model Inference API Access"}
        ),
    ]
    exporter.send(findings)
    req = receiver.requests[0]
    assert req.headers["authorization"] == "Bearer t0k"
    assert req.headers["content-type"] == "application/json"
    events = json.loads(req.body)
    assert [e["activity_id"] for e in events] == [1, 2, 3]
    for e in events:
        assert e["class_uid"] == 2004 and e["category_uid"] == 2
        assert e["type_uid"] == 2004 * 100 + e["activity_id"]
        assert e["time"] == 1_764_331_600_500  # milliseconds
        assert e["metadata"]["product"]["name"] == "QueryWarden"
        assert e["metadata"]["product"]["version"] == querywarden.__version__ and e["metadata"]["version"]
        info = e["finding_info"]
        assert info["uid"] == "fnd-0011223344556677" and info["title"] and info["types"]
        assert e["evidences"][0]["data"] == {"prada": {"shapiro_w": 0.81}}
    assert [e["severity_id"] for e in events] == [4, 5, 4]
    attack = events[0]["finding_info"]["attacks"][0]
    assert attack["sub_technique"] == {"uid": "AML.T0024.002", "name": "Extract AI Model"}
    assert attack["technique"]["uid"] == "AML.T0024" and attack["tactic"]["uid"] == "AML.TA0010"
    assert events[2]["finding_info"]["attacks"][0]["technique"]["uid"] == "AML.T0040"
    exporter.close()


def test_ocsf_file_appends_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "ocsf.jsonl"
    exporter = OcsfFileExporter(out)
    exporter.send([make_finding()])
    exporter.send([make_finding(status="closed", revision=2)])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["activity_id"] for x in lines] == [1, 3]
    with pytest.raises(DeliveryError):
        OcsfFileExporter(tmp_path / "missing" / "x.jsonl").send([make_finding()])


def test_unreachable_http_receiver_is_retryable() -> None:
    r = HttpReceiver()
    url = r.url
    r.close()
    exporter = OcsfHttpExporter(url, timeout=1.0)
    with pytest.raises(DeliveryError) as info:
        exporter.send([make_finding()])
    assert info.value.retryable
    exporter.close()
