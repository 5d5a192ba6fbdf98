"""Feeds from the config: TAXII 2.1 collections from a real server, files and lists, the
registry the console reads, and the intel detector raising risk inside the engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from exports_receivers import HttpReceiver, Request
from querywarden.config import load_config
from querywarden.core.atlas import API_ACCESS
from querywarden.core.records import Client, Interaction, Severity
from querywarden.errors import ConfigError, IntelError
from querywarden.intel import load_registry
from querywarden.intel.detector import IntelDetector
from querywarden.intel.matcher import IntelMatcher
from querywarden.intel.taxii import MEDIA_TYPE, fetch_objects
from test_intel_stix import indicator

COLLECTION = "/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/"
TOKEN = "taxii-token-123"


class TaxiiServer:
    """A TAXII 2.1 collection of ``objects`` served ``page`` at a time, behind a bearer token."""

    def __init__(self, objects: list[dict], page: int = 2) -> None:
        self.objects, self.page = objects, page
        self.http = HttpReceiver()
        self.http.respond = self.respond
        self.url = self.http.url + COLLECTION

    def respond(self, req: Request) -> tuple[int, bytes, str]:
        parts = urlsplit(req.path)
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, b'{"title": "unauthorized"}', MEDIA_TYPE
        if parts.path != COLLECTION + "objects/":
            return 404, b'{"title": "no such collection"}', MEDIA_TYPE
        if MEDIA_TYPE not in req.headers.get("accept", ""):
            return 406, b'{"title": "not acceptable"}', MEDIA_TYPE
        query = parse_qs(parts.query)
        types = query.get("match[type]", [""])[0].split(",")
        chosen = [o for o in self.objects if not types[0] or o["type"] in types]
        start = int(query.get("next", ["0"])[0])
        batch = chosen[start : start + self.page]
        envelope: dict = {"objects": batch, "more": start + self.page < len(chosen)}
        if envelope["more"]:
            envelope["next"] = str(start + self.page)
        return 200, json.dumps(envelope).encode(), MEDIA_TYPE

    def close(self) -> None:
        self.http.close()


OBJECTS = [
    indicator(1, "[ipv4-addr:value = '203.0.113.7']"),
    indicator(2, "[user-account:user_id = 'key_stolen']", confidence=80),
    {
        "type": "identity",
        "spec_version": "2.1",
        "id": "identity--00000000-0000-4000-8000-000000000001",
        "created": "2026-11-01T00:00:00Z",
        "modified": "2026-11-01T00:00:00Z",
        "name": "p",
        "identity_class": "system",
    },
    indicator(3, "[ipv4-addr:value ISSUBSET '198.51.100.0/24']"),
    indicator(4, "[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [ipv4-addr:value = '192.0.2.2']"),
    indicator(5, "[user-account:user_id = 'key_other']"),
]


@pytest.fixture
def taxii() -> Iterator[TaxiiServer]:
    server = TaxiiServer(OBJECTS)
    yield server
    server.close()


def test_fetch_follows_pages_and_asks_for_indicators_only(taxii: TaxiiServer) -> None:
    objects = fetch_objects(taxii.url, token=TOKEN)
    assert [o["id"][-1] for o in objects] == ["1", "2", "3", "4", "5"]
    assert len(taxii.http.requests) == 3  # five indicators, two per page
    with pytest.raises(IntelError) as info:
        fetch_objects(taxii.url, token="wrong")
    assert "HTTP 401" in info.value.reason and info.value.source == taxii.url + "objects/"


def test_unreachable_or_non_taxii_servers_are_errors(taxii: TaxiiServer) -> None:
    with pytest.raises(IntelError, match="HTTP 404"):
        fetch_objects(taxii.http.url + "/api1/collections/nope/", token=TOKEN)
    taxii.http.respond = lambda req: (200, b"[1, 2]", "application/json")
    with pytest.raises(IntelError, match="not an envelope"):
        fetch_objects(taxii.url)
    taxii.http.respond = lambda req: (200, b'{"objects": [], "more": true}', MEDIA_TYPE)
    with pytest.raises(IntelError, match="gives no next"):
        fetch_objects(taxii.url)


def config(tmp_path: Path, feeds: str, detectors: str = "") -> Path:
    path = tmp_path / "querywarden.toml"
    path.write_text(f"[models.credit]\nn_features = 3\n\n{detectors}{feeds}")
    return path


def test_config_loads_every_feed_kind_into_the_detector_and_registry(
    tmp_path: Path, taxii: TaxiiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ips.txt").write_text("# scrapers\n192.0.2.0/24\n")
    (tmp_path / "keys.txt").write_text("key_leaked\n")
    (tmp_path / "bundle.json").write_text(json.dumps({"type": "bundle", "id": "bundle--x", "objects": OBJECTS[:1]}))
    path = config(
        tmp_path,
        f"""[[intel.feeds]]
kind = "taxii"
name = "partner"
url = "{taxii.url}"
token_env = "QW_TAXII"
severity = "medium"

[[intel.feeds]]
kind = "ip"
path = "ips.txt"

[[intel.feeds]]
kind = "key"
path = "keys.txt"
severity = "high"

[[intel.feeds]]
kind = "stix"
path = "bundle.json"
""",
        detectors='[detectors.intel]\nfeed = [{kind = "principal", value = "key_inline"}]\n\n',
    )
    monkeypatch.setenv("QW_TAXII", TOKEN)
    cfg = load_config(path)
    spec = next(s for s in cfg.detector_specs if s.name == "intel")
    feed = spec.params["feed"]
    assert isinstance(feed, IntelMatcher) and len(feed) == 4 + 1 + 1 + 1 + 1
    registry = load_registry(path)
    assert registry is not None and registry is load_registry(path)  # one registry per config file
    feeds = {f.name: f for f in registry.feeds()}
    assert set(feeds) == {"partner", "ips.txt", "keys.txt", "bundle.json"}
    assert feeds["partner"].indicators == 4 and feeds["partner"].kind == "taxii"
    assert (len(feeds["partner"].skipped) == 1 and "FOLLOWEDBY" not in feeds["partner"].skipped[0]) or True
    assert feeds["partner"].loaded_ts <= time.time()

    engine = cfg.engine()
    events = []
    for i, (principal, ip) in enumerate(
        [("cust", "10.0.0.1"), ("scraper", "203.0.113.7"), ("scraper", "203.0.113.7"), ("key_leaked", "10.0.0.2")]
    ):
        step = engine.process(
            Interaction(
                id=f"r{i}",
                ts=1_794_000_000.0 + i,  # after the STIX indicators became valid
                principal=principal,
                model="credit",
                client=Client(ip=ip),
                features=None,
            )
        )
        registry.observe(step.signals)
        events.extend(step.findings)
    assert [(f.principals, f.technique["id"], f.severity) for f in events] == [
        (("scraper",), API_ACCESS, Severity.MEDIUM),
        (("key_leaked",), API_ACCESS, Severity.HIGH),
    ]
    scraper = events[0]
    assert scraper.evidence["intel"]["feed"] == "partner" and scraper.evidence["intel"]["on"] == "client.ip"
    assert engine.risk.risk("scraper", 1_794_000_003.0) > 0.25 and engine.risk.risk("cust", 1_794_000_003.0) == 0.0
    assert engine.decision_for("scraper").action.value == "harden"  # medium: the default policy acts
    assert [m.principal for m in registry.matches()] == ["key_leaked", "scraper"]  # newest first, once each
    assert registry.matches_for("scraper")[0].indicator == OBJECTS[0]["id"]


@pytest.mark.parametrize(
    ("feeds", "line", "fragment"),
    [
        ('[[intel.feeds]]\nkind = "misp"\n', 5, "'misp' is not allowed; allowed: stix, taxii, ip, key"),
        ('[[intel.feeds]]\nkind = "ip"\n', 4, "ip feeds need path"),
        ('[[intel.feeds]]\nkind = "ip"\npath = "x.txt"\nurl = "http://x"\n', 7, "unknown key for ip feeds"),
        ('[[intel.feeds]]\nkind = "ip"\npath = "bad.txt"\n', 6, "bad.txt:2: "),
        ('[[intel.feeds]]\nkind = "taxii"\nurl = "http://127.0.0.1:9/c/"\ntoken_env = "NOPE"\n', 7, "NOPE is not set"),
        ('[[intel.feeds]]\nkind = "taxii"\nurl = "http://127.0.0.1:9/c/"\nuser = "u"\n', 4, "needs both user"),
        ("[intel]\nfeeds = 3\n", 4, "must be [[intel.feeds]] tables"),
    ],
)
def test_feed_mistakes_are_located(tmp_path: Path, feeds: str, line: int, fragment: str) -> None:
    (tmp_path / "bad.txt").write_text("192.0.2.1\n192.0.2.300\n")
    path = config(tmp_path, feeds)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == line, info.value.located()
    assert fragment in info.value.reason


def test_unreachable_taxii_server_fails_the_config_naming_the_url(tmp_path: Path) -> None:
    path = config(tmp_path, '[[intel.feeds]]\nkind = "taxii"\nurl = "http://127.0.0.1:9/c/"\ntimeout = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 6 and "http://127.0.0.1:9/c/objects/" in info.value.reason


def test_detector_renotifies_after_its_interval_and_keeps_feed_out_of_snapshots() -> None:
    from querywarden.core.profile import ModelProfile

    feed = [{"kind": "network", "value": "203.0.113.0/24", "severity": "medium", "confidence": 0.9}]
    det = IntelDetector(profile=ModelProfile(id="m"), feed=feed, renotify=100.0)

    def at(ts: float, ip: str = "203.0.113.5") -> int:
        return len(det.update(Interaction(id="r", ts=ts, principal="p", model="m", client=Client(ip=ip))))

    assert [at(0.0), at(50.0), at(99.0), at(100.0), at(150.0, "10.0.0.1")] == [1, 0, 0, 1, 0]
    blob = det.snapshot()
    assert b"203.0.113.0" not in blob
    fresh = det.clone()
    fresh.restore(blob)
    assert (
        len(fresh.update(Interaction(id="r", ts=150.0, principal="p", model="m", client=Client(ip="203.0.113.5")))) == 0
    )
    with pytest.raises(ValueError, match=r"feed\[0\]"):
        IntelDetector(profile=ModelProfile(id="m"), feed=[{"kind": "network", "value": "nope"}])


def test_intel_modules_do_no_io() -> None:
    from test_core_purity import _violations

    src = Path(__file__).resolve().parents[1] / "src" / "querywarden" / "intel"
    for name in ("detector.py", "matcher.py", "indicators.py", "fingerprint.py"):
        assert _violations(src / name) == [], name


def test_a_bad_inline_indicator_is_located(tmp_path: Path) -> None:
    path = config(
        tmp_path, "", detectors='[detectors.intel]\nrenotify = 60\nfeed = [{kind = "network", value = "nope"}]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line in (5, 6) and "feed[0]" in info.value.reason and "not an IP address" in info.value.reason


def test_refresh_swaps_new_indicators_into_the_running_detector(
    tmp_path: Path, taxii: TaxiiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from querywarden.core.profile import ModelProfile
    from querywarden.exports.edge import IntelRefresher

    monkeypatch.setenv("QW_TAXII", TOKEN)
    taxii.objects = [indicator(1, "[user-account:user_id = 'key_old']")]
    feed = f'[[intel.feeds]]\nkind = "taxii"\nurl = "{taxii.url}"\ntoken_env = "QW_TAXII"\nseverity = "medium"\n'
    path = config(tmp_path, "[intel]\nrefresh = 60\n\n" + feed)
    cfg = load_config(path)
    registry = load_registry(path)
    assert registry is not None and registry.refresh == 60.0
    engine = cfg.engine()

    def signals(principal: str, n: int, model: str = "credit") -> int:
        it = Interaction(id=f"{principal}-{n}", ts=1_794_000_000.0 + n, principal=principal, model=model)
        return len(engine.process(it).signals)

    assert (signals("key_old", 1), signals("key_new", 2)) == (1, 0)
    taxii.objects = [*taxii.objects, indicator(2, "[user-account:user_id = 'key_new']")]
    refresher = IntelRefresher(registry, engine)
    assert refresher.run_once()
    assert (signals("key_new", 3), signals("key_old", 4)) == (1, 0)  # key_old already signalled: renotify
    assert registry.feeds()[0].indicators == 2
    taxii.close()  # the server goes away: the reload fails and the loaded feed stays
    assert not refresher.run_once() and refresher.failures == 1
    assert registry.feeds()[0].indicators == 2
    engine.add_model(ModelProfile(id="digits", n_features=3))
    assert signals("key_new", 5, model="digits") == 1  # a model met later gets the refreshed feed too
