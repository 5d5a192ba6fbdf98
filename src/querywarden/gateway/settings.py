"""Gateway settings: one typed record, declared once, with a name, default and help per key.

Settings are data. ``GatewaySettings.from_dict`` turns the ``gateway:`` section of a config
file (or a plain mapping) into the record and names the file, key and allowed keys on a
mistake, so a typo fails at start-up instead of silently weakening the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from querywarden.errors import ConfigError

FailureMode = Literal["open", "closed"]
PrincipalSource = Literal["api_key", "bearer", "auth_header", "ip"]
_SOURCES = ("api_key", "bearer", "auth_header", "ip")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway and the SDK guard can be told. ``HELP`` documents each key."""

    upstream: str = "http://127.0.0.1:9000"
    connect_timeout: float = 2.0
    read_timeout: float = 30.0
    max_connections: int = 256
    max_body_bytes: int = 1_048_576
    queue_size: int = 10_000
    on_overflow: FailureMode = "open"
    on_engine_failure: FailureMode = "open"
    principal_sources: tuple[PrincipalSource, ...] = ("api_key", "bearer", "ip")
    api_key_header: str = "x-api-key"
    hash_api_keys: bool = True
    auth_header: str = "x-authenticated-principal"
    principal_salt: str = "querywarden"
    on_missing_principal: Literal["refuse", "ip"] = "ip"
    default_model: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    generic_paths: tuple[str, ...] = ("/predict", "/invocations")
    throttle_scope: Literal["principal", "actor"] = "actor"
    max_throttled: int = 100_000
    llm_top_logprobs: int = 0
    traffic_out: str | None = None
    seed: int | None = None
    engine_mode: Literal["process", "thread"] = "process"
    engine_stall_timeout: float = 5.0
    engine_hang_timeout: float = 60.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> GatewaySettings:
        """Build settings from a mapping; unknown keys and wrong types are located errors."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                allowed = ", ".join(sorted(known))
                raise ConfigError(f"gateway.{key}: unknown setting; allowed: {allowed}", source=source)
            values[key] = _coerce(key, value, source)
        return replace(cls(), **values)


def _coerce(key: str, value: Any, source: str | None) -> Any:
    """Check one value against the setting's type; lists become tuples so settings stay frozen."""
    default = getattr(GatewaySettings(), key)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"gateway.{key}: expected {expected}, got {value!r}", source=source)

    if key in ("on_overflow", "on_engine_failure"):
        if value not in ("open", "closed"):
            raise bad("'open' or 'closed'")
        return value
    if key == "on_missing_principal":
        if value not in ("refuse", "ip"):
            raise bad("'refuse' or 'ip'")
        return value
    if key == "engine_mode":
        if value not in ("process", "thread"):
            raise bad("'process' or 'thread'")
        return value
    if key == "throttle_scope":
        if value not in ("principal", "actor"):
            raise bad("'principal' or 'actor'")
        return value
    if key == "principal_sources":
        if not isinstance(value, list | tuple) or not value or any(v not in _SOURCES for v in value):
            raise bad(f"a non-empty list of {', '.join(_SOURCES)}")
        return tuple(value)
    if key == "generic_paths":
        if not isinstance(value, list | tuple) or any(not isinstance(v, str) or not v.startswith("/") for v in value):
            raise bad("a list of paths starting with '/'")
        return tuple(value)
    if key == "models":
        if not isinstance(value, Mapping) or any(not isinstance(v, str) for v in value.values()):
            raise bad("a mapping of upstream model name to profile id")
        return dict(value)
    if key in ("default_model", "traffic_out"):
        if value is not None and not isinstance(value, str):
            raise bad("a string")
        return value
    if key == "seed":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad("an integer")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad("a non-negative integer")
        return value
    if isinstance(default, float):
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise bad("a positive number")
        return float(value)
    if not isinstance(value, str):
        raise bad("a string")
    return value


HELP: dict[str, str] = {
    "upstream": "Base URL of the model server the gateway forwards to.",
    "connect_timeout": "Seconds to wait for a connection to the upstream before answering 504 (refused: 502).",
    "read_timeout": "Seconds to wait for the upstream's response before answering 504.",
    "max_connections": "Size of the keep-alive connection pool to the upstream.",
    "max_body_bytes": "Largest request body accepted; larger bodies get 413.",
    "queue_size": "Interactions waiting for the engine; bounds the gateway's memory.",
    "on_overflow": "When the engine queue is full: 'open' passes the request and counts it, 'closed' answers 503.",
    "on_engine_failure": "When the engine is not running (its process restarting, or its thread dead): "
    "'open' keeps serving, 'closed' answers 503.",
    "principal_sources": "Where the principal comes from, tried in order: api_key, bearer, auth_header, ip.",
    "api_key_header": "Header carrying the API key.",
    "hash_api_keys": "Store a keyed hash of the API key instead of the key itself (the key is a secret).",
    "auth_header": "Header set by a trusted auth proxy in front of the gateway; list 'auth_header' to use it.",
    "principal_salt": "Key for hashing bearer tokens and API keys into principals; keep it stable across restarts.",
    "on_missing_principal": "No source matched: 'refuse' answers 401, 'ip' uses the client IP.",
    "default_model": "Model profile for requests whose route and body name no model.",
    "models": "Map of upstream model names to profile ids, when they differ.",
    "generic_paths": "Paths served by the generic JSON predict adapter.",
    "throttle_scope": "Token bucket per 'principal' or per 'actor' (all principals of a Sybil share one bucket).",
    "max_throttled": "Most token buckets kept at once; the least recently used is evicted.",
    "llm_top_logprobs": "Cap on top_logprobs for hardened LLM principals (0 strips logprobs).",
    "traffic_out": "Path of a JSON Lines file the gateway appends every interaction to.",
    "seed": "Seed for the noise of hardened outputs; unset draws a fresh seed.",
    "engine_mode": "Where `serve` runs the engine: 'process' (its own process, off the proxy's GIL) or 'thread'.",
    "engine_stall_timeout": "Process mode: seconds the engine process may stay silent, or finish nothing while "
    "exchanges wait, before it counts as stalled (/healthz 503, on_engine_failure applies).",
    "engine_hang_timeout": "Process mode: seconds an engine process may stay stalled before the proxy kills it "
    "and starts another.",
}
