"""The engine's own process: ``python -m querywarden.gateway.engine_process FD``.

``querywarden serve`` (process mode) starts it with one end of a socketpair and sends a
``Hello``. It builds exactly what thread mode builds beside the proxy (``build_control``:
the engine with its snapshot restored, the store and its decisions, the exports, the admin
app with the REST API and console, which it serves on a Unix socket the proxy's admin port
forwards to), sends its whole decision table and ``Ready``, then runs three threads:

- the reader turns each ``Batch`` into exchanges and queues them for the pipeline's worker
  (the same ``EnginePipeline`` as thread mode: store writes, exports, traffic file);
- the worker runs the engine;
- the publisher sends ``Update`` frames every 5 ms while there is news (decisions,
  actor placements, exchanges finished, counters), looks for news every 20 ms when idle
  and sends a frame every ``HEARTBEAT`` seconds even without news (the proxy takes
  silence for a stall), and at once when an operator decides (console, API, the store's sync: they change the engine
  directly, not through the worker); every 250 ms it also compares the engine's decision
  table with what it has sent, so no change can be missed.

SIGINT and SIGTERM are ignored: the process ends when the proxy closes its end of the
channel (a clean stop, or the proxy died). It then processes what is queued, sends a last
update, saves the engine's snapshot, closes the store and exits. A worker thread that dies
ends the process at once (the proxy sees it and starts another).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator

import msgspec
import uvicorn

from querywarden.core.engine import Engine
from querywarden.core.records import ALLOW_ALL, Decision, Interaction
from querywarden.errors import QueryWardenError
from querywarden.gateway.adapters import Adapter, Router
from querywarden.gateway.channel import (
    HEARTBEAT,
    TO_ENGINE,
    Batch,
    ChannelError,
    Failed,
    FrameReader,
    Hello,
    Ready,
    Update,
    adapters_by_name,
    frame,
    from_wire,
)
from querywarden.gateway.metrics import GatewayMetrics
from querywarden.gateway.pipeline import EnginePipeline, Work
from querywarden.gateway.server import ControlPlane, build_control
from querywarden.gateway.settings import GatewaySettings

log = logging.getLogger("querywarden.gateway")

BUSY = 0.005
"""Seconds between updates while there is news (each one wakes the proxy)."""
IDLE = 0.02
RESYNC = 0.25
NICENESS = 5
"""The engine process yields the CPU to the proxy when both want it: detection can wait a
few milliseconds, the request path cannot. With a core to spare it changes nothing."""


class EngineLink:
    """The engine side of the channel: reads batches, publishes updates."""

    def __init__(
        self, sock: socket.socket, reader: FrameReader, pipeline: EnginePipeline, adapters: dict[str, Adapter]
    ):
        self.sock = sock
        self.frames = reader
        self.pipeline = pipeline
        self.adapters = adapters
        self.sent: dict[str, Decision] = {}
        self.finished = threading.Event()
        self.wake = threading.Event()
        self.touched: deque[str] = deque()
        """Principals whose decision an operator changed (console, API, the store's sync)."""
        self._published: tuple[int, ...] = ()
        self._resynced = 0.0
        self._beat = 0.0

    # -- proxy -> engine ------------------------------------------------------------------
    def read(self) -> None:
        """Queue every exchange the proxy sends until it closes its end; then drain."""
        try:
            while data := self._recv():
                for body in self.frames.feed(data):
                    message = TO_ENGINE.decode(body)
                    if isinstance(message, Batch):
                        self._queue(message)
        except (ChannelError, msgspec.DecodeError) as exc:
            log.error("engine process: bad frame from the proxy (%s); stopping", exc)
        finally:
            self.pipeline.stop(timeout=300)
            self.finished.set()
            self.wake.set()

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(1 << 20)
        except OSError:
            return b""

    def _queue(self, batch: Batch) -> None:
        for wire in batch.exchanges:
            try:
                exchange: Work = from_wire(wire, self.adapters)
            except ChannelError as exc:
                # through the worker, the only writer of the counters: the proxy waits for
                # this exchange's acknowledgement like any other's
                exchange = _Unreadable(wire.id, exc)
            self.pipeline.put(exchange)

    # -- engine -> proxy ------------------------------------------------------------------
    def full_update(self) -> Update:
        """The engine's whole decision table and the pipeline's actor map."""
        decisions = self.pipeline.engine.decisions()
        self.sent = {d.principal: d for d in decisions}
        return Update(
            handled=self.pipeline.stats.handled,
            stats=self._stats(),
            decisions=decisions,
            actors=list(self.pipeline.actors.actor_of.items()),
            actor_decisions=list(self.pipeline.actors.actor_decisions.values()),
            full=True,
        )

    def follow_operators(self, engine: Engine) -> None:
        """Operator decisions change the engine directly, not through the worker: wrap its
        two operator entry points so each change is published at once, not at the resync."""
        set_decision, clear_decision = engine.set_decision, engine.clear_decision

        def set_and_publish(decision: Decision) -> None:
            set_decision(decision)
            self.touched.append(decision.principal)
            self.wake.set()

        def clear_and_publish(principal: str) -> None:
            clear_decision(principal)
            self.touched.append(principal)
            self.wake.set()

        engine.set_decision = set_and_publish  # type: ignore[method-assign]
        engine.clear_decision = clear_and_publish  # type: ignore[method-assign]

    def publish(self) -> None:
        """Send the news since the last update until the reader has finished."""
        pause = IDLE
        while True:
            self.wake.wait(pause)
            self.wake.clear()
            if self.finished.is_set():
                break
            if not self.pipeline.alive:
                log.critical("engine worker thread died; ending the engine process so the proxy restarts it")
                self.sock.close()
                os._exit(70)
            pause = BUSY if self._send(self.update()) else IDLE
        self._send(self.update(resync=True))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def update(self, *, resync: bool = False) -> Update | None:
        """What changed: decisions of principals the worker touched, actor placements, and
        (every ``RESYNC`` seconds) any difference from the engine's table. None if nothing."""
        pipeline = self.pipeline
        handled = pipeline.stats.handled  # read before the changes: theirs are all queued by now
        changes = pipeline.changes
        touched: set[str] = set()
        while self.touched:
            touched.add(self.touched.popleft())
        actors: list[tuple[str, str]] = []
        actor_decisions: list[Decision] = []
        while changes:
            change = changes.popleft()
            if isinstance(change, tuple):
                actors.append(change)
            else:
                touched.add(change.principal)
                if change.actor is not None:
                    actor_decisions.append(change)
        decisions: list[Decision] = []
        cleared: list[str] = []
        engine = pipeline.engine
        for principal in touched:
            self._note(principal, engine.decision_for(principal), decisions, cleared)
        now = time.monotonic()
        if resync or now - self._resynced >= RESYNC:
            self._resynced = now
            current = {d.principal: d for d in engine.decisions()}
            for principal, decision in current.items():
                if self.sent.get(principal) is not decision:
                    self._note(principal, decision, decisions, cleared)
            for principal in [p for p in self.sent if p not in current]:
                self._note(principal, ALLOW_ALL, decisions, cleared)
        stats = self._stats()
        published = (handled, *stats)
        news = bool(decisions or cleared or actors or actor_decisions) or published != self._published
        if not news and not resync and now - self._beat < HEARTBEAT:
            return None
        self._published = published
        self._beat = now
        return Update(
            handled=handled,
            stats=stats,
            decisions=decisions,
            cleared=cleared,
            actors=actors,
            actor_decisions=actor_decisions,
        )

    def _note(self, principal: str, decision: Decision, decisions: list[Decision], cleared: list[str]) -> None:
        if decision is ALLOW_ALL:
            if self.sent.pop(principal, None) is not None:
                cleared.append(principal)
        elif self.sent.get(principal) is not decision:
            self.sent[principal] = decision
            decisions.append(decision)

    def _stats(self) -> tuple[int, int, int, int, int]:
        s = self.pipeline.stats
        return (s.interactions, s.errors, s.findings, s.decisions, s.unknown_model)

    def _send(self, update: Update | None) -> bool:
        if update is None:
            return False
        try:
            self.sock.sendall(frame(update))
        except OSError:
            return False  # the proxy is gone; the reader sees it too and drains
        return True


class _Unreadable:
    """An exchange the engine process could not rebuild: the worker counts it as an error."""

    __slots__ = ("error", "id")

    def __init__(self, exchange_id: str, error: ChannelError) -> None:
        self.id = exchange_id
        self.error = error

    def interactions(self) -> list[Interaction]:
        raise self.error


class _UdsServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _hello(sock: socket.socket, reader: FrameReader) -> Hello:
    while data := sock.recv(1 << 20):
        for body in reader.feed(data):
            message = TO_ENGINE.decode(body)
            if isinstance(message, Hello):
                return message
            raise ChannelError(f"expected the proxy's hello, got {type(message).__name__}")
    raise ChannelError("the proxy closed the channel before saying hello")


async def _serve(control: ControlPlane, link: EngineLink, admin_uds: str | None) -> None:
    server: _UdsServer | None = None
    task: asyncio.Task[None] | None = None
    if admin_uds is not None:
        server = _UdsServer(uvicorn.Config(control.admin, uds=admin_uds, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                raise QueryWardenError(f"the engine's admin app did not start on {admin_uds}")
            await asyncio.sleep(0.01)
    link.sock.sendall(frame(link.full_update()) + frame(Ready(pid=os.getpid())))
    threading.Thread(target=link.read, name="querywarden-channel-in", daemon=True).start()
    publisher = threading.Thread(target=link.publish, name="querywarden-channel-out", daemon=True)
    publisher.start()
    await asyncio.get_running_loop().run_in_executor(None, publisher.join)
    if server is not None and task is not None:
        server.should_exit = True
        await task


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[engine]: %(message)s")
    sock = socket.socket(fileno=int(argv[0]))
    sock.setblocking(True)
    reader = FrameReader()
    hello = _hello(sock, reader)
    try:
        settings = GatewaySettings.from_dict(hello.settings)
        control = build_control(settings, hello.config_path, hello.store_url, GatewayMetrics())
    except QueryWardenError as exc:
        sock.sendall(frame(Failed(exc.located())))
        return 2
    engine = control.engine
    engine.load_decisions(d for d in hello.decisions if engine.decision_for(d.principal) is ALLOW_ALL)
    control.pipeline.changes = deque()
    control.pipeline.start()
    link = EngineLink(sock, reader, control.pipeline, adapters_by_name(Router(settings.generic_paths)))
    link.follow_operators(engine)
    try:
        asyncio.run(_serve(control, link, hello.admin_uds))
    finally:
        control.save_state()
        control.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
