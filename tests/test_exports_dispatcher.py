"""The dispatcher: off the caller's thread, bounded, retrying with backoff, counting drops."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, generate_latest

from exports_receivers import HttpReceiver, make_finding, wait_for
from querywarden.core.records import Finding, Severity
from querywarden.exports.base import DeliveryError
from querywarden.exports.dispatcher import Dispatcher, Route
from querywarden.exports.webhook import WebhookExporter


class Flaky:
    """Fails the first ``failures`` sends, then records; optionally blocks until released."""

    def __init__(self, name: str, failures: int = 0, *, retryable: bool = True) -> None:
        self.name = name
        self.failures = failures
        self.retryable = retryable
        self.batches: list[list[str]] = []
        self.attempts: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self.closed = False

    def send(self, findings: Sequence[Finding]) -> None:
        self.gate.wait(10)
        self.attempts.append(time.monotonic())
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryError(f"{self.name} down", retryable=self.retryable)
        self.batches.append([f.finding_id for f in findings])

    def close(self) -> None:
        self.closed = True


def findings(n: int, severity: Severity = Severity.HIGH) -> list[Finding]:
    return [make_finding(finding_id=f"fnd-{i}", severity=severity) for i in range(n)]


def test_fans_out_to_every_exporter_and_filters_by_severity() -> None:
    a, b = Flaky("a"), Flaky("b")
    d = Dispatcher([Route(a), Route(b, min_severity=Severity.HIGH)])
    d.start()
    d.submit([*findings(3), make_finding(finding_id="low", severity=Severity.LOW)])
    assert d.drain(5)
    assert sorted(x for batch in a.batches for x in batch) == ["fnd-0", "fnd-1", "fnd-2", "low"]
    assert sorted(x for batch in b.batches for x in batch) == ["fnd-0", "fnd-1", "fnd-2"]
    assert d.stats()["b"].skipped == 1 and d.stats()["a"].sent == 4
    d.close()
    assert a.closed and b.closed


def test_submit_never_blocks_and_counts_drops_when_full() -> None:
    slow = Flaky("slow")
    slow.gate.clear()  # the receiver hangs
    d = Dispatcher([Route(slow, queue_size=10, batch_size=5)])
    d.start()
    d.submit(findings(1))
    assert wait_for(lambda: d.depth()["slow"] == 0)  # the worker holds the first one
    started = time.perf_counter()
    d.submit(findings(100))
    assert time.perf_counter() - started < 0.5
    assert d.stats()["slow"].dropped == 90
    slow.gate.set()
    assert d.drain(5)
    assert d.stats()["slow"].sent == 11
    d.close()


def test_retries_with_growing_backoff_then_delivers() -> None:
    flaky = Flaky("flaky", failures=3)
    d = Dispatcher([Route(flaky, backoff=0.05, max_retries=5)])
    d.start()
    d.submit(findings(2))
    assert d.drain(5)
    s = d.stats()["flaky"]
    assert (s.sent, s.failed, s.retries) == (2, 0, 3)
    gaps = [b - a for a, b in zip(flaky.attempts, flaky.attempts[1:], strict=False)]
    assert gaps[0] >= 0.05 * 0.5 and gaps[2] >= 0.2 * 0.5  # backoff * 2**attempt, jittered to [0.5, 1]
    d.close()


def test_gives_up_after_max_retries_and_at_once_on_a_permanent_error() -> None:
    down, refused = Flaky("down", failures=100), Flaky("refused", failures=100, retryable=False)
    d = Dispatcher([Route(down, backoff=0.01, max_retries=2), Route(refused, backoff=0.01)])
    d.start()
    d.submit(findings(3))
    assert d.drain(5)
    assert d.stats()["down"].failed == 3 and d.stats()["down"].retries == 2 and len(down.attempts) == 3
    assert d.stats()["refused"].failed == 3 and d.stats()["refused"].retries == 0
    d.close()


def test_close_counts_what_is_left_as_dropped() -> None:
    stuck = Flaky("stuck")
    stuck.gate.clear()
    d = Dispatcher([Route(stuck, queue_size=50, batch_size=1)])
    d.start()
    d.submit(findings(20))
    d.close(timeout=0.2)
    stuck.gate.set()
    s = d.stats()["stuck"]
    assert s.dropped >= 18 and s.sent + s.dropped + s.failed <= 20
    before = s.dropped
    d.submit(findings(3))  # after close: counted as dropped, never raised
    assert s.dropped == before + 3


def test_metrics_are_aggregates_named_querywarden() -> None:
    d = Dispatcher([Route(Flaky("siem"))])
    d.start()
    d.submit(findings(4))
    assert d.drain(5)
    registry = CollectorRegistry()
    registry.register(d.collector())
    text = generate_latest(registry).decode()
    assert 'querywarden_export_findings_total{exporter="siem",outcome="sent"} 4.0' in text
    assert 'querywarden_export_retries_total{exporter="siem"} 0.0' in text
    assert 'querywarden_export_queue_depth{exporter="siem"} 0.0' in text
    assert "key_8f2c" not in text and "fnd-" not in text
    d.close()


def test_end_to_end_to_a_real_webhook() -> None:
    receiver = HttpReceiver(statuses=[500, 200])
    d = Dispatcher([Route(WebhookExporter(receiver.url, b"k"), backoff=0.01)])
    d.start()
    d.submit(findings(2))
    assert d.drain(5)
    assert len(receiver.requests) == 2 and receiver.requests[0].body == receiver.requests[1].body
    assert d.stats()["webhook"].sent == 2 and d.stats()["webhook"].retries == 1
    d.close()
    receiver.close()


def test_honours_retry_after_from_a_busy_receiver() -> None:
    receiver = HttpReceiver(statuses=[429])
    receiver.headers = {"Retry-After": "1"}
    d = Dispatcher([Route(WebhookExporter(receiver.url, b"k"), backoff=0.01)])
    d.submit(findings(1))
    assert d.drain(5)
    assert len(receiver.requests) == 2 and d.stats()["webhook"].sent == 1
    gap = receiver.request_times[1] - receiver.request_times[0]
    assert gap >= 0.95  # not the 10 ms backoff: the second asked for
    d.close()
    receiver.close()


def test_a_waiting_producer_is_paced_then_stops_waiting_on_a_stuck_receiver() -> None:
    slow = Flaky("slow")
    slow.gate.clear()
    d = Dispatcher([Route(slow, queue_size=2, batch_size=1)])
    d.submit(findings(1))
    assert wait_for(lambda: d.depth()["slow"] == 0)
    started = time.perf_counter()
    d.submit(findings(2), wait=0.2)  # fits: no waiting
    d.submit(findings(50), wait=0.2)  # the first waits 0.2 s and times out, the rest drop at once
    assert time.perf_counter() - started < 1.0
    assert d.stats()["slow"].dropped == 50
    slow.gate.set()
    assert d.drain(5) and d.stats()["slow"].sent == 3
    d.close()
