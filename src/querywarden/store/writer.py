"""The single writer: one thread owns every write, fed by a bounded queue.

SQLite allows one writer at a time; funnelling all writes through one thread makes that
explicit instead of leaving threads to collide on the lock. It also buys throughput:
the thread drains whatever jobs are waiting and commits them in one transaction, so a
gateway that writes one interaction per request still pays one commit per batch.

A job is a function of a connection. ``submit`` returns a ``Future``. Callers that need
the write durable before going on (an operator's decision) wait on it; the replay path
does not, and the bounded queue holds it back when the database falls behind. A failed
job that nobody waited for is not lost: its error is raised by the next ``submit`` or
``flush``.

If a transaction of several jobs fails, each job is retried alone, so one bad job fails
by itself and does not take the others with it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import sqlalchemy as sa

from querywarden.errors import StoreError

Job = Callable[[sa.Connection], Any]

MAX_JOBS_PER_TRANSACTION = 256


class _Stop:
    """Queued by ``close`` after the last job."""


class Writer:
    def __init__(self, engine: sa.Engine, wrap: Callable[[BaseException], StoreError], *, max_pending: int) -> None:
        self._engine = engine
        self._wrap = wrap
        self._queue: queue.Queue[tuple[Job, Future[Any]] | _Stop] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._deferred: list[StoreError] = []
        self._more = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="querywarden-store-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job, *, watched: bool) -> Future[Any]:
        """Queue ``job``. ``watched`` says the caller will look at the future's result."""
        self.raise_deferred()
        if self._closed:
            raise StoreError("the store is closed")
        future: Future[Any] = Future()
        if not watched:
            future.add_done_callback(self._remember_failure)
        self._queue.put((job, future))
        return future

    def call(self, job: Job) -> Any:
        """Run ``job`` on the writer and wait for its result (or its error)."""
        return self.submit(job, watched=True).result()

    def flush(self) -> None:
        """Wait until every job queued so far is committed; raise any deferred failure."""
        if not self._closed:
            self.submit(_nothing, watched=True).result()
        self.raise_deferred()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._queue.put(_Stop())
            self._thread.join()

    def defer(self, error: StoreError, *, more: int = 0) -> None:
        """Keep ``error`` (and a count of ``more`` like it) for the next call to raise."""
        with self._lock:
            self._deferred.append(error)
            self._more += more

    def raise_deferred(self) -> None:
        with self._lock:
            if not self._deferred:
                return
            first, *rest = self._deferred
            more = len(rest) + self._more
            self._deferred.clear()
            self._more = 0
        if more:
            first.reason += f" (and {more} more failed writes)"
            first.args = (first.located(),)
        raise first

    # -- the thread --------------------------------------------------------------------
    def _remember_failure(self, future: Future[Any]) -> None:
        exc = future.exception()
        if exc is not None:
            self.defer(exc if isinstance(exc, StoreError) else self._wrap(exc))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if isinstance(first, _Stop):
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_JOBS_PER_TRANSACTION:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        live = [(job, fut) for job, fut in batch if fut.set_running_or_notify_cancel()]
        try:
            with self._engine.begin() as conn:
                results = [job(conn) for job, _ in live]
        except Exception as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc if isinstance(exc, StoreError) else self._wrap(exc))
                return
            for job, fut in live:  # find the bad job: each alone, in its own transaction
                try:
                    with self._engine.begin() as conn:
                        fut.set_result(job(conn))
                except Exception as single:
                    fut.set_exception(single if isinstance(single, StoreError) else self._wrap(single))
            return
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)


def _nothing(_conn: sa.Connection) -> None:
    return None
