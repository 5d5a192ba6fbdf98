"""The engine off the critical path: a bounded queue and one worker thread.

The request path does two cheap things: it reads the principal's current decision (an
O(1) dict lookup in the engine) and hands the exchange to ``submit``, which never blocks.
One worker thread owns the engine and runs every interaction through it, in arrival
order, so the engine needs no locks and replays the same way it runs live.

The queue is bounded, so memory is too. When it is full ``submit`` returns False and the
caller applies the configured overflow policy (fail-open: pass and count; fail-closed:
503). An engine exception is logged with the interaction id and counted; the worker goes
on with the next interaction.

Decisions and findings go to the store (when one is configured) from the worker, and the
store's decisions are loaded into the engine on start, so a block survives a restart.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Protocol, cast

from querywarden.core.engine import Engine, Step
from querywarden.core.profile import ModelProfile
from querywarden.core.records import ALLOW_ALL, Decision, Finding, InputKind, Interaction
from querywarden.core.traffic_encode import encode
from querywarden.gateway.mirror import ActorDecisions
from querywarden.gateway.settings import GatewaySettings

log = logging.getLogger("querywarden.gateway")


class Work(Protocol):
    """Something the worker can turn into interactions (an ``Exchange``, or ready records)."""

    id: str

    def interactions(self) -> list[Interaction]: ...


class Ready:
    """Interactions built by the caller (the SDK)."""

    __slots__ = ("id", "items")

    def __init__(self, items: list[Interaction]) -> None:
        self.items = items
        self.id = items[0].id if items else ""

    def interactions(self) -> list[Interaction]:
        return self.items


class DecisionStore(Protocol):
    """What the pipeline needs from the store: persisted decisions in, results out."""

    def load_decisions(self) -> Iterable[Decision]: ...

    def save_step(self, interactions: Sequence[Interaction], step: Step) -> None: ...


class PipelineStats:
    """Counters read by the metrics endpoint (plain ints: one writer each, read racily)."""

    __slots__ = ("decisions", "dropped", "errors", "findings", "handled", "interactions", "unknown_model")

    def __init__(self) -> None:
        self.handled = 0
        """Work items (exchanges) the engine has finished with, errors included."""
        self.interactions = 0
        self.dropped = 0
        self.errors = 0
        self.findings = 0
        self.decisions = 0
        self.unknown_model = 0


class Pipeline(Protocol):
    """What the gateway needs from whatever runs the engine: this module's ``EnginePipeline``
    (a worker thread) or ``querywarden.gateway.remote.ProcessPipeline`` (its own process)."""

    stats: PipelineStats

    def decision_for(self, principal: str) -> Decision: ...

    def actor_of(self, principal: str) -> str | None: ...

    def submit(self, work: Work) -> bool: ...

    def has_room(self) -> bool: ...

    @property
    def depth(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def drain(self, timeout: float | None = None) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


_STOP = object()


class EnginePipeline:
    def __init__(
        self,
        engine: Engine,
        *,
        capacity: int = 10_000,
        store: DecisionStore | None = None,
        traffic_out: str | Path | None = None,
        auto_models: bool = True,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.auto_models = auto_models
        self.on_step = on_step
        self.stats = PipelineStats()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, capacity))
        self._traffic_path = Path(traffic_out) if traffic_out else None
        self._traffic: IO[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.actors = ActorDecisions()
        self.changes: deque[Decision | tuple[str, str]] | None = None
        """When set (by the engine process), every decision taken and every (principal,
        actor) placement is appended here for the data plane's mirror."""
        if store is not None:
            engine.load_decisions(store.load_decisions())

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: GatewaySettings, *, store: DecisionStore | None = None
    ) -> EnginePipeline:
        return cls(engine, capacity=settings.queue_size, store=store, traffic_out=settings.traffic_out)

    # -- the request path ----------------------------------------------------------------
    def decision_for(self, principal: str) -> Decision:
        """The principal's decision; a principal that joined an actor after the actor's
        decision was taken inherits it, so a fresh API key does not reset the ladder."""
        decision = self.engine.decision_for(principal)
        if decision is ALLOW_ALL:
            return self.actors.inherited(principal) or decision
        return decision

    def actor_of(self, principal: str) -> str | None:
        """The actor the engine last placed the principal in (as seen by the worker)."""
        return self.actors.actor_of.get(principal)

    def submit(self, work: Work) -> bool:
        """Queue work for the engine without blocking. False (and counted) when full."""
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            self.stats.dropped += 1
            return False
        return True

    def put(self, work: Work, timeout: float | None = None) -> None:
        """Queue work, waiting for room (the engine process: its sender already bounds what
        is in flight, so this only waits out a burst)."""
        self._queue.put(work, timeout=timeout)

    def has_room(self) -> bool:
        return not self._queue.full()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self.alive:
            return
        if self._traffic_path is not None:
            self._traffic = self._traffic_path.open("ab")
        self._thread = threading.Thread(target=self._run, name="querywarden-engine", daemon=True)
        self._thread.start()

    def drain(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far has been processed."""
        if not self.alive:
            self._run_pending()
            return
        done = threading.Event()
        self._queue.put(_Marker(done), timeout=timeout)
        done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, then stop the worker and close the traffic file."""
        if self._thread is not None:
            self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
            self._thread = None
        if self._traffic is not None:
            self._traffic.close()
            self._traffic = None

    # -- the worker ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is _STOP:
                return
            self._handle(work)
            if self._traffic is not None and self._queue.empty():
                self._traffic.flush()  # idle: make the traffic file current for readers

    def _run_pending(self) -> None:
        """Without a worker thread (the SDK's synchronous mode), process the queue here."""
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            if work is not _STOP:
                self._handle(work)

    def _handle(self, work: object) -> None:
        if isinstance(work, _Marker):
            work.done.set()
            return
        item = cast(Work, work)
        interaction_id = item.id
        try:
            items = item.interactions()
            for interaction in items:
                interaction_id = interaction.id
                self.process(interaction)
        except Exception:  # an engine or detector bug must not stop the gateway
            self.stats.errors += 1
            log.exception("engine failed on interaction %s; traffic continues", interaction_id)
        self.stats.handled += 1

    def process(self, interaction: Interaction) -> Step:
        """Run one interaction through the engine, then record and persist what it caused."""
        if interaction.model not in self.engine.profiles:
            if not self.auto_models:
                self.stats.unknown_model += 1
                raise KeyError(f"unknown model {interaction.model!r}")
            self.engine.add_model(_drafted_profile(interaction))
        step = self.engine.process(interaction)
        self.stats.interactions += 1
        actor = self.engine.actors.actor_of(interaction.principal)
        if actor is not None and self.actors.join(interaction.principal, actor) and self.changes is not None:
            self.changes.append((interaction.principal, actor))
        for d in step.decisions:
            self.actors.decide_actor(d)
            if self.changes is not None:
                self.changes.append(d)
        self.stats.findings += len(step.findings)
        self.stats.decisions += len(step.decisions)
        if self._traffic is not None:
            self._traffic.write(encode(interaction) + b"\n")
        if self.store is not None:
            self.store.save_step((interaction,), step)
        if self.on_step is not None and (step.signals or step.findings or step.decisions):
            self.on_step(step)
        for f in step.findings:
            _log_finding(f)
        return step


class _Marker:
    __slots__ = ("done",)

    def __init__(self, done: threading.Event) -> None:
        self.done = done


def _drafted_profile(interaction: Interaction) -> ModelProfile:
    """A minimal profile for a model the config does not name, drafted from its first interaction."""
    if interaction.features is not None:
        return ModelProfile(id=interaction.model, n_features=int(interaction.features.size), inferred=True)
    return ModelProfile(id=interaction.model, input_kind=InputKind.TEXT, output_kind="text", inferred=True)


def _log_finding(f: Finding) -> None:
    log.warning(
        "finding %s %s %s %s on %s principals=%s action=%s",
        f.finding_id,
        f.status,
        f.severity.label,
        f.technique["id"],
        f.model,
        ",".join(f.principals[:5]),
        f.action,
    )
