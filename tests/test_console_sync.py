"""A decision taken in a standalone console reaches a gateway's engine through the shared store."""

from __future__ import annotations

from pathlib import Path

from e2e.traffic import copied_store, profiles
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext
from querywarden.console.settings import ConsoleSettings
from querywarden.console.sync import DecisionSync
from querywarden.core.engine import Engine
from querywarden.core.records import Action, Decision
from querywarden.store import open_store


def test_operator_changes_in_the_store_are_applied_to_a_live_engine(tmp_path: Path) -> None:
    console_store = copied_store(tmp_path)
    gateway_store = open_store(f"sqlite:///{tmp_path / 'qw.db'}")  # the gateway's own handle on the same file
    try:
        console = ConsoleContext(store=console_store, auth=Auth(ConsoleSettings()))
        engine = Engine(profiles())
        sync = DecisionSync(gateway_store, engine)
        assert sync.poll() == 0, "history before the gateway started is loaded with load_decisions, not replayed"

        console.apply("scraper", "throttle", by="alice", note="SOC-9", params={"rate": 1.0, "burst": 2})
        console.apply("cust-02", "block", by="alice")
        gateway_store.set_decisions(
            [Decision(principal="cust-03", action=Action.BLOCK, ts=1.0, reason="engine elsewhere", source="engine")]
        )
        assert sync.poll() == 2
        throttled = engine.decision_for("scraper")
        assert (throttled.action, throttled.params, throttled.source) == (
            Action.THROTTLE,
            {"rate": 1.0, "burst": 2},
            "operator",
        )
        assert engine.decision_for("cust-02").action is Action.BLOCK
        assert engine.decision_for("cust-03").action is Action.ALLOW, "engine decisions are not pinned by the sync"

        console.apply("cust-02", "clear", by="alice")
        assert sync.poll() == 1 and engine.decision_for("cust-02").action is Action.ALLOW
        assert sync.poll() == 0
    finally:
        gateway_store.close()
        console_store.close()


def test_the_sync_thread_stops_when_the_gateway_stops(tmp_path: Path) -> None:
    store = copied_store(tmp_path)
    states = iter([False, True, True, False])
    try:
        sync = DecisionSync(store, Engine(profiles()), interval=0.01, running=lambda: next(states, False))
        sync.start()
        assert sync._thread is not None
        sync._thread.join(5)
        assert not sync._thread.is_alive()
    finally:
        store.close()
