"""Token buckets for throttled principals (or actors).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request
takes one token or is refused with the seconds until the next token (the Retry-After).
Time is passed in (the caller's monotonic clock), so tests freeze it. Buckets live in an
LRU map with a hard cap, so a flood of throttled principals cannot grow memory; an evicted
bucket comes back full, which only ever favours the caller.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from querywarden.core.policy import DEFAULT_THROTTLE
from querywarden.errors import PolicyError


@dataclass(frozen=True, slots=True)
class ThrottleSpec:
    rate: float
    """Tokens (requests) per second."""
    burst: float
    """Bucket size: requests allowed back to back."""

    @classmethod
    def parse(cls, params: Mapping[str, Any], *, source: str | None = None) -> ThrottleSpec:
        merged = {**DEFAULT_THROTTLE, **params}
        unknown = sorted(set(merged) - {"rate", "burst"})
        if unknown:
            raise PolicyError(f"throttle: unknown parameter(s) {unknown}; allowed: rate, burst", source=source)
        rate, burst = merged["rate"], merged["burst"]
        for name, v in (("rate", rate), ("burst", burst)):
            if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
                raise PolicyError(f"throttle: {name} must be a positive number, got {v!r}", source=source)
        return cls(rate=float(rate), burst=max(1.0, float(burst)))


class TokenBuckets:
    """Buckets keyed by principal or actor; thread-safe so the SDK can share one."""

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise PolicyError("throttle: max_keys must be at least 1")
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, spec: ThrottleSpec, now: float) -> float:
        """Take one token. Returns 0.0 when allowed, else the seconds until a token is free."""
        with self._lock:
            tokens, last = self._buckets.pop(key, (spec.burst, now))
            tokens = min(spec.burst, tokens + max(0.0, now - last) * spec.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / spec.rate
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)
