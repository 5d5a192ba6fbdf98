"""The ``[[exports]]`` tables of the config file, turned into a ready ``Dispatcher``.

    [[exports]]
    kind = "cef"                 # CEF over syslog
    host = "siem.example.net"
    port = 6514
    transport = "tcp"
    min_severity = "medium"

    [[exports]]
    kind = "webhook"
    url = "https://hooks.example.net/querywarden"
    secret_env = "QW_WEBHOOK_SECRET"

Keys are declared once in ``querywarden.config.SETTINGS`` (section ``exports``); each kind
accepts only the keys that mean something to it, and every mistake is a ``ConfigError``
at ``file:line`` naming the allowed keys or values. Secrets can be read from the
environment (``secret_env``, ``token_env``) so the config file can be shared.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from querywarden.config import SETTINGS
from querywarden.config_text import locate
from querywarden.core.records import Severity
from querywarden.errors import ConfigError
from querywarden.exports.base import Exporter
from querywarden.exports.dispatcher import Dispatcher, Route
from querywarden.exports.ocsf_http import OcsfFileExporter, OcsfHttpExporter
from querywarden.exports.splunk import SplunkHecExporter
from querywarden.exports.syslog import SyslogExporter
from querywarden.exports.webhook import WebhookExporter

DECLARED = {s.name: s for s in SETTINGS if s.section == "exports"}
COMMON = ("kind", "name", "min_severity", "queue_size", "batch_size", "max_retries", "timeout")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "cef": ("host", "port", "transport", "facility", "app_name", "ca_file"),
    "webhook": ("url", "secret", "secret_env"),
    "splunk": ("url", "token", "token_env", "index", "sourcetype", "verify_tls"),
    "ocsf": ("url", "path", "token", "token_env"),
}


class _Table:
    """One ``[[exports]]`` table with the file text at hand, for located errors."""

    def __init__(self, path: Path, text: str, index: int, table: Mapping[str, Any]) -> None:
        self.path, self.text, self.index, self.t = path, text, index, table

    def error(self, key: str | None, reason: str) -> ConfigError:
        where: tuple[str | int, ...] = ("exports", self.index) + ((key,) if key else ())
        dotted = f"exports[{self.index}]" + (f".{key}" if key else "")
        return ConfigError(f"{dotted}: {reason}", source=str(self.path), line=locate(self.text, where))

    def get(self, key: str) -> Any:
        return self.t.get(key, DECLARED[key].default)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.get(key)
        if value is None:
            if required:
                raise self.error(None, f"a {self.t.get('kind')} export needs {key}")
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, not {value!r}")
        return value

    def number(self, key: str, *, integer: bool = False, low: float = 0.0, high: float = math.inf) -> float:
        value = self.get(key)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or not low <= value <= high or not math.isfinite(value):
            kind = "an integer" if integer else "a number"
            bounds = f" from {low:g}" + (f" to {high:g}" if high != math.inf else "")
            raise self.error(key, f"must be {kind}{bounds}, not {value!r}")
        return float(value)

    def choice(self, key: str) -> str:
        value = self.get(key)
        allowed = DECLARED[key].allowed
        if value not in allowed:
            raise self.error(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return str(value)

    def secret(self, key: str, env_key: str, env: Mapping[str, str], *, required: bool) -> str | None:
        direct, env_name = self.string(key), self.string(env_key)
        if direct is not None and env_name is not None:
            raise self.error(env_key, f"give {key} or {env_key}, not both")
        if env_name is not None:
            value = env.get(env_name)
            if not value:
                raise self.error(env_key, f"environment variable {env_name} is not set")
            return value
        if direct is None and required:
            raise self.error(None, f"a {self.t['kind']} export needs {key} or {env_key}")
        return direct


def routes_from(path: Path, text: str, raw: Any, env: Mapping[str, str] | None = None) -> list[Route]:
    """Routes for the parsed ``exports`` value of a config file."""
    env = os.environ if env is None else env
    if not isinstance(raw, list):
        raise ConfigError("exports: must be [[exports]] tables", source=str(path), line=locate(text, ("exports",)))
    routes = []
    names: set[str] = set()
    for i, table in enumerate(raw):
        t = _Table(path, text, i, table if isinstance(table, dict) else {})
        if not isinstance(table, dict):
            raise t.error(None, "must be a table")
        if "kind" not in table:
            raise t.error(None, f"needs kind; allowed: {', '.join(KIND_KEYS)}")
        kind = t.choice("kind")
        allowed = (*COMMON, *KIND_KEYS[kind])
        for key in table:
            if key not in allowed:
                raise t.error(key, f"unknown key for a {kind} export; allowed: {', '.join(allowed)}")
        name = t.string("name") or kind
        if name in names:
            raise t.error("name", f"another export is already named {name!r}; give each a distinct name")
        names.add(name)
        exporter = _build(t, kind, name, env)
        routes.append(
            Route(
                exporter=exporter,
                min_severity=Severity.parse(t.choice("min_severity")),
                queue_size=int(t.number("queue_size", integer=True, low=1)),
                batch_size=int(t.number("batch_size", integer=True, low=1)),
                max_retries=int(t.number("max_retries", integer=True, low=0, high=100)),
            )
        )
    return routes


def _build(t: _Table, kind: str, name: str, env: Mapping[str, str]) -> Exporter:
    timeout = t.number("timeout", low=0.001)
    if kind == "cef":
        transport = t.choice("transport")
        ca_file = t.string("ca_file")
        if ca_file is not None and transport != "tls":
            raise t.error("ca_file", 'applies to transport = "tls" only')
        if ca_file is not None and not (t.path.parent / ca_file).is_file():
            raise t.error("ca_file", f"{t.path.parent / ca_file} is not a file")
        return SyslogExporter(
            str(t.string("host", required=True)),
            int(t.number("port", integer=True, low=1, high=65535)) if "port" in t.t else None,
            transport=transport,
            ca_file=str(t.path.parent / ca_file) if ca_file else None,
            facility=int(t.number("facility", integer=True, low=0, high=23)),
            app_name=t.string("app_name") or "querywarden",
            timeout=timeout,
            name=name,
        )
    if kind == "webhook":
        url = _url(t)
        secret = t.secret("secret", "secret_env", env, required=True)
        return WebhookExporter(url, str(secret).encode(), timeout=timeout, name=name)
    if kind == "splunk":
        verify = t.get("verify_tls")
        if not isinstance(verify, bool):
            raise t.error("verify_tls", "must be true or false")
        return SplunkHecExporter(
            _url(t),
            str(t.secret("token", "token_env", env, required=True)),
            index=t.string("index"),
            sourcetype=t.string("sourcetype") or "querywarden:finding",
            verify_tls=verify,
            timeout=timeout,
            name=name,
        )
    has_url, has_path = "url" in t.t, "path" in t.t
    if has_url == has_path:
        raise t.error(None, "an ocsf export needs either url (HTTP) or path (JSON lines), not both")
    if has_path:
        return OcsfFileExporter(t.path.parent / str(t.string("path")), name=name)
    return OcsfHttpExporter(
        _url(t), token=t.secret("token", "token_env", env, required=False), timeout=timeout, name=name
    )


def _url(t: _Table) -> str:
    url = str(t.string("url", required=True))
    if not url.startswith(("http://", "https://")):
        raise t.error("url", f"must be an http:// or https:// URL, not {url!r}")
    return url


def load_dispatcher(path: str | Path | None, env: Mapping[str, str] | None = None) -> Dispatcher:
    """A dispatcher for the config's ``[[exports]]`` (empty, and falsy, when there are none)."""
    if path is None:
        return Dispatcher([])
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        raw = tomllib.loads(text).get("exports")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", source=str(p)) from None
    if raw is None:
        return Dispatcher([])
    return Dispatcher(routes_from(p, text, raw, env))


__all__ = ["KIND_KEYS", "load_dispatcher", "routes_from"]
