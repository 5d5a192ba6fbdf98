"""Prometheus metrics of the gateway and its engine worker, aggregates only.

No metric carries a principal, actor or finding label: label sets would grow with the
attacker's key count and leak identities to whoever scrapes ``/metrics``. Per-principal
detail lives in the store and the console.

Request counters are updated on the request path (prometheus-client children are cached,
so an increment is a lock and an add). Engine-side numbers are read from the pipeline's
plain counters at scrape time, costing the worker nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from querywarden.gateway.pipeline import Pipeline

OUTCOMES = (
    "forwarded",
    "hardened",
    "not_hardened",
    "shadowed",
    "blocked",
    "throttled",
    "bad_request",
    "too_large",
    "no_principal",
    "overloaded",
    "upstream_error",
    "upstream_timeout",
)
ROUTES = ("predict", "tf_v1", "kserve_v2", "openai_chat", "openai_completions", "passthrough")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "querywarden_gateway_requests",
            "Requests by route (protocol adapter) and outcome.",
            ("route", "outcome"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "querywarden_gateway_request_duration_seconds",
            "Time from request start to the last byte sent, by route.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shadowed = Counter(
            "querywarden_gateway_shadow_actions",
            "Decisions in shadow mode that would have acted, by action.",
            ("action",),
            registry=self.registry,
        )
        self._children = {(r, o): self.requests.labels(r, o) for r in ROUTES for o in OUTCOMES}
        self._timers = {r: self.duration.labels(r) for r in ROUTES}

    def observe(self, route: str, outcome: str, seconds: float) -> None:
        child = self._children.get((route, outcome))
        if child is None:
            child = self._children[(route, outcome)] = self.requests.labels(route, outcome)
        child.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.duration.labels(route)
        timer.observe(seconds)

    def watch(self, pipeline: Pipeline) -> None:
        """Expose the engine pipeline's counters and queue depth."""
        self.registry.register(_PipelineCollector(pipeline))


class _PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        p, s = self.pipeline, self.pipeline.stats
        yield GaugeMetricFamily("querywarden_engine_queue_depth", "Interactions waiting for the engine.", value=p.depth)
        yield GaugeMetricFamily("querywarden_engine_up", "1 while the engine worker runs.", value=int(p.alive))
        for name, doc, value in (
            ("querywarden_engine_interactions", "Interactions the engine processed.", s.interactions),
            ("querywarden_engine_queue_dropped", "Exchanges not queued because the queue was full.", s.dropped),
            ("querywarden_engine_errors", "Exchanges the engine failed on (logged with the interaction id).", s.errors),
            ("querywarden_findings", "Finding events (open, updated, closed) raised.", s.findings),
            ("querywarden_decisions", "Decisions the engine took or changed.", s.decisions),
        ):
            yield CounterMetricFamily(name, doc, value=value)
