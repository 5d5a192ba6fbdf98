"""``querywarden replay --export``: findings of a traffic file reach the configured receivers."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from exports_receivers import HttpReceiver
from querywarden.cli import app
from querywarden.exports.webhook import SIGNATURE_HEADER, verify


def traffic(path: Path, n: int) -> Path:
    lines = []
    for i in range(n):
        principal = "stolen_key" if i % 4 == 0 else f"cust{i % 7}"
        rec = {
            "id": f"r{i}",
            "ts": 1_764_331_200 + i,
            "principal": principal,
            "model": "credit",
            "client": {"ip": "198.51.100.9"},
            "input": {"features": [0.1 * (i % 10), 1.0, 2.0]},
            "output": {"probabilities": [0.6, 0.4]},
        }
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "qw.toml"
    cfg.write_text(
        f"""[models.credit]
n_features = 3

[detectors.intel]
feed = [{{kind = "principal", value = "stolen_key", severity = "medium", name = "key sold online"}}]

[[exports]]
kind = "webhook"
url = "{url}"
secret = "replay-secret"

[[exports]]
kind = "ocsf"
path = "ocsf.jsonl"
"""
    )
    return cfg


def test_replay_exports_only_when_asked(tmp_path: Path) -> None:
    hook = HttpReceiver(statuses=[503])  # the first delivery fails and is retried
    try:
        cfg = config(tmp_path, hook.url + "/qw")
        path = traffic(tmp_path / "t.jsonl", 40)
        runner = CliRunner()
        quiet = runner.invoke(app, ["replay", str(path), "--config", str(cfg), "--findings", str(tmp_path / "f.jsonl")])
        assert quiet.exit_code == 0, quiet.output
        assert hook.requests == [] and not (tmp_path / "ocsf.jsonl").exists()

        loud = runner.invoke(
            app, ["replay", str(path), "--config", str(cfg), "--findings", str(tmp_path / "f.jsonl"), "--export"]
        )
        assert loud.exit_code == 0, loud.output
        assert "export webhook: 1 sent, 0 failed, 0 dropped" in loud.output
        assert [r.path for r in hook.requests] == ["/qw", "/qw"]
        body = hook.requests[-1].body
        assert verify(b"replay-secret", body, hook.requests[-1].headers[SIGNATURE_HEADER.lower()], now=time.time())
        finding = json.loads(body)["findings"][0]
        assert finding["principals"] == ["stolen_key"] and finding["evidence"]["intel"]["name"] == "key sold online"
        ocsf = [json.loads(x) for x in (tmp_path / "ocsf.jsonl").read_text().splitlines()]
        assert [e["finding_info"]["uid"] for e in ocsf] == [finding["finding_id"]]
    finally:
        hook.close()


def test_export_without_exports_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "qw.toml"
    cfg.write_text("[models.credit]\nn_features = 3\n")
    path = traffic(tmp_path / "t.jsonl", 4)
    result = CliRunner().invoke(app, ["replay", str(path), "--config", str(cfg), "--export"])
    assert result.exit_code == 2 and "--export needs a --config with [[exports]]" in result.output
