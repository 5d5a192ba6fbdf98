"""SQLite's one writer: WAL, readers that never wait for it, writes that wait their turn,
and failures of writes nobody waited for that still surface."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from querywarden.core.engine import Step
from querywarden.core.records import Action, Decision, Interaction
from querywarden.errors import StoreError
from querywarden.store import open_store


def _batch(start: int, n: int, principal: str = "key_a") -> list[Interaction]:
    return [
        Interaction(id=f"r{i}", ts=float(i), principal=principal, model="credit", features=np.full(4, i, float))
        for i in range(start, start + n)
    ]


def test_file_store_runs_in_wal_mode(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/qw.db"):
        pass
    with sqlite3.connect(tmp_path / "qw.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_reads_run_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "qw.db"
    with open_store(f"sqlite:///{path}") as store:
        store.add_interactions(_batch(0, 10))
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process is mid-write
        other.execute("DELETE FROM traffic")
        store.add_interactions(_batch(10, 5), wait=False)  # queued behind the lock, not lost
        started = time.perf_counter()
        assert store.stats().interactions == 10  # the committed state, at once
        assert len(store.interactions(limit=100)) == 10
        assert time.perf_counter() - started < 1.0
        threading.Timer(0.3, other.execute, args=("ROLLBACK",)).start()
        store.flush()  # the writer waited on the busy timeout, then committed
        assert store.stats().interactions == 15
        other.close()


def test_concurrent_readers_see_only_whole_batches(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    done = threading.Event()
    with open_store(f"sqlite:///{tmp_path}/qw.db") as store:

        def read(seen: list[int]) -> None:
            try:
                while not done.is_set():
                    n = store.stats().interactions
                    assert n % 100 == 0  # a batch is one transaction: never half of one
                    assert len(store.interactions(limit=5)) >= min(5, n)
                    seen.append(n)
                    time.sleep(0.002)
            except BaseException as exc:
                errors.append(exc)

        per_reader: list[list[int]] = [[], [], []]
        readers = [threading.Thread(target=read, args=(seen,)) for seen in per_reader]
        for r in readers:
            r.start()
        for k in range(40):
            store.add_interactions(_batch(k * 100, 100))  # 40 commits while the readers read
        deadline = time.monotonic() + 10
        while any(not seen or seen[-1] < 4000 for seen in per_reader) and time.monotonic() < deadline:
            time.sleep(0.01)
        done.set()
        for r in readers:
            r.join()
        assert errors == []
        assert store.stats().interactions == 4000
    for seen in per_reader:
        assert seen == sorted(seen) and seen[-1] == 4000  # each reader only moves forward, to the end
    assert len({n for seen in per_reader for n in seen}) > 1  # reads happened during the writes


def test_two_stores_on_one_file_both_land_their_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/qw.db"
    with open_store(url) as replay, open_store(url) as gateway:

        def pump(store: object, principal: str) -> None:
            for k in range(20):
                store.add_interactions(_batch(k * 50, 50, principal), wait=False)  # type: ignore[attr-defined]
            store.flush()  # type: ignore[attr-defined]

        threads = [threading.Thread(target=pump, args=(s, p)) for s, p in ((replay, "a"), (gateway, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {p.principal: p.queries for p in replay.principals(order_by="queries")} == {"a": 1000, "b": 1000}


def test_a_failed_write_nobody_waited_for_surfaces_and_spares_the_others(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/qw.db") as store:
        bad = Interaction(id=None, ts=1.0, principal="p", model="credit")  # type: ignore[arg-type]
        store.add_interactions(_batch(0, 10), wait=False)
        store.add_interactions([bad], wait=False)
        store.add_interactions(_batch(10, 10), wait=False)
        with pytest.raises(StoreError, match=r"^sqlite:///.*qw\.db: NOT NULL constraint failed: interactions\.id"):
            store.flush()
        store.flush()  # reported once
        assert store.stats().interactions == 20


def test_a_failed_write_the_caller_waits_for_raises_there(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/qw.db") as store:
        with pytest.raises(StoreError, match="NOT NULL"):
            store.add_interactions([Interaction(id=None, ts=1.0, principal="p", model="m")])  # type: ignore[arg-type]
        store.add_interactions(_batch(0, 1))
        assert store.stats().interactions == 1


def test_in_memory_store_serves_reads_from_other_threads() -> None:
    with open_store("sqlite://") as store:
        store.add_interactions(_batch(0, 25))
        counts: list[int] = []
        t = threading.Thread(target=lambda: counts.append(store.stats().interactions))
        t.start()
        t.join()
        assert counts == [25]
    with open_store("sqlite://") as fresh:  # private to its store: nothing carries over
        assert fresh.stats().interactions == 0


def test_a_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/qw.db")
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        store.add_interactions(_batch(0, 1))


def test_writes_behind_from_many_threads_all_land_with_a_tiny_buffer(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/qw.db") as store:
        store._behind._max_rows = 8  # producers keep hitting the cap and waiting for the writer

        def produce(principal: str) -> None:
            for it in _batch(0, 300, principal):
                store.save_step((it,), Step([], [], []))

        threads = [threading.Thread(target=produce, args=(f"p{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        store.flush()
        assert {p.principal: p.queries for p in store.principals()} == {f"p{n}": 300 for n in range(4)}


def test_writes_behind_keep_their_order(tmp_path: Path) -> None:
    actions = [Action.HARDEN, Action.THROTTLE, Action.BLOCK, Action.ALLOW]
    with open_store(f"sqlite:///{tmp_path}/qw.db") as store:
        for n, action in enumerate(actions):
            store.record(decisions=[Decision(principal="k", action=action, ts=float(n))], wait=False)
        store.flush()
        assert [(e.previous_action, e.action) for e in reversed(store.audit())] == [
            (None, "harden"),
            ("harden", "throttle"),
            ("throttle", "block"),
            ("block", "allow"),
        ]
        assert [d.action for d in store.load_decisions()] == [Action.ALLOW]
