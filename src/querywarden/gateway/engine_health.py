"""What the proxy of process mode says about its engine process: ``/healthz`` and metrics.

The engine process is ``up`` (running and answering), ``stalled`` (running, but silent or
finishing nothing while exchanges wait, for ``engine_stall_timeout`` seconds: stopped,
hung, or starved of CPU) or ``down`` (exited, being restarted). Only ``up`` is healthy:
``/healthz`` answers 503 otherwise and ``querywarden_engine_up`` is 0. The queue's fill, in
exchanges and in bytes the engine process has not read, says whether it keeps up.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import JSONResponse

from querywarden.gateway.remote import ProcessPipeline


def engine_state(pipeline: ProcessPipeline) -> str:
    if not pipeline.up:
        return "down"
    return "stalled" if pipeline.stalled else "up"


def process_health(pipeline: ProcessPipeline) -> JSONResponse:
    """``/healthz`` of process mode: the keys of thread mode's, and the channel's state."""
    state = engine_state(pipeline)
    body = {
        "status": "ok" if state == "up" else "degraded",
        "engine": state,
        "queue_depth": pipeline.depth,
        "queue_capacity": pipeline.capacity,
        "queue_full": not pipeline.has_room(),
        "queue_bytes": pipeline.buffered_bytes,
        "queue_dropped": pipeline.stats.dropped,
        "engine_errors": pipeline.stats.errors,
        "engine_silent_seconds": round(pipeline.ack_age, 3),
        "engine_restarts": pipeline.restarts,
    }
    return JSONResponse(body, status_code=200 if state == "up" else 503)


class ProcessCollector(Collector):
    """The families only process mode has (``GatewayMetrics.watch`` adds the common ones)."""

    def __init__(self, pipeline: ProcessPipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        p = self.pipeline
        for name, doc, value in (
            ("querywarden_engine_stalled", "1 while the engine process runs but does not answer.", int(p.stalled)),
            ("querywarden_engine_queue_capacity", "Exchanges the queue holds (queue_size).", p.capacity),
            (
                "querywarden_engine_queue_full",
                "1 while the queue refuses exchanges (on_overflow applies).",
                int(not p.has_room()),
            ),
            (
                "querywarden_engine_queue_bytes",
                "Bytes of exchanges the engine process has not read yet.",
                p.buffered_bytes,
            ),
            ("querywarden_engine_silent_seconds", "Seconds since the engine process was last heard from.", p.ack_age),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        yield CounterMetricFamily(
            "querywarden_engine_restarts", "Engine processes started after one ended.", value=p.restarts
        )
        yield CounterMetricFamily(
            "querywarden_engine_hangs",
            "Engine processes killed after staying stalled engine_hang_timeout seconds.",
            value=p.hangs,
        )
