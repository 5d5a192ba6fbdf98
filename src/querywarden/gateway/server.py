"""Running the gateway: build it from config, serve the traffic and admin ports, persist state.

``build_server`` wires the pieces: the engine from the config (or every registered
detector on profiles drafted live), the store (decisions loaded on start, every step
written behind), the engine snapshot (restored on start and saved on shutdown, so learned
baselines and counters survive a restart too), the gateway and the admin app with every
advertised mount. ``run`` serves both ports from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from querywarden.config_text import locate
from querywarden.core.engine import Engine
from querywarden.errors import ConfigError, QueryWardenError
from querywarden.exports.edge import attach_exports
from querywarden.gateway.admin import AdminContext, create_admin_app, discover_mounts
from querywarden.gateway.admin_front import create_front_app
from querywarden.gateway.app import Gateway
from querywarden.gateway.engine_health import ProcessCollector
from querywarden.gateway.metrics import GatewayMetrics
from querywarden.gateway.pipeline import EnginePipeline
from querywarden.gateway.remote import ProcessPipeline
from querywarden.gateway.settings import GatewaySettings
from querywarden.text.protected import ProtectedText

log = logging.getLogger("querywarden.gateway")
SNAPSHOT = "gateway-engine"


def load_gateway_settings(path: str | Path | None, **overrides: Any) -> GatewaySettings:
    """The ``[gateway]`` table of a config file (absent means the defaults), then overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            table = tomllib.loads(text).get("gateway", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config: {exc}", source=str(p)) from None
        if not isinstance(table, dict):
            raise ConfigError("gateway: must be a table", source=str(p), line=locate(text, ("gateway",)))
        try:
            GatewaySettings.from_dict(table, source=str(p))
        except ConfigError as exc:
            key = exc.reason.split(":", 1)[0].removeprefix("gateway.")
            raise ConfigError(exc.reason, source=str(p), line=locate(text, ("gateway", key))) from None
        data.update(table)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return GatewaySettings.from_dict(data, source=str(path) if path else None)


@dataclass
class ControlPlane:
    """The engine and everything that reads it: store, snapshot, exports and the admin app.

    ``querywarden serve`` builds it inside the proxy's process (``engine_mode = "thread"``)
    or inside the engine process (``"process"``, see ``engine_process``).
    """

    engine: Engine
    pipeline: EnginePipeline
    admin: Starlette
    store: Any = None
    dispatcher: Any = None

    def save_state(self) -> None:
        """Persist the engine's learned state (the store already has every decision)."""
        if self.store is not None:
            self.store.save_snapshot(SNAPSHOT, self.engine.snapshot(), time.time())

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.store is not None:
            self.store.close()


def build_control(
    settings: GatewaySettings,
    config_path: str | Path | None,
    store_url: str | None,
    metrics: GatewayMetrics,
) -> ControlPlane:
    """The engine (snapshot restored, decisions loaded), its pipeline, exports and admin app."""
    engine, url, retention = _engine(config_path)
    store = None
    url = store_url or url
    if url is not None:
        from querywarden.store import open_store

        store = open_store(url, retention=retention)
        blob = store.load_snapshot(SNAPSHOT)
        if blob is not None:
            try:
                engine.restore(blob)
            except QueryWardenError as exc:
                log.warning("engine snapshot not restored (%s); starting with fresh state", exc)
    pipeline = EnginePipeline.from_settings(engine, settings, store=store)
    dispatcher = attach_exports(pipeline, metrics.registry, config_path)
    context = AdminContext(
        engine=engine,
        pipeline=pipeline,
        metrics=metrics,
        settings=settings,
        store=store,
        config_path=Path(config_path) if config_path is not None else None,
        exports=dispatcher,
    )
    admin = create_admin_app(context, discover_mounts(context))
    return ControlPlane(engine=engine, pipeline=pipeline, admin=admin, store=store, dispatcher=dispatcher)


@dataclass
class Server:
    """Thread mode: the proxy, the engine's worker thread and the admin app in one process."""

    gateway: Gateway
    admin: Starlette
    engine: Engine
    pipeline: EnginePipeline
    store: Any = None
    dispatcher: Any = None
    control: ControlPlane | None = None

    def save_state(self) -> None:
        if self.control is not None:
            self.control.save_state()

    def close(self) -> None:
        if self.control is not None:
            self.control.close()


def build_server(
    settings: GatewaySettings, config_path: str | Path | None = None, store_url: str | None = None
) -> Server:
    """Everything ``querywarden serve`` runs in thread mode, ready to be served."""
    metrics = GatewayMetrics()
    control = build_control(settings, config_path, store_url, metrics)
    gateway = Gateway(settings, control.pipeline, metrics=metrics, protected=_protected(config_path))
    metrics.watch(control.pipeline)
    return Server(
        gateway=gateway,
        admin=control.admin,
        engine=control.engine,
        pipeline=control.pipeline,
        store=control.store,
        dispatcher=control.dispatcher,
        control=control,
    )


@dataclass
class ProcessServer:
    """Process mode: this process proxies; the engine and the admin app's mounts live in a
    child process, reached through ``pipeline`` (decisions, exchanges) and the admin front."""

    gateway: Gateway
    admin: ASGIApp
    pipeline: ProcessPipeline

    def save_state(self) -> None:
        """Nothing here: the engine process saves its own state when its channel closes."""

    def close(self) -> None:
        self.pipeline.stop()


def build_process_server(
    settings: GatewaySettings,
    config_path: str | Path | None = None,
    store_url: str | None = None,
    *,
    admin: bool = True,
) -> ProcessServer:
    """The proxy of process mode, with its engine process started and ready (or an error)."""
    if config_path is not None:
        from querywarden.config import load_config

        load_config(config_path)  # a config mistake stops ``serve`` here, located, as in thread mode
    pipeline = ProcessPipeline(
        settings, config_path=str(config_path) if config_path is not None else None, store_url=store_url, admin=admin
    )
    pipeline.launch()
    metrics = GatewayMetrics()
    gateway = Gateway(settings, pipeline, metrics=metrics, protected=_protected(config_path))
    metrics.watch(pipeline)
    metrics.registry.register(ProcessCollector(pipeline))
    return ProcessServer(gateway=gateway, admin=create_front_app(pipeline, metrics), pipeline=pipeline)


def _protected(config_path: str | Path | None) -> dict[str, ProtectedText]:
    """The models' protected passages, which the proxy redacts from hardened answers."""
    if config_path is None:
        return {}
    from querywarden.config import load_protected

    return load_protected(config_path)


def _engine(config_path: str | Path | None) -> tuple[Engine, str | None, str]:
    if config_path is None:
        from querywarden.defaults import default_detectors

        return Engine({}, detectors=default_detectors()), None, "sketch"
    from querywarden.config import load_config

    cfg = load_config(config_path)
    return cfg.engine(), cfg.store_url, cfg.retention


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` stops both ports on one signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(server: Server | ProcessServer, host: str, port: int, admin_host: str, admin_port: int | None) -> None:
    """Serve traffic (and the admin app) until SIGINT/SIGTERM; then drain the engine and save state."""
    # In thread mode the engine worker shares the GIL with the event loop. By default a busy
    # thread keeps it for 5 ms before the loop gets it back, straight into the tail latency;
    # 1 ms bounds that wait at a small cost in thread switches.
    sys.setswitchinterval(0.001)
    servers = [
        _Server(uvicorn.Config(server.gateway, host=host, port=port, log_level="info", access_log=False, lifespan="on"))
    ]
    if admin_port is not None:
        servers.append(
            _Server(uvicorn.Config(server.admin, host=admin_host, port=admin_port, log_level="warning", lifespan="on"))
        )

    def stop() -> None:
        for s in servers:
            s.force_exit = s.should_exit  # a second signal stops without waiting for open connections
            s.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        server.save_state()
        server.close()


def run(server: Server | ProcessServer, host: str, port: int, admin_host: str, admin_port: int | None) -> None:
    """Serve on uvloop when it is installed (the ``gateway`` extra pins it), as uvicorn itself would."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(server, host, port, admin_host, admin_port))
