"""The threat-intel page and API: feeds loaded from the config, matches read from the store."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.traffic import SAMPLES
from gateway_upstream import LoopbackServer
from querywarden.console.auth import Auth
from querywarden.console.context import ConsoleContext, load_intel
from querywarden.console.settings import ConsoleSettings, token_digest
from querywarden.console.standalone import standalone_app
from querywarden.core.traffic import TrafficParser
from querywarden.store import open_store

pytest.importorskip("querywarden.intel.registry")
TOKEN = "intel-test-token-0123456789abc"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    from querywarden.config import load_config

    (tmp_path / "scrapers.txt").write_text("# from the abuse desk\nscraper\n")
    profile = tomllib.loads((SAMPLES / "volume" / "expect.toml").read_text())["profile"]
    lines = ["[models.credit]"] + [f"{k} = {json.dumps(v)}" for k, v in profile.items() if k != "id"]
    lines += [
        "",
        "[[intel.feeds]]",
        'kind = "key"',
        'path = "scrapers.txt"',
        'name = "abuse-desk"',
        'severity = "medium"',
    ]
    cfg = tmp_path / "qw.toml"
    cfg.write_text("\n".join(lines) + "\n")
    engine = load_config(cfg).engine()
    store = open_store(f"sqlite:///{tmp_path / 'qw.db'}")
    path = SAMPLES / "volume" / "positive.jsonl"
    parser = TrafficParser(engine.profiles, str(path))
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        for interaction in parser.parse(line, n):
            store.save_step([interaction], engine.process(interaction))
    store.flush()
    auth = Auth(ConsoleSettings(token_sha256=(token_digest(TOKEN),), secure_cookies=False))
    ctx = ConsoleContext(store=store, auth=auth, engine=engine, intel=load_intel(cfg))
    try:
        with LoopbackServer(standalone_app(ctx)) as s:
            yield s.url
    finally:
        store.close()


def test_feeds_and_matches_show_in_the_console_and_the_api(server: str) -> None:
    with httpx.Client(base_url=server, headers={"authorization": f"Bearer {TOKEN}"}) as c:
        body = c.get("/api/intel").json()
        assert [(f["name"], f["kind"], f["indicators"]) for f in body["feeds"]] == [("abuse-desk", "key", 1)]
        assert body["items"], "the scraper's traffic matched the list"
        assert {m["principal"] for m in body["items"]} == {"scraper"}
        assert {(m["feed"], m["on"], m["severity"]) for m in body["items"]} == {("abuse-desk", "principal", "medium")}
        assert c.get("/api/intel", params={"principal": "cust-01"}).json()["items"] == []
        page = c.get("/console/intel").text
        assert "abuse-desk" in page and "/console/principals/scraper" in page
        assert "Threat-intel matches" in c.get("/console/principals/scraper").text
        assert "Threat-intel matches" not in c.get("/console/principals/cust-01").text
