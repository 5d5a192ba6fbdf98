"""Loaded feeds, their indicators and the matches seen: what the console, API and edges read.

``[[intel.feeds]]`` tables in the config name the feeds:

    [[intel.feeds]]
    kind = "stix"                    # a STIX 2.1 bundle file
    path = "intel/partners.json"
    severity = "medium"

    [[intel.feeds]]
    kind = "taxii"                   # a TAXII 2.1 collection
    url = "https://taxii.example.net/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/"
    token_env = "TAXII_TOKEN"

    [[intel.feeds]]
    kind = "ip"                      # or "key": a plain list, one per line
    path = "intel/scrapers.txt"

Loading is I/O and happens here, at the edge, once per config: ``querywarden.config``
hands the resulting ``IntelMatcher`` to the ``intel`` detector as its ``feed`` parameter,
and ``load_registry`` gives the console the very same registry (cached per config file and
its modification time). Edges that run the engine call ``observe(step.signals)`` so the
registry can list recent matches; the list is bounded.

Read API (for the console and REST API): ``feeds()``, ``indicators()``, ``matches()``,
``matches_for(principal)``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from querywarden.config import SETTINGS
from querywarden.config_text import locate
from querywarden.core.engine import DetectorSpec
from querywarden.core.records import Severity, Signal
from querywarden.errors import ConfigError, IntelError
from querywarden.intel.indicators import Indicator, Match, indicator_from_dict
from querywarden.intel.lists import read_list
from querywarden.intel.matcher import IntelMatcher

if TYPE_CHECKING:
    from querywarden.intel.stix import StixImport

log = logging.getLogger("querywarden.intel")

DECLARED = {s.name: s for s in SETTINGS if s.section == "intel.feeds"}
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "stix": ("path",),
    "ip": ("path",),
    "key": ("path",),
    "taxii": ("url", "token_env", "user", "password_env", "timeout"),
}
COMMON = ("name", "kind", "severity")
MAX_MATCHES = 10_000


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """One loaded feed, as the console lists it."""

    name: str
    kind: str
    source: str
    indicators: int
    loaded_ts: float
    skipped: tuple[str, ...] = ()
    """Indicators not imported, each ``<id>: <reason>``."""


class IntelRegistry:
    """The loaded feeds of one config, and the matches seen in this process (bounded).

    Thread-safe: the engine worker records matches, the console reads, a refresher reloads.
    """

    def __init__(
        self,
        feeds: Sequence[tuple[FeedInfo, Sequence[Indicator]]],
        *,
        max_matches: int = MAX_MATCHES,
        refresh: float = 0.0,
        loader: Callable[[], list[tuple[FeedInfo, list[Indicator]]]] | None = None,
    ) -> None:
        self._feeds = [info for info, _ in feeds]
        self._indicators = [i for _, inds in feeds for i in inds]
        self.matcher = IntelMatcher(self._indicators)
        self.inline: list[Indicator] = []
        """Indicators written in ``[detectors.intel] feed``, merged into the detector's feed."""
        self.refresh = refresh
        """Seconds between reloads of the feeds while serving; 0 loads them once."""
        self._loader = loader
        self._matches: deque[Match] = deque(maxlen=max_matches)
        self._lock = threading.Lock()

    def detector_feed(self) -> IntelMatcher:
        """What the ``intel`` detector reads: every feed's indicators plus the inline ones."""
        with self._lock:
            indicators, matcher = self._indicators, self.matcher
        return IntelMatcher([*indicators, *self.inline]) if self.inline else matcher

    def reload(self) -> IntelMatcher:
        """Read every feed again and return the detector's new feed.

        On any failure (``ConfigError`` naming the feed, e.g. a TAXII server that is down)
        the loaded feeds stay as they were, so an outage never empties the intel.
        """
        if self._loader is None:
            return self.detector_feed()
        feeds = self._loader()
        indicators = [i for _, inds in feeds for i in inds]
        matcher = IntelMatcher(indicators)
        with self._lock:
            self._feeds = [info for info, _ in feeds]
            self._indicators = indicators
            self.matcher = matcher
        return self.detector_feed()

    def feeds(self) -> list[FeedInfo]:
        with self._lock:
            return list(self._feeds)

    def indicators(self) -> list[Indicator]:
        with self._lock:
            return list(self._indicators)

    def observe(self, signals: Iterable[Signal]) -> int:
        """Record the ``intel`` detector's signals among ``signals``; returns how many."""
        found = [
            Match(
                ts=s.ts,
                principal=s.principal,
                model=s.model,
                interaction_id=s.interaction_id,
                indicator=str(s.evidence.get("indicator", "")),
                feed=str(s.evidence.get("feed", "")),
                on=str(s.evidence.get("on", "")),
                value=str(s.evidence.get("value", "")),
                severity=s.severity,
                name=str(s.evidence.get("name", "")),
            )
            for s in signals
            if s.detector == "intel"
        ]
        if found:
            with self._lock:
                self._matches.extend(found)
        return len(found)

    def matches(self, limit: int | None = None) -> list[Match]:
        """Recent matches, newest first."""
        with self._lock:
            items = list(self._matches)
        items.reverse()
        return items[:limit] if limit is not None else items

    def matches_for(self, principal: str) -> list[Match]:
        return [m for m in self.matches() if m.principal == principal]


# -- loading -------------------------------------------------------------------------------
class _Feed:
    """One ``[[intel.feeds]]`` table with the file text at hand, for located errors."""

    def __init__(self, path: Path, text: str, index: int, table: Mapping[str, Any]) -> None:
        self.path, self.text, self.index, self.t = path, text, index, table

    def error(self, key: str | None, reason: str) -> ConfigError:
        where: tuple[str | int, ...] = ("intel", "feeds", self.index) + ((key,) if key else ())
        dotted = f"intel.feeds[{self.index}]" + (f".{key}" if key else "")
        return ConfigError(f"{dotted}: {reason}", source=str(self.path), line=locate(self.text, where))

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.t.get(key, DECLARED[key].default)
        if value is None:
            if required:
                raise self.error(None, f"{self.t.get('kind')} feeds need {key}")
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, not {value!r}")
        return value

    def choice(self, key: str) -> str:
        value = self.t.get(key, DECLARED[key].default)
        allowed = DECLARED[key].allowed
        if value not in allowed:
            raise self.error(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return str(value)

    def env(self, key: str, env: Mapping[str, str]) -> str | None:
        name = self.string(key)
        if name is None:
            return None
        value = env.get(name)
        if not value:
            raise self.error(key, f"environment variable {name} is not set")
        return value


def _load_feed(f: _Feed, env: Mapping[str, str]) -> tuple[FeedInfo, list[Indicator]]:
    if not isinstance(f.t, dict):
        raise f.error(None, "must be a table")
    if "kind" not in f.t:
        raise f.error(None, f"needs kind; allowed: {', '.join(KIND_KEYS)}")
    kind = f.choice("kind")
    allowed = (*COMMON, *KIND_KEYS[kind])
    for key in f.t:
        if key not in allowed:
            raise f.error(key, f"unknown key for {kind} feeds; allowed: {', '.join(allowed)}")
    severity = Severity.parse(f.choice("severity"))
    if kind in ("stix", "taxii"):
        try:  # STIX needs the intel extra (and TAXII httpx); plain lists need neither
            from querywarden.intel.stix import import_objects, read_bundle
            from querywarden.intel.taxii import fetch_objects
        except ImportError as exc:
            raise f.error(
                "kind", f"{kind} feeds need the intel extra (pip install 'querywarden[intel]'): {exc}"
            ) from None
    if kind == "taxii":
        url = str(f.string("url", required=True))
        if not url.startswith(("http://", "https://")):
            raise f.error("url", f"must be an http:// or https:// URL, not {url!r}")
        timeout = f.t.get("timeout", DECLARED["timeout"].default)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise f.error("timeout", f"must be a positive number of seconds, not {timeout!r}")
        user, password = f.string("user"), f.env("password_env", env)
        if (user is None) != (password is None):
            raise f.error("user" if user is None else "password_env", "basic auth needs both user and password_env")
        name = f.string("name") or url.rstrip("/").rsplit("/", 1)[-1]
        try:
            objects = fetch_objects(
                url,
                token=f.env("token_env", env),
                auth=(user, password) if user and password else None,
                timeout=float(timeout),
            )
        except IntelError as exc:
            raise f.error("url", exc.located()) from None
        result = import_objects(objects, feed=name, severity=severity)
        return _info(name, kind, url, result), result.indicators
    file = f.path.parent / str(f.string("path", required=True))
    name = f.string("name") or file.name
    try:
        if kind == "stix":
            result = read_bundle(file, feed=name, severity=severity)
            return _info(name, kind, str(file), result), result.indicators
        indicators = read_list(file, kind=kind, feed=name, severity=severity)
    except IntelError as exc:
        raise f.error("path", exc.located()) from None
    return FeedInfo(name, kind, str(file), len(indicators), time.time()), indicators


def _info(name: str, kind: str, source: str, result: StixImport) -> FeedInfo:
    for reason in result.skipped:
        log.warning("intel feed %s: skipped %s", name, reason)
    return FeedInfo(name, kind, source, len(result.indicators), time.time(), tuple(result.skipped))


def registry_from(path: Path, text: str, table: Any, env: Mapping[str, str] | None = None) -> IntelRegistry:
    """A registry for the parsed ``intel`` table of the config at ``path``."""
    env = os.environ if env is None else env
    if not isinstance(table, dict):
        raise ConfigError("intel: must be a table", source=str(path), line=locate(text, ("intel",)))
    for key in table:
        if key not in ("feeds", "refresh"):
            raise ConfigError(
                f"intel.{key}: unknown key; allowed: feeds, refresh",
                source=str(path),
                line=locate(text, ("intel", key)),
            )
    refresh = table.get("refresh", 0)
    if isinstance(refresh, bool) or not isinstance(refresh, int | float) or not 0 <= refresh < math.inf:
        raise ConfigError(
            f"intel.refresh: must be seconds >= 0, not {refresh!r}",
            source=str(path),
            line=locate(text, ("intel", "refresh")),
        )
    raw = table.get("feeds", [])
    if not isinstance(raw, list):
        raise ConfigError(
            "intel.feeds: must be [[intel.feeds]] tables", source=str(path), line=locate(text, ("intel",))
        )

    def load_all() -> list[tuple[FeedInfo, list[Indicator]]]:
        feeds = [_load_feed(_Feed(path, text, i, t), env) for i, t in enumerate(raw)]
        names = [info.name for info, _ in feeds]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _Feed(path, text, i, raw[i]).error("name", f"another feed is already named {name!r}")
        return feeds

    return IntelRegistry(load_all(), refresh=float(refresh), loader=load_all)


_CACHE: dict[tuple[str, int], IntelRegistry] = {}
_CACHE_LOCK = threading.Lock()


def _cached(path: Path, build: Any) -> IntelRegistry:
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = build()
        return found


def attach_feeds(specs: Sequence[DetectorSpec], path: Path, text: str, table: Any) -> list[DetectorSpec]:
    """Hand the config's feeds to the ``intel`` detector (merged with any inline ``feed`` it has)."""
    registry = _cached(path, lambda: registry_from(path, text, table))
    out = []
    for spec in specs:
        if spec.name == "intel":
            inline = spec.params.get("feed") or []
            registry.inline = [indicator_from_dict(r, feed="inline", ref=f"inline[{i}]") for i, r in enumerate(inline)]
            spec = replace(spec, params={**spec.params, "feed": registry.detector_feed()})
        out.append(spec)
    return out


def load_registry(config_path: str | Path | None) -> IntelRegistry | None:
    """The registry of the config's ``[[intel.feeds]]``; None when it names none."""
    if config_path is None:
        return None
    p = Path(config_path)
    try:
        text = p.read_text(encoding="utf-8")
        table = tomllib.loads(text).get("intel")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", source=str(p)) from None
    if not table:
        return None
    return _cached(p, lambda: registry_from(p, text, table))


__all__ = ["FeedInfo", "IntelRegistry", "attach_feeds", "load_registry", "registry_from"]
