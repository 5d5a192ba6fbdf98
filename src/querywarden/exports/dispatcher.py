"""Fans findings out to every configured exporter, off the request path.

``submit`` never blocks and never raises: each exporter has its own bounded queue and
worker thread, so a slow or dead SIEM delays only itself, and memory stays bounded
whatever happens downstream. A full queue drops the finding and counts it.

A worker takes up to ``batch_size`` findings at a time and calls ``send``. A retryable
``DeliveryError`` is retried after ``backoff * 2**attempt`` seconds (capped at
``max_backoff``, with jitter so many gateways do not retry in step), or after the
receiver's ``Retry-After`` when that is longer, up to ``max_retries`` times; after that,
or on a non-retryable error, the batch is counted as failed and logged.
Every count is an aggregate per exporter (``ExportStats``), never per principal, so the
Prometheus collector here can expose them as they are.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from querywarden.core.records import Finding, Severity
from querywarden.exports.base import DeliveryError, Exporter

log = logging.getLogger("querywarden.exports")


@dataclass(frozen=True, slots=True)
class Route:
    """An exporter and how findings reach it."""

    exporter: Exporter
    min_severity: Severity = Severity.INFO
    queue_size: int = 1_000
    batch_size: int = 100
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0


class ExportStats:
    """Counters of one exporter (plain ints with one writer each, read racily by metrics)."""

    __slots__ = ("dropped", "failed", "retries", "sent", "skipped")

    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0
        """Findings refused because the queue was full, or left queued at shutdown."""
        self.failed = 0
        """Findings given up on after the retries (or a non-retryable error)."""
        self.retries = 0
        self.skipped = 0
        """Findings below the route's ``min_severity``."""

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


_STOP = object()


class _Lane:
    """One exporter's queue, worker and counters."""

    def __init__(self, route: Route, stop: threading.Event) -> None:
        self.route = route
        self.stats = ExportStats()
        self.queue: queue.Queue[object] = queue.Queue(maxsize=max(1, route.queue_size))
        self._stop = stop
        self.stalled = False
        """Set when a waiting ``submit`` timed out; later ones no longer wait on this lane."""
        self.thread = threading.Thread(target=self._run, name=f"querywarden-export-{route.exporter.name}", daemon=True)

    def offer(self, finding: Finding, wait: float = 0.0) -> None:
        if finding.severity < self.route.min_severity:
            self.stats.skipped += 1
            return
        try:
            if wait > 0 and not self.stalled:
                self.queue.put(finding, timeout=wait)
            else:
                self.queue.put_nowait(finding)
        except queue.Full:
            self.stats.dropped += 1
            if wait > 0:
                self.stalled = True  # the receiver is stuck: waiting again per finding would hang the job

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is _STOP:
                self.queue.task_done()
                return
            batch = [first]
            stop_after = False
            while len(batch) < self.route.batch_size:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                batch.append(item)
            self._deliver([f for f in batch if isinstance(f, Finding)])
            for _ in range(len(batch) + stop_after):
                self.queue.task_done()
            if stop_after or self._stop.is_set():
                return

    def _deliver(self, batch: Sequence[Finding]) -> None:
        route, name = self.route, self.route.exporter.name
        attempt = 0
        while True:
            try:
                route.exporter.send(batch)
            except DeliveryError as exc:
                if not exc.retryable or attempt >= route.max_retries or self._stop.is_set():
                    self.stats.failed += len(batch)
                    log.error("export %s gave up on %d findings after %d tries: %s", name, len(batch), attempt + 1, exc)
                    return
                self.stats.retries += 1
                delay = min(route.max_backoff, route.backoff * 2**attempt) * random.uniform(0.5, 1.0)
                if exc.retry_after is not None:  # the receiver said when: no sooner, within max_backoff
                    delay = max(delay, min(exc.retry_after, route.max_backoff))
                attempt += 1
                if self._stop.wait(delay):  # shutting down: one last try, no more waiting
                    attempt = route.max_retries
            except Exception:  # an exporter bug must not kill the lane
                self.stats.failed += len(batch)
                log.exception("export %s failed on %d findings", name, len(batch))
                return
            else:
                self.stats.sent += len(batch)
                return


class Dispatcher:
    """Findings in, exporters out; see the module doc.

    dispatcher = Dispatcher([Route(SyslogExporter("siem.example", 514))])
    dispatcher.start()
    dispatcher.submit(step.findings)     # from the engine worker: never blocks
    dispatcher.close()                   # drain (bounded by timeout) and stop
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._stop = threading.Event()
        self._lanes = [_Lane(r, self._stop) for r in routes]
        names = [lane.route.exporter.name for lane in self._lanes]
        if len(set(names)) != len(names):
            raise ValueError(f"exporter names must be unique, got {names}")
        self._started = False
        self._closed = False
        self._closers: list[Callable[[], None]] = []

    def close_with(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` when the dispatcher closes: other edge work that lives as long as it."""
        self._closers.append(closer)

    def __bool__(self) -> bool:
        return bool(self._lanes)

    def start(self) -> None:
        if not self._started and self._lanes:
            for lane in self._lanes:
                lane.thread.start()
            self._started = True

    def submit(self, findings: Iterable[Finding], *, wait: float = 0.0) -> None:
        """Queue findings for every exporter; the lanes start on first use.

        With ``wait=0`` (the engine worker) it never blocks and a full queue counts a drop.
        A batch job such as ``replay`` passes ``wait`` seconds it may block per finding, so
        a fast producer is paced by the receivers instead of losing findings; once a wait
        times out on a lane, that lane's receiver is taken as stuck and later findings for
        it are dropped (counted) at once rather than each waiting in turn.
        """
        if self._closed:
            late = len(list(findings))
            for lane in self._lanes:  # too late to deliver: counted, not raised
                lane.stats.dropped += late
            return
        if not self._started:
            self.start()
        for f in findings:
            for lane in self._lanes:
                lane.offer(f, wait)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued finding has been delivered or given up on; False on timeout."""
        end = time.monotonic() + timeout
        while any(lane.queue.unfinished_tasks for lane in self._lanes if lane.thread.is_alive()):
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop; what is left counts as dropped."""
        self._closed = True
        while self._closers:
            self._closers.pop()()
        if self._started:
            end = time.monotonic() + timeout
            for lane in self._lanes:
                with contextlib.suppress(queue.Full):
                    lane.queue.put(_STOP, timeout=max(0.0, end - time.monotonic()))
            for lane in self._lanes:
                lane.thread.join(max(0.0, end - time.monotonic()))
            self._stop.set()  # a lane still retrying makes one last try and returns
            for lane in self._lanes:
                lane.thread.join(1.0)
        for lane in self._lanes:
            while True:
                try:
                    item = lane.queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, Finding):
                    lane.stats.dropped += 1
            lane.route.exporter.close()
        self._started = False

    def summary(self) -> str:
        """One line per exporter, for a command's closing report."""
        return "\n".join(
            f"export {name}: {s.sent:,} sent, {s.failed:,} failed, {s.dropped:,} dropped, {s.skipped:,} skipped"
            for name, s in self.stats().items()
        )

    def stats(self) -> dict[str, ExportStats]:
        return {lane.route.exporter.name: lane.stats for lane in self._lanes}

    def exporters(self) -> dict[str, Exporter]:
        return {lane.route.exporter.name: lane.route.exporter for lane in self._lanes}

    def depth(self) -> dict[str, int]:
        return {lane.route.exporter.name: lane.queue.qsize() for lane in self._lanes}

    def collector(self) -> Any:
        """A Prometheus collector of the counters, labelled by exporter name only."""
        return _DispatcherCollector(self)


class _DispatcherCollector:
    """Read at scrape time, so the lanes pay nothing for metrics."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.dispatcher.stats()
        findings = CounterMetricFamily(
            "querywarden_export_findings",
            "Finding events by exporter and outcome (sent, dropped, failed, skipped).",
            labels=("exporter", "outcome"),
        )
        retries = CounterMetricFamily(
            "querywarden_export_retries", "Delivery attempts retried, by exporter.", labels=("exporter",)
        )
        depth = GaugeMetricFamily(
            "querywarden_export_queue_depth", "Finding events waiting for delivery, by exporter.", labels=("exporter",)
        )
        queued = self.dispatcher.depth()
        for name, s in stats.items():
            for outcome in ("sent", "dropped", "failed", "skipped"):
                findings.add_metric((name, outcome), getattr(s, outcome))
            retries.add_metric((name,), s.retries)
            depth.add_metric((name,), queued[name])
        yield findings
        yield retries
        yield depth


__all__ = ["Dispatcher", "ExportStats", "Route"]
