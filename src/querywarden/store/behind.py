"""Writes that the caller does not wait for, grouped into one transaction per turn.

The gateway's worker hands over one interaction per request. Committing each alone would
cap the store at a few hundred requests a second. Instead, records given without waiting
go into a buffer; the first one in queues a single drain job on the writer, and everything
that arrives before the writer gets to it rides along, written with one ``executemany``
per table. The slower the disk, the bigger the groups: throughput adapts to load.

Memory stays bounded: a producer that finds ``max_rows`` records already waiting blocks
until they are written. A part that fails is retried alone (in a savepoint) so it fails
by itself, and its error surfaces on the next call, as for any write nobody waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from querywarden.core.records import Decision, Finding, Interaction, Signal
from querywarden.errors import StoreError
from querywarden.store import writes
from querywarden.store.codec import Retention
from querywarden.store.writer import Writer


@dataclass(slots=True)
class Part:
    """What one call handed over."""

    interactions: Sequence[Interaction] = ()
    signals: Sequence[Signal] = ()
    findings: Sequence[Finding] = ()
    decisions: Sequence[Decision] = ()
    actors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    actors_ts: float = 0.0

    def size(self) -> int:
        return len(self.interactions) + len(self.signals) + len(self.findings) + len(self.decisions) + 1


def write_parts(conn: sa.Connection, parts: Sequence[Part], retention: Retention) -> None:
    """Write several parts as one: one statement per table, order kept."""
    if len(parts) == 1:
        merged = parts[0]
    else:
        merged = Part(
            [i for p in parts for i in p.interactions],
            [s for p in parts for s in p.signals],
            [f for p in parts for f in p.findings],
            [d for p in parts for d in p.decisions],
        )
    writes.add_interactions(conn, merged.interactions, retention)
    writes.add_signals(conn, merged.signals)
    writes.add_findings(conn, merged.findings)
    writes.set_decisions(conn, merged.decisions, note="", by=None)
    for p in parts:
        if p.actors:
            writes.save_actors(conn, p.actors, p.actors_ts)


class WriteBehind:
    def __init__(
        self,
        writer: Writer,
        retention: Retention,
        wrap: Callable[[BaseException], StoreError],
        *,
        max_rows: int,
    ) -> None:
        self._writer = writer
        self._retention = retention
        self._wrap = wrap
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._parts: list[Part] = []
        self._rows = 0
        self._drain: Future[Any] | None = None

    def add(self, part: Part) -> None:
        self._writer.raise_deferred()
        with self._lock:
            full = self._drain if self._rows >= self._max_rows else None
        if full is not None:
            full.result()  # let the writer catch up before buffering more
        with self._lock:
            self._parts.append(part)
            self._rows += part.size()
            if self._drain is not None:
                return
            drain: Future[Any] = Future()
            self._drain = drain
        try:
            job = self._writer.submit(self._job(), watched=False)
        except StoreError:
            with self._lock:
                if self._drain is drain:
                    self._drain = None  # the next add queues the drain again
            drain.set_result(None)
            raise
        job.add_done_callback(lambda _: drain.set_result(None))

    def _job(self) -> Callable[[sa.Connection], None]:
        """A drain that takes the buffer once, so a retry by the writer writes the same parts."""
        taken: list[list[Part]] = []

        def job(conn: sa.Connection) -> None:
            if not taken:
                with self._lock:
                    taken.append(self._parts)
                    self._parts, self._rows, self._drain = [], 0, None
            self._write(conn, taken[0])

        return job

    def _write(self, conn: sa.Connection, parts: list[Part]) -> None:
        if not parts:
            return
        try:
            with conn.begin_nested():
                write_parts(conn, parts, self._retention)
            return
        except Exception as exc:
            if len(parts) == 1:
                self._writer.defer(exc if isinstance(exc, StoreError) else self._wrap(exc))
                return
        failures: list[BaseException] = []
        for part in parts:  # find the bad part: each alone, in its own savepoint
            try:
                with conn.begin_nested():
                    write_parts(conn, [part], self._retention)
            except Exception as exc:
                failures.append(exc)
        if failures:
            first = failures[0]
            self._writer.defer(first if isinstance(first, StoreError) else self._wrap(first), more=len(failures) - 1)
