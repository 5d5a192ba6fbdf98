"""Operator decisions made elsewhere reach this gateway's engine within seconds.

A SOC may run ``querywarden console`` on its own host over the store several gateways
write. Its decisions land in the store's audit log, not in any gateway's engine. Inside
``serve``, ``DecisionSync`` follows the audit log from where it stood at start and applies
every operator change it has not seen to the live engine: a pinned decision for
allow/harden/throttle/block, ``clear_decision`` for a clear. The engine's own decisions
are already in the engine and are skipped. Applying a change twice is harmless, so the
changes this process made itself need no special case.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from querywarden.core.engine import Engine
from querywarden.core.records import Action, Decision
from querywarden.errors import QueryWardenError
from querywarden.store import AuditEntry, Store

log = logging.getLogger("querywarden.console")
BATCH = 200


class DecisionSync:
    def __init__(
        self, store: Store, engine: Engine, *, interval: float = 2.0, running: Callable[[], bool] | None = None
    ) -> None:
        """``running`` says whether the gateway still serves; once it said yes, a no ends the sync."""
        self.store, self.engine, self.interval = store, engine, interval
        self.running = running
        latest = store.audit(limit=1)
        self.seen = latest[0].seq if latest else 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """Apply the operator changes recorded since the last poll; return how many."""
        fresh: list[AuditEntry] = []
        offset = 0
        while True:
            page = self.store.audit(limit=BATCH, offset=offset)
            new = [e for e in page if e.seq > self.seen]
            fresh += new
            if len(new) < len(page) or len(page) < BATCH:
                break
            offset += BATCH
        for entry in sorted(fresh, key=lambda e: e.seq):
            self.seen = max(self.seen, entry.seq)
            if entry.source != "operator":
                continue
            if entry.action == "clear":
                self.engine.clear_decision(entry.principal)
                continue
            self.engine.set_decision(
                Decision(
                    principal=entry.principal,
                    action=Action(entry.action),
                    ts=entry.ts,
                    reason=entry.reason,
                    finding_id=entry.finding_id,
                    params=dict(entry.params),
                    shadow=entry.shadow,
                    source="operator",
                )
            )
        return sum(1 for e in fresh if e.source == "operator")

    def start(self) -> None:
        """Start following the audit log in a daemon thread (once; later calls do nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="querywarden-decision-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)

    def _run(self) -> None:
        was_running = False
        while not self._stop.wait(self.interval):
            if self.running is not None:
                now = self.running()
                if was_running and not now:
                    return
                was_running = was_running or now
            try:
                self.poll()
            except QueryWardenError as exc:  # the store closed with the server, or went away
                log.debug("decision sync stopped: %s", exc)
                return
