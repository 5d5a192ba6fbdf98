"""The config file: one TOML file for models, detectors, the response policy, risk and store.

Every setting is declared once, in ``SETTINGS`` (name, default, help); the loader checks
keys against it, errors list the allowed keys from it, and docs/config.md lists it (a test
holds the two together). Detector parameters are the one open set: each detector declares
its own through its constructor (``Detector.param_names()``).

Errors are ``ConfigError`` located at ``file:line`` with the key path. tomllib gives no
positions, so ``querywarden.config_text`` finds the line by scanning the file text.

    cfg = load_config("querywarden.toml")
    engine = cfg.engine()
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from querywarden.config_text import KeyPath, locate, write_detector_params
from querywarden.core import registry
from querywarden.core.atlas import TECHNIQUES
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.policy import DEFAULT_POLICY, Policy, Rule
from querywarden.core.profile import ModelProfile, row_digests
from querywarden.core.records import Action, InputKind, Severity
from querywarden.core.risk import RiskEngine
from querywarden.defaults import default_detectors
from querywarden.errors import ConfigError, QueryWardenError
from querywarden.plugins import load_detectors
from querywarden.reference import load_reference
from querywarden.text.protected import ProtectedText

OUTPUT_KINDS = ("probabilities", "label", "scores", "text", "logprobs")
RETENTIONS = ("full", "sketch", "none")
SEVERITIES = tuple(s.label for s in Severity)


@dataclass(frozen=True, slots=True)
class Setting:
    """One config key. ``<id>`` and ``<name>`` stand for a model id and a detector name."""

    key: str
    default: Any
    help: str
    allowed: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return self.key.rsplit(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[1]


SETTINGS: tuple[Setting, ...] = (
    Setting("models.<id>.input_kind", "tabular", "What the model takes.", tuple(k.value for k in InputKind)),
    Setting("models.<id>.n_features", None, "Length of the flat feature vector (tabular, or an image flattened)."),
    Setting("models.<id>.shape", None, "Input shape of an image model, e.g. [28, 28]; features are row-major."),
    Setting("models.<id>.feature_names", None, "One name per feature, shown in evidence."),
    Setting("models.<id>.ranges", None, "One [low, high] pair per feature: the valid input domain."),
    Setting("models.<id>.classes", None, "Class names, in the order of the model's probability vector."),
    Setting("models.<id>.output_kind", "probabilities", "What the model returns.", OUTPUT_KINDS),
    Setting(
        "models.<id>.reference",
        None,
        "Benign inputs (.npy, .csv or traffic .jsonl/.jsonl.gz), relative to the config file.",
    ),
    Setting(
        "models.<id>.training_digests",
        None,
        "Training rows (.npy/.csv) or their uint64 digests (.npy from querywarden.core.profile.row_digests), "
        "relative to the config file; lets the membership detector count queries of exact training records.",
    ),
    Setting(
        "models.<id>.protected_text",
        None,
        "LLM: file(s) whose text answers must not echo (the system prompt, protected passages), relative to the "
        "config file; a .json file holds their digests (querywarden.text.protected). Only digests are kept.",
    ),
    Setting("detectors.<name>.enabled", True, "false turns the detector off."),
    Setting("detectors.<name>.models", [], "Model ids the detector watches; empty means every model."),
    Setting("policy.rules", None, "Ordered response rules, first match wins; absent means the default policy."),
    Setting(
        "policy.rules.min_severity", None, "Lowest finding severity the rule matches.", tuple(s.label for s in Severity)
    ),
    Setting("policy.rules.action", None, "Decision taken.", tuple(a.value for a in Action)),
    Setting("policy.rules.params", {}, "Action settings, e.g. {round = 1, top_k = 1} or {rate = 0.2, burst = 5}."),
    Setting("policy.rules.techniques", [], "ATLAS technique ids the rule is limited to; empty means any."),
    Setting(
        "policy.rules.principals",
        [],
        "Glob patterns; the rule matches a finding only if every principal it names matches one. Empty means any.",
    ),
    Setting("policy.rules.shadow", False, "true logs the decision without enforcing it."),
    Setting("risk.close_after", 86_400.0, "Seconds without a signal after which a finding closes."),
    Setting("risk.half_life", 3_600.0, "Half-life in seconds of a principal's risk score."),
    Setting(
        "risk.min_severity", "low", "Lowest signal severity that opens a finding.", tuple(s.label for s in Severity)
    ),
    Setting("risk.max_open", 100_000, "Cap on open findings; the oldest is closed beyond it."),
    Setting(
        "store.url", None, "SQLAlchemy URL of the store, e.g. sqlite:///querywarden.db or postgresql+psycopg://..."
    ),
    Setting("store.retention", "sketch", "How much of each interaction's input the store keeps.", RETENTIONS),
    Setting("exports.kind", None, "Where findings go.", ("cef", "webhook", "splunk", "ocsf")),
    Setting("exports.name", None, "Name in logs and metrics; defaults to the kind (names must differ)."),
    Setting("exports.min_severity", "info", "Lowest finding severity exported.", SEVERITIES),
    Setting("exports.queue_size", 1_000, "Finding events held for the exporter; beyond it they are dropped, counted."),
    Setting("exports.batch_size", 100, "Finding events per delivery at most."),
    Setting("exports.max_retries", 5, "Retries of a failed delivery, with exponential backoff, before it is dropped."),
    Setting("exports.timeout", 10.0, "Seconds to connect and deliver one batch."),
    Setting("exports.host", None, "cef: syslog receiver host."),
    Setting("exports.port", None, "cef: syslog receiver port; 514 for udp and tcp, 6514 for tls."),
    Setting("exports.transport", "udp", "cef: syslog transport (RFC 5426, 6587, 5425).", ("udp", "tcp", "tls")),
    Setting("exports.ca_file", None, "cef over tls: CA certificates to verify the receiver; default the system's."),
    Setting("exports.facility", 10, "cef: syslog facility number (10 is security/authorization)."),
    Setting("exports.app_name", "querywarden", "cef: syslog APP-NAME."),
    Setting("exports.url", None, "webhook, splunk, ocsf: the receiver's URL (splunk: the HEC base URL)."),
    Setting("exports.path", None, "ocsf: a JSON-lines file to append to instead of a URL."),
    Setting("exports.secret", None, "webhook: HMAC-SHA256 signing secret (prefer secret_env)."),
    Setting("exports.secret_env", None, "webhook: environment variable holding the signing secret."),
    Setting("exports.token", None, "splunk: HEC token; ocsf: bearer token (prefer token_env)."),
    Setting("exports.token_env", None, "splunk, ocsf: environment variable holding the token."),
    Setting("exports.index", None, "splunk: target index; absent means the token's default index."),
    Setting("exports.sourcetype", "querywarden:finding", "splunk: event sourcetype."),
    Setting("exports.verify_tls", True, "splunk: verify the HEC server's TLS certificate."),
    Setting("intel.refresh", 0.0, "Seconds between reloads of the feeds while serving; 0 loads them once."),
    Setting("intel.feeds.name", None, "Feed name shown in matches; defaults to the file or collection."),
    Setting("intel.feeds.kind", None, "What the feed is.", ("stix", "taxii", "ip", "key")),
    Setting("intel.feeds.path", None, "stix, ip, key: the file, relative to the config file."),
    Setting("intel.feeds.url", None, "taxii: the collection URL (<api root>/collections/<id>/)."),
    Setting("intel.feeds.token_env", None, "taxii: environment variable holding a bearer token."),
    Setting("intel.feeds.user", None, "taxii: user for HTTP basic auth."),
    Setting("intel.feeds.password_env", None, "taxii: environment variable holding the basic-auth password."),
    Setting("intel.feeds.severity", "low", "Severity of a match on this feed's indicators.", SEVERITIES),
    Setting("intel.feeds.timeout", 30.0, "taxii: seconds per request."),
)
_BY_SECTION: dict[str, dict[str, Setting]] = {}
for _s in SETTINGS:
    _BY_SECTION.setdefault(_s.section, {})[_s.name] = _s
_TOP = ("models", "detectors", "policy", "risk", "store", "gateway", "console", "exports", "intel")


def default(key: str) -> Any:
    section, name = key.rsplit(".", 1)
    return _BY_SECTION[section][name].default


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded config. ``path`` is None for the built-in defaults."""

    profiles: dict[str, ModelProfile]
    detector_specs: list[DetectorSpec]
    policy: Policy = DEFAULT_POLICY
    risk_kwargs: dict[str, Any] = field(default_factory=dict)
    store_url: str | None = None
    retention: str = "sketch"
    path: Path | None = None

    @classmethod
    def defaults(cls, profiles: Mapping[str, ModelProfile]) -> Config:
        """No config file: the given (e.g. inferred) profiles and every registered detector."""
        return cls(profiles=dict(profiles), detector_specs=default_detectors())

    def engine(self, **overrides: Any) -> Engine:
        return Engine(
            self.profiles,
            detectors=self.detector_specs,
            policy=self.policy,
            risk=RiskEngine(**self.risk_kwargs),
            **overrides,
        )


class _Loader:
    """Walks the parsed TOML with the file text at hand, so every error can be located."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def error(self, where: KeyPath, reason: str) -> ConfigError:
        dotted = ".".join(str(p) for p in where)
        return ConfigError(
            f"{dotted}: {reason}" if dotted else reason, source=str(self.path), line=locate(self.text, where)
        )

    def keys(self, table: Any, where: KeyPath, section: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.error(where, "must be a table")
        allowed = _BY_SECTION[section]
        for key in table:
            if key not in allowed:
                raise self.error((*where, key), f"unknown key; allowed: {', '.join(allowed)}")
        return table

    def choice(self, value: Any, where: KeyPath, section: str) -> str:
        allowed = _BY_SECTION[section][str(where[-1])].allowed
        if value not in allowed:
            raise self.error(where, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return str(value)

    def number(self, value: Any, where: KeyPath, *, positive: bool = True, integer: bool = False) -> float:
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or not math.isfinite(value) or (positive and value <= 0):
            kind = "integer" if integer else "number"
            raise self.error(where, f"must be a {'positive ' if positive else ''}{kind}, not {value!r}")
        return float(value)

    def strings(self, value: Any, where: KeyPath) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
            raise self.error(where, "must be a list of names")
        return tuple(str(v) for v in value)

    # -- sections -------------------------------------------------------------------------
    def load(self, data: dict[str, Any]) -> Config:
        for key in data:
            if key not in _TOP:
                raise self.error((key,), f"unknown section; allowed: {', '.join(_TOP)}")
        models = data.get("models")
        if not isinstance(models, dict) or not models:
            raise self.error(("models",), "a config needs at least one [models.<id>] table")
        profiles = {mid: self.model(mid, table) for mid, table in models.items()}
        store_url, retention = self.store(data.get("store", {}))
        specs = self.detectors(data.get("detectors"), profiles)
        if "gateway" in data:
            self.gateway(data["gateway"])
        if "intel" in data:  # feeds are loaded here, at the edge, and handed to the detector as data
            from querywarden.intel.registry import attach_feeds

            specs = attach_feeds(specs, self.path, self.text, data["intel"])
        return Config(
            profiles=profiles,
            detector_specs=specs,
            policy=self.policy(data["policy"]) if "policy" in data else DEFAULT_POLICY,
            risk_kwargs=self.risk(data.get("risk", {})),
            store_url=store_url,
            retention=retention,
            path=self.path,
        )

    def digests(self, raw: Any, where: KeyPath, dim: int | None) -> np.ndarray:
        """Sorted unique digests from a digest .npy, or computed here from training rows."""
        if not isinstance(raw, str):
            raise self.error(where, "must be a file path")
        path = self.path.parent / raw
        try:
            if path.suffix == ".npy":
                arr = np.load(path, allow_pickle=False)
                if arr.dtype == np.uint64 and arr.ndim == 1:
                    return np.unique(arr)
            return row_digests(load_reference(path, dim))
        except (OSError, ValueError) as exc:
            raise self.error(where, f"cannot read {path}: {exc}") from None
        except QueryWardenError as exc:
            raise self.error(where, exc.located()) from None

    def protected(self, raw: Any, where: KeyPath) -> ProtectedText:
        """Digests of the protected passages: each text file is one passage; a .json file holds digests."""
        paths = [raw] if isinstance(raw, str) else raw
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise self.error(where, "must be a file path or a list of file paths")
        passages: list[str] = []
        digests: list[ProtectedText] = []
        for name in paths:
            path = self.path.parent / name
            try:
                text = path.read_text(encoding="utf-8")
                if path.suffix == ".json":
                    digests.append(ProtectedText.from_json(text))
                else:
                    passages.append(text)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise self.error(where, f"cannot read {path}: {exc}") from None
        try:
            parts = [*digests, *([ProtectedText.from_passages(passages)] if passages else [])]
            return ProtectedText.merge(parts)
        except ValueError as exc:
            raise self.error(where, str(exc)) from None

    def gateway(self, table: Any) -> None:
        """Check the ``[gateway]`` table now, so a typo fails at load, located, not at ``serve``."""
        if not isinstance(table, dict):
            raise self.error(("gateway",), "must be a table")
        from querywarden.gateway.settings import GatewaySettings

        try:
            GatewaySettings.from_dict(table, source=str(self.path))
        except ConfigError as exc:
            key = exc.reason.split(":", 1)[0].removeprefix("gateway.")
            raise ConfigError(exc.reason, source=str(self.path), line=locate(self.text, ("gateway", key))) from None

    def model(self, mid: str, table: Any) -> ModelProfile:
        where: KeyPath = ("models", mid)
        t = self.keys(table, where, "models.<id>")
        kind = InputKind(self.choice(t.get("input_kind", "tabular"), (*where, "input_kind"), "models.<id>"))
        n_features = None
        if "n_features" in t:
            n_features = int(self.number(t["n_features"], (*where, "n_features"), integer=True))
        shape = None
        if "shape" in t:
            raw = t["shape"]
            if not isinstance(raw, list) or not raw:
                raise self.error((*where, "shape"), "must be a list of positive integers")
            shape = tuple(int(self.number(v, (*where, "shape"), integer=True)) for v in raw)
            if n_features is not None and math.prod(shape) != n_features:
                raise self.error((*where, "shape"), f"holds {math.prod(shape)} values but n_features is {n_features}")
        dim = n_features or (math.prod(shape) if shape else None)
        names = self.strings(t["feature_names"], (*where, "feature_names")) if "feature_names" in t else None
        if names is not None and dim is not None and len(names) != dim:
            raise self.error((*where, "feature_names"), f"has {len(names)} names for {dim} features")
        ranges = self.ranges(t["ranges"], (*where, "ranges"), dim) if "ranges" in t else None
        classes = self.strings(t["classes"], (*where, "classes")) if "classes" in t else None
        output_kind = self.choice(t.get("output_kind", "probabilities"), (*where, "output_kind"), "models.<id>")
        reference = None
        if "reference" in t:
            ref_where = (*where, "reference")
            if not isinstance(t["reference"], str):
                raise self.error(ref_where, "must be a file path")
            try:
                reference = load_reference(self.path.parent / t["reference"], dim)
            except QueryWardenError as exc:
                raise self.error(ref_where, exc.located()) from None
        digests = None
        if "training_digests" in t:
            digests = self.digests(t["training_digests"], (*where, "training_digests"), dim)
        protected = None
        if "protected_text" in t:
            protected = self.protected(t["protected_text"], (*where, "protected_text"))
        return ModelProfile(
            id=mid,
            training_digests=digests,
            protected=protected,
            input_kind=kind,
            n_features=n_features,
            shape=shape,
            feature_names=names,
            ranges=ranges,
            classes=classes,
            output_kind=output_kind,
            reference=reference,
        )

    def ranges(self, raw: Any, where: KeyPath, dim: int | None) -> tuple[tuple[float, float], ...]:
        if not isinstance(raw, list) or (dim is not None and len(raw) != dim):
            raise self.error(where, f"must be a list of {dim or 'n_features'} [low, high] pairs")
        out = []
        for pair in raw:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise self.error(where, f"{pair!r} is not a [low, high] pair")
            lo, hi = (self.number(v, where, positive=False) for v in pair)
            if lo > hi:
                raise self.error(where, f"low {lo} is above high {hi}")
            out.append((lo, hi))
        return tuple(out)

    def detectors(self, table: Any, profiles: Mapping[str, ModelProfile]) -> list[DetectorSpec]:
        if table is None:
            return default_detectors()
        if not isinstance(table, dict):
            raise self.error(("detectors",), "must hold [detectors.<name>] tables")
        available = load_detectors()
        for name in table:
            if name not in available:
                raise self.error(("detectors", name), f"unknown detector; registered: {', '.join(sorted(available))}")
        specs = []
        for name in sorted(available):
            t = table.get(name, {})
            where: KeyPath = ("detectors", name)
            if not isinstance(t, dict):
                raise self.error(where, "must be a table")
            cls = registry.get(name)
            allowed = [p for p in cls.param_names() if p != "profile"]
            params = {k: v for k, v in t.items() if k not in ("enabled", "models")}
            for key in params:
                if key not in allowed:
                    fixed = ", ".join(_BY_SECTION["detectors.<name>"])
                    raise self.error((*where, key), f"unknown parameter; allowed: {fixed}, {', '.join(allowed)}")
            enabled = t.get("enabled", True)
            if not isinstance(enabled, bool):
                raise self.error((*where, "enabled"), "must be true or false")
            models = self.strings(t.get("models", []), (*where, "models"))
            for m in models:
                if m not in profiles:
                    raise self.error((*where, "models"), f"unknown model {m!r}; configured: {', '.join(profiles)}")
            if not enabled:
                continue
            self.try_build(cls, params, profiles, where)
            specs.append(DetectorSpec(name, params, models))
        return specs

    def try_build(self, cls: Any, params: dict[str, Any], profiles: Mapping[str, ModelProfile], where: KeyPath) -> None:
        """Build the detector once so a bad parameter value fails here, located, not mid-run."""
        profile = next(iter(profiles.values()))
        try:
            cls(profile=profile, **params)
        except (TypeError, ValueError, QueryWardenError) as exc:
            key = next(iter(params), None)
            raise self.error((*where, key) if key else where, f"bad parameter value: {exc}") from None

    def policy(self, table: Any) -> Policy:
        t = self.keys(table, ("policy",), "policy")
        rules_raw = t.get("rules", [])
        if not isinstance(rules_raw, list):
            raise self.error(("policy", "rules"), "must be [[policy.rules]] tables")
        rules = []
        for i, raw in enumerate(rules_raw):
            where: KeyPath = ("policy", "rules", i)
            r = self.keys(raw, where, "policy.rules")
            for required in ("min_severity", "action"):
                if required not in r:
                    raise self.error(where, f"rule needs {required}")
            severity = Severity.parse(self.choice(r["min_severity"], (*where, "min_severity"), "policy.rules"))
            action = Action(self.choice(r["action"], (*where, "action"), "policy.rules"))
            params = r.get("params", {})
            if not isinstance(params, dict):
                raise self.error((*where, "params"), "must be a table")
            techniques = self.strings(r.get("techniques", []), (*where, "techniques"))
            for tid in techniques:
                if tid not in TECHNIQUES:
                    raise self.error(
                        (*where, "techniques"), f"unknown ATLAS id {tid!r}; known: {', '.join(TECHNIQUES)}"
                    )
            principals = self.strings(r.get("principals", []), (*where, "principals"))
            if any(not pattern for pattern in principals):
                raise self.error((*where, "principals"), "a pattern must not be empty")
            shadow = r.get("shadow", False)
            if not isinstance(shadow, bool):
                raise self.error((*where, "shadow"), "must be true or false")
            rules.append(
                Rule(
                    min_severity=severity,
                    action=action,
                    params=params,
                    techniques=techniques,
                    principals=principals,
                    shadow=shadow,
                )
            )
        return Policy(rules=tuple(rules))

    def risk(self, table: Any) -> dict[str, Any]:
        t = self.keys(table, ("risk",), "risk")
        out: dict[str, Any] = {}
        for key in ("close_after", "half_life"):
            if key in t:
                out[key] = self.number(t[key], ("risk", key))
        if "max_open" in t:
            out["max_open"] = int(self.number(t["max_open"], ("risk", "max_open"), integer=True))
        if "min_severity" in t:
            out["min_severity"] = Severity.parse(self.choice(t["min_severity"], ("risk", "min_severity"), "risk"))
        return out

    def store(self, table: Any) -> tuple[str | None, str]:
        t = self.keys(table, ("store",), "store")
        url = t.get("url")
        if url is not None and (not isinstance(url, str) or "://" not in url):
            raise self.error(("store", "url"), f"must be a database URL such as sqlite:///querywarden.db, not {url!r}")
        retention = self.choice(t.get("retention", default("store.retention")), ("store", "retention"), "store")
        return url, retention


def load_config(path: str | Path) -> Config:
    """Read and validate a config file. Raises ``ConfigError`` located at file:line."""
    p = Path(path)
    text, data = _read(p)
    return _Loader(p, text).load(data)


def _read(p: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its parsed TOML; ``ConfigError`` located at the bad line."""
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", source=str(p)) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\s*\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        reason = str(exc)[: m.start()] if m else str(exc)
        raise ConfigError(f"invalid TOML: {reason}", source=str(p), line=line) from None


def load_protected(path: str | Path) -> dict[str, ProtectedText]:
    """Per model id, the protected passages a config declares (``models.<id>.protected_text``).

    The gateway's proxy reads only these, to redact their echoes, wherever the engine runs.
    Raises ``ConfigError`` located at file:line, as ``load_config`` does.
    """
    p = Path(path)
    text, data = _read(p)
    loader = _Loader(p, text)
    models = data.get("models")
    out: dict[str, ProtectedText] = {}
    for mid, table in models.items() if isinstance(models, dict) else ():
        if isinstance(table, dict) and "protected_text" in table:
            out[mid] = loader.protected(table["protected_text"], ("models", mid, "protected_text"))
    return out


def load_profile(table: dict[str, Any], *, path: str | Path, model_id: str | None = None) -> ModelProfile:
    """One model profile from an already parsed TOML table in the ``[models.<id>]`` format.

    Used where a profile stands alone, e.g. a detector sample's ``[profile]`` table; an
    ``id`` key names the model there. Paths (``reference``) resolve against ``path``'s folder.
    """
    p = Path(path)
    mid = model_id or str(table.get("id", p.stem))
    body = {k: v for k, v in table.items() if k != "id"}
    return _Loader(p, p.read_text(encoding="utf-8") if p.is_file() else "").model(mid, body)


__all__ = [
    "SETTINGS",
    "Config",
    "Setting",
    "default",
    "load_config",
    "load_profile",
    "load_protected",
    "write_detector_params",
]
