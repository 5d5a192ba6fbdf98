"""The engine in its own process, seen from the proxy: a mirror of decisions and a channel.

``ProcessPipeline`` is what the gateway uses in process mode instead of the worker-thread
``EnginePipeline``. The proxy's event loop does everything here, without locks or threads:

- ``decision_for`` reads the local ``DecisionMirror`` (one dict lookup);
- ``submit`` appends the exchange to a batch and returns; the batch is written to the
  engine process 5 ms later (or at once past ``BATCH_MAX`` exchanges), as one msgpack
  frame on a non-blocking socket, so the per-request cost is an append and a share of
  one write;
- the engine's ``Update`` frames arrive on the same socket and feed the mirror, and say
  how many exchanges it has finished. What is sent and not yet finished, plus the batch,
  is the queue: at ``queue_size`` exchanges, or ``BUFFER_MAX`` bytes the engine process
  has not read yet, ``submit`` refuses (``on_overflow`` applies), so a stopped or slow
  engine process costs the proxy bounded memory and nothing on the request path.

The engine process sends an update at least every ``channel.HEARTBEAT`` seconds. When no
frame arrived for ``engine_stall_timeout`` seconds, or exchanges are waiting and none was
finished for that long, the engine is *stalled*: ``alive`` is False (``/healthz`` and
``querywarden_engine_up`` say so, ``on_engine_failure`` applies) while exchanges still
queue up to the bounds, to be processed if it resumes. Stalled for ``engine_hang_timeout``
seconds, the engine process is killed and restarted as if it had died.

When the engine process dies the socket reads end-of-file: the engine is down at once
(``alive`` is False, so ``on_engine_failure`` applies and ``/healthz`` says so), what it had
not finished is counted as dropped, the mirror keeps every decision it had, and a new
engine process is started after ``restart_delay`` (doubling up to 30 s while it fails). The
new process loads decisions from the store, adds those of the mirror it lacks (taken after
the store's last write) and sends its whole table.

``stop`` sends what is left, closes the proxy's end and waits: the engine process then
processes everything queued, saves its snapshot and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from querywarden.core.records import Decision
from querywarden.errors import QueryWardenError
from querywarden.gateway.channel import (
    TO_PROXY,
    Batch,
    ChannelError,
    Failed,
    FrameReader,
    Hello,
    Ready,
    Update,
    frame,
    to_wire,
)
from querywarden.gateway.exchange import Exchange
from querywarden.gateway.mirror import DecisionMirror
from querywarden.gateway.pipeline import PipelineStats, Work
from querywarden.gateway.settings import GatewaySettings

log = logging.getLogger("querywarden.gateway")

FLUSH_DELAY = 0.005
"""Seconds an exchange may wait for others to share its write to the engine process. Each
write wakes the engine process, and on a busy machine a woken process can take the CPU
from the writer inside its ``send``: fewer, larger writes keep the proxy on the CPU."""
BATCH_MAX = 256
"""Exchanges that trigger a write at once."""
BUFFER_MAX = 64 << 20
"""Bytes of encoded exchanges the proxy holds for an engine process that does not read them
(stopped, or slower than the traffic); past it ``submit`` refuses as when the queue is full."""
WATCH = 0.25
"""Seconds between the proxy's checks for a stalled or hung engine process."""
_RECV = 1 << 20


@dataclasses.dataclass
class _Launched:
    sock: socket.socket
    proc: subprocess.Popen[bytes]
    reader: FrameReader
    updates: list[Update]


class ProcessPipeline:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        config_path: str | None = None,
        store_url: str | None = None,
        admin: bool = True,
        restart_delay: float = 0.5,
        start_timeout: float = 120.0,
    ) -> None:
        self.capacity = max(1, settings.queue_size)
        self.max_buffered_bytes = BUFFER_MAX
        self.stall_timeout = settings.engine_stall_timeout
        self.hang_timeout = settings.engine_hang_timeout
        self.restart_delay = restart_delay
        self.start_timeout = start_timeout
        self.mirror = DecisionMirror()
        self.stats = PipelineStats()
        self.restarts = 0
        self.hangs = 0
        """Engine processes killed (and restarted) because they stopped answering."""
        self._dir = tempfile.mkdtemp(prefix="querywarden-") if admin else None
        self.admin_uds = str(Path(self._dir) / "admin.sock") if self._dir else None
        """The Unix socket the engine process serves its admin app (API, console) on."""
        self._hello = Hello(
            settings=_plain(dataclasses.asdict(settings)),
            config_path=config_path,
            store_url=store_url,
            admin_uds=self.admin_uds,
        )
        self._launched: _Launched | None = None
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader = FrameReader()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Exchange] = []
        self._out: deque[memoryview] = deque()
        """Frames (the head possibly part-sent) the engine process's socket has not taken yet."""
        self._out_bytes = 0
        self._flush_armed = False
        self._heard = 0.0
        """When the last frame from the engine process arrived (monotonic)."""
        self._progressed = 0.0
        """When the engine last finished an exchange, or was given work while it had none."""
        self._stalled_since: float | None = None
        self._watch: asyncio.Task[None] | None = None
        self._sent = 0
        self._handled = 0
        self._engine_stats = (0, 0, 0, 0, 0, 0)
        self._ended_stats = (0, 0, 0, 0, 0, 0)
        self._up = False
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None

    # -- the request path (event loop) ----------------------------------------------------
    def decision_for(self, principal: str) -> Decision:
        return self.mirror.decision_for(principal)

    def actor_of(self, principal: str) -> str | None:
        return self.mirror.actor_of.get(principal)

    def submit(self, work: Work) -> bool:
        """Batch an exchange for the engine process without blocking. False (and counted)
        when the engine is down or the queue is full (in exchanges or bytes)."""
        if not self._up or not self.has_room():
            self.stats.dropped += 1
            return False
        if not isinstance(work, Exchange):
            raise TypeError(f"the engine process takes gateway exchanges, not {type(work).__name__}")
        self._pending.append(work)
        if len(self._pending) >= BATCH_MAX:
            self._flush()
        elif not self._flush_armed and self._loop is not None:
            self._flush_armed = True
            self._loop.call_later(FLUSH_DELAY, self._flush)
        return True

    def has_room(self) -> bool:
        return (
            self._sent - self._handled + len(self._pending) < self.capacity
            and self._out_bytes < self.max_buffered_bytes
        )

    @property
    def depth(self) -> int:
        return self._sent - self._handled + len(self._pending)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of exchanges written to the channel that the engine process has not read."""
        return self._out_bytes

    @property
    def alive(self) -> bool:
        """The engine process runs and answers (a stalled one counts as not running)."""
        return self._up and not self.stalled

    @property
    def up(self) -> bool:
        """The engine process runs (it may be stalled)."""
        return self._up

    @property
    def stalled(self) -> bool:
        """Running, but silent (no frame) or stuck (work waiting, none finished) for
        ``stall_timeout`` seconds."""
        return self._up and self._silence(time.monotonic()) >= self.stall_timeout

    @property
    def ack_age(self) -> float:
        """Seconds since the engine process was last heard from (0 while it is down)."""
        return time.monotonic() - self._heard if self._up else 0.0

    def _silence(self, now: float) -> float:
        quiet = now - self._heard
        if self._sent > self._handled:
            quiet = max(quiet, now - self._progressed)
        return quiet

    # -- lifecycle -------------------------------------------------------------------------
    def launch(self) -> None:
        """Start the engine process and wait until it is ready (before serving: a config or
        store error surfaces here, as a ``QueryWardenError``)."""
        if self._launched is None and self._sock is None:
            self._launched = self._spawn()

    def start(self) -> None:
        """Attach to the running event loop (the gateway's lifespan start-up)."""
        if self._up:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self.launch()
        launched, self._launched = self._launched, None
        if launched is not None:
            self._attach(launched)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until the engine process has finished everything submitted so far (call it
        from another thread than the event loop's; on the loop it only sends the batch)."""
        loop = self._loop
        if loop is None or not self._up:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._flush()
            return
        future = asyncio.run_coroutine_threadsafe(self._drained(), loop)
        with contextlib.suppress(TimeoutError):
            future.result(timeout)

    async def _drained(self) -> None:
        self._flush()
        target, sock = self._sent, self._sock
        while self._sock is sock and sock is not None and self._handled < target:
            await asyncio.sleep(0.002)

    def stop(self, timeout: float = 60.0) -> None:
        """Send what is left, close the channel and wait for the engine process to drain,
        save its state and exit."""
        if self.stalled:
            timeout = min(timeout, 5.0)  # a stopped or hung engine process would only run the clock out
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        launched, self._launched = self._launched, None
        if launched is not None:
            self._attach_sync(launched)
        sock, proc = self._sock, self._proc
        if sock is not None:
            self._detach()
            try:
                sock.setblocking(True)
                sock.settimeout(timeout)
                data = b"".join(self._out)
                if self._pending:
                    data += frame(Batch([to_wire(e) for e in self._pending]))
                    self._sent += len(self._pending)
                self._pending.clear()
                self._out.clear()
                self._out_bytes = 0
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while chunk := sock.recv(_RECV):  # the engine's last updates, then its end-of-file
                    self._take(chunk)
            except OSError as exc:
                log.error("engine process channel failed while stopping: %s", exc)
            finally:
                sock.close()
                self._sock = None
                self._up = False
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("engine process %d did not stop within %.0f s; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- the engine process ----------------------------------------------------------------
    def _spawn(self, hello: Hello | None = None) -> _Launched:
        """Start an engine process and read its frames until it says it is ready."""
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "querywarden.gateway.engine_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        reader = FrameReader()
        updates: list[Update] = []
        deadline = time.monotonic() + self.start_timeout
        try:
            ours.settimeout(self.start_timeout)
            ours.sendall(frame(hello or self._hello))
            while True:
                ours.settimeout(max(0.01, deadline - time.monotonic()))
                data = ours.recv(_RECV)
                if not data:
                    code = proc.wait(10)
                    raise QueryWardenError(f"the engine process exited with code {code} before it was ready")
                for body in reader.feed(data):
                    message = TO_PROXY.decode(body)
                    if isinstance(message, Failed):
                        proc.wait(10)
                        raise QueryWardenError(message.message)
                    if isinstance(message, Update):
                        updates.append(message)
                    elif isinstance(message, Ready):
                        ours.setblocking(False)
                        return _Launched(ours, proc, reader, updates)
        except TimeoutError:
            _end(proc)
            ours.close()
            raise QueryWardenError(f"the engine process was not ready within {self.start_timeout:.0f} s") from None
        except BaseException:
            _end(proc)
            ours.close()
            raise

    def _attach_sync(self, launched: _Launched) -> None:
        self._sock, self._proc, self._reader = launched.sock, launched.proc, launched.reader
        self._sent = self._handled = 0
        self._heard = self._progressed = time.monotonic()
        self._stalled_since = None
        for update in launched.updates:
            self._apply(update)
        self._up = True

    def _attach(self, launched: _Launched) -> None:
        self._attach_sync(launched)
        assert self._loop is not None and self._sock is not None
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        if self._watch is None:
            self._watch = self._loop.create_task(self._watched())

    def _detach(self) -> None:
        if self._sock is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())

    def _flush(self) -> None:
        self._flush_armed = False
        sock = self._sock
        if not self._pending or sock is None:
            return
        data = frame(Batch([to_wire(e) for e in self._pending]))
        if self._sent == self._handled:
            self._progressed = time.monotonic()  # idle until now: the wait for progress starts here
        self._sent += len(self._pending)
        self._pending.clear()
        if self._out:
            self._out.append(memoryview(data))
            self._out_bytes += len(data)
            return
        try:
            n = sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._lost()
            return
        if n < len(data):
            self._out.append(memoryview(data)[n:])
            self._out_bytes += len(data) - n
            assert self._loop is not None
            self._loop.add_writer(sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        """Send what the socket takes, without copying what is left (a stopped engine
        process can leave up to ``BUFFER_MAX`` bytes here)."""
        sock, out = self._sock, self._out
        if sock is None:
            return
        try:
            n = sock.sendmsg(list(itertools.islice(out, 64)))
        except BlockingIOError:
            return
        except OSError:
            self._lost()
            return
        self._out_bytes -= n
        while n and n >= len(out[0]):
            n -= len(out.popleft())
        if n:
            out[0] = out[0][n:]
        if not out and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        try:
            self._take(data)
        except (ChannelError, msgspec.DecodeError) as exc:
            log.error("engine process sent a bad frame (%s); ending it so a new one starts", exc)
            self._lost()

    def _take(self, data: bytes) -> None:
        self._heard = time.monotonic()
        for body in self._reader.feed(data):
            message = TO_PROXY.decode(body)
            if isinstance(message, Update):
                self._apply(message)

    def _apply(self, update: Update) -> None:
        mirror = self.mirror
        if update.full:
            mirror.replace_decisions(update.decisions)
        elif update.decisions:
            mirror.set_decisions(update.decisions)
        if update.cleared:
            mirror.clear(update.cleared)
        for principal, actor in update.actors:
            mirror.join(principal, actor)
        for decision in update.actor_decisions:
            mirror.decide_actor(decision)
        if update.handled != self._handled:
            self._handled = update.handled
            self._progressed = time.monotonic()
        self._engine_stats = (update.handled, *update.stats)
        self._count()

    def _count(self) -> None:
        s = self.stats
        total = [a + b for a, b in zip(self._ended_stats, self._engine_stats, strict=True)]
        s.handled, s.interactions, s.errors, s.findings, s.decisions, s.unknown_model = total

    def _lost(self) -> None:
        """The engine process's end of the channel closed: it died (or is stopping)."""
        sock, proc = self._sock, self._proc
        if sock is None:
            return
        self._detach()
        sock.close()
        self._sock = None
        self._up = False
        lost = self._sent - self._handled + len(self._pending)
        self.stats.dropped += lost
        self._pending.clear()
        self._out.clear()
        self._out_bytes = 0
        self._stalled_since = None
        self._ended_stats = tuple(a + b for a, b in zip(self._ended_stats, self._engine_stats, strict=True))  # type: ignore[assignment]
        self._engine_stats = (0, 0, 0, 0, 0, 0)
        self._sent = self._handled = 0
        code = _end(proc) if proc is not None else None
        self._proc = None
        if self._stopping or self._loop is None:
            return
        log.error(
            "engine process exited (code %s); %d exchanges it had not finished are counted as dropped; "
            "decisions stay enforced; restarting it",
            code,
            lost,
        )
        self._restart = self._loop.create_task(self._restarted())

    async def _watched(self) -> None:
        """Report an engine process that stalls and recovers; kill one stalled for
        ``hang_timeout`` seconds, so it is restarted as if it had died."""
        while not self._stopping:
            await asyncio.sleep(WATCH)
            if not self._up:
                continue
            now = time.monotonic()
            silence = self._silence(now)
            if silence < self.stall_timeout:
                if self._stalled_since is not None:
                    log.warning("engine process answers again after %.1f s", now - self._stalled_since)
                    self._stalled_since = None
                continue
            if self._stalled_since is None:
                self._stalled_since = now - silence
                log.error(
                    "engine process stalled: nothing from it for %.1f s, %d exchanges waiting (%d bytes unread); "
                    "on_engine_failure applies; it is restarted if it stays so for %.0f s",
                    silence,
                    self.depth,
                    self._out_bytes,
                    self.hang_timeout,
                )
            if silence >= self.hang_timeout and self._proc is not None:
                log.critical("engine process %d hung for %.0f s; killing it to restart it", self._proc.pid, silence)
                self._lost()
                self.hangs += 1

    async def _restarted(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.restart_delay
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                hello = msgspec.structs.replace(self._hello, decisions=list(self.mirror.decisions.values()))
                launched = await loop.run_in_executor(None, self._spawn, hello)
            except QueryWardenError as exc:
                log.error("engine process did not restart (%s); retrying in %.1f s", exc, min(delay * 2, 30.0))
                delay = min(delay * 2, 30.0)
                continue
            if self._stopping:
                launched.sock.close()
                _end(launched.proc)
                return
            self._attach(launched)
            self.restarts += 1
            log.warning("engine process restarted (pid %d)", launched.proc.pid)
            self._restart = None
            return


def _end(proc: subprocess.Popen[bytes]) -> int | None:
    """Reap a process whose channel closed, killing it if it is still running."""
    code = proc.poll()
    if code is None:
        proc.kill()
        code = proc.wait()
    return code


def _plain(value: Any) -> Any:
    """Settings as msgpack-ready plain data (tuples become lists, mappings dicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
