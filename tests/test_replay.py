"""Replay: a file with bad lines mixed in reports each one and still finds the good lines' attacks."""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from querywarden.config import Config, load_config
from querywarden.core.traffic import TrafficParser
from querywarden.exports.ocsf import detection_finding
from querywarden.findings_out import FindingsWriter
from querywarden.plugins import load_detectors
from querywarden.replay import PROGRESS_EVERY, Reject, RejectsFile, ReplayStats, default_rejects_path, replay

DATA = Path(__file__).parent / "data" / "replay"
MIXED = DATA / "mixed.jsonl"
BAD_LINES = {
    5: "truncated JSON",
    20: "not UTF-8",
    35: "missing principal",
    50: "missing input",
    65: "numbers only (found null)",
    80: "Number out of range",
    95: "unparseable ts 'the day after'",
    110: "wrong feature count: 2, the model takes 3",
    125: "unknown model 'fraud'",
}


def volume_config(tmp_path: Path) -> Path:
    """The credit model with the volume detector tuned to minutes; every other detector off."""
    others = "".join(f"[detectors.{n}]\nenabled = false\n" for n in sorted(load_detectors()) if n != "volume")
    path = tmp_path / "qw.toml"
    path.write_text(
        "[models.credit]\nn_features = 3\n\n"
        "[detectors.volume]\nwindow = 60.0\nmin_queries = 20\nsustained = 3\n\n" + others
    )
    return path


Run = tuple[ReplayStats, list[dict[str, Any]], list[Reject]]


def run(path: Path, cfg: Config, tmp_path: Path, fmt: str = "json") -> Run:
    out = io.BytesIO()
    seen: list[Reject] = []
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    stats = replay(path, cfg.engine(), FindingsWriter(out, fmt), rejects=rejects, on_reject=seen.append)
    rejects.close()
    findings = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
    return stats, findings, seen


def test_every_bad_line_is_reported_and_good_lines_still_find_the_attack(tmp_path: Path) -> None:
    cfg = load_config(volume_config(tmp_path))
    stats, findings, seen = run(MIXED, cfg, tmp_path)
    assert {r.line: r.reason for r in seen}.keys() == BAD_LINES.keys()
    for r in seen:
        assert BAD_LINES[r.line] in r.reason
        assert r.location == f"{MIXED}:{r.line}"
    assert stats.rejects == 9 and stats.lines == 139 and stats.interactions == 130

    on_disk = [msgspec.json.decode(line) for line in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    assert [r["line"] for r in on_disk] == sorted(BAD_LINES)
    assert on_disk[0]["raw"].startswith('{"ts": 1795867201, "principal": "cust_1"')
    assert "\\xe9" in on_disk[1]["raw"]

    heavy = [f for f in findings if f["principals"] == ["key_heavy"]]
    assert heavy, findings
    assert {f["severity"] for f in heavy} >= {"low", "medium"}
    assert not [f for f in findings if f["principals"] != ["key_heavy"]]
    medium = next(f for f in heavy if f["severity"] == "medium")
    design_fields = {
        "finding_id", "status", "principals", "actor", "model", "technique", "owasp", "severity", "score",
        "detectors", "first_seen_ts", "detected_ts", "trigger_id", "queries_at_detection", "evidence", "action",
    }  # fmt: skip
    assert design_fields <= medium.keys()
    assert medium["technique"] == {"id": "AML.T0034.000", "name": "Cost Harvesting: Excessive Queries"}
    assert medium["action"] == "harden"  # the default policy: medium hardens
    assert str(medium["trigger_id"]).startswith("req-a2-")
    assert medium["queries_at_detection"] > 40


def test_gzip_input_gives_the_same_result(tmp_path: Path) -> None:
    cfg = load_config(volume_config(tmp_path))
    gz = tmp_path / "mixed.jsonl.gz"
    with MIXED.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain_stats, plain, _ = run(MIXED, cfg, tmp_path)
    gz_stats, zipped, seen = run(gz, load_config(volume_config(tmp_path)), tmp_path)
    assert [r.line for r in seen] == sorted(BAD_LINES)
    strip = [{k: v for k, v in f.items() if k != "finding_id"} for f in plain]
    assert strip == [{k: v for k, v in f.items() if k != "finding_id"} for f in zipped]
    assert gz_stats.interactions == plain_stats.interactions


def test_ocsf_output(tmp_path: Path) -> None:
    _, findings, _ = run(MIXED, load_config(volume_config(tmp_path)), tmp_path, fmt="ocsf")
    assert findings
    first = findings[0]
    assert first["class_uid"] == 2004 and first["activity_id"] == 1 and first["type_uid"] == 200401
    assert first["severity_id"] == 2  # low
    assert first["finding_info"]["attacks"][0]["technique"] == {"uid": "AML.T0034", "name": "Cost Harvesting"}
    assert first["finding_info"]["attacks"][0]["sub_technique"]["uid"] == "AML.T0034.000"
    assert isinstance(first["time"], int) and first["time"] > 1_795_867_200_000
    assert first["unmapped"]["principals"] == ["key_heavy"]
    assert {f["activity_id"] for f in findings} <= {1, 2, 3}
    assert any(f["activity_id"] == 2 and f["severity_id"] == 3 for f in findings)


def test_ocsf_maps_extraction_to_exfiltration() -> None:
    from querywarden.core.records import Finding, Severity

    f = Finding(
        finding_id="f", status="closed", principals=("a", "b"), actor="actor-1", model="m",
        technique={"id": "AML.T0024.002", "name": "Extract AI Model"}, owasp=("ML05:2023",),
        severity=Severity.CRITICAL, score=0.97, detectors=("prada",), first_seen_ts=1.0, detected_ts=2.0,
        updated_ts=3.5, trigger_id="r1", queries_at_detection=120, evidence={"prada": {"w": 0.8}}, action="block",
    )  # fmt: skip
    event = detection_finding(f)
    assert (event["activity_id"], event["status_id"], event["severity_id"]) == (3, 4, 5)
    assert event["finding_info"]["attacks"][0]["tactic"] == {"uid": "AML.TA0010", "name": "Exfiltration"}
    assert event["time"] == 3500 and event["finding_info"]["created_time"] == 2000
    assert event["evidences"][0]["data"] == {"prada": {"w": 0.8}}
    assert event["unmapped"]["actor"] == "actor-1"


def test_blank_lines_are_not_rejects(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'\n{"ts": 1, "principal": "p", "input": [1, 2, 3]}\n   \n\n')
    cfg = Config.defaults({"credit": load_config(volume_config(tmp_path)).profiles["credit"]})
    stats, _, seen = run(path, cfg, tmp_path)
    assert seen == [] and stats.interactions == 1


def test_progress_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"ts": 1, "principal": "p", "input": [1, 2, 3]}\n' * (PROGRESS_EVERY + 5))
    calls: list[tuple[int, int]] = []
    cfg = load_config(volume_config(tmp_path))
    replay(path, cfg.engine(), FindingsWriter(io.BytesIO()), on_progress=lambda a, b: calls.append((a, b)))
    assert calls[0][0] == PROGRESS_EVERY and 0 < calls[0][1] <= path.stat().st_size
    assert calls[-1] == (PROGRESS_EVERY + 5, path.stat().st_size)


def test_no_rejects_file_for_a_clean_run(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"ts": 1, "principal": "p", "input": [1, 2, 3]}\n')
    run(path, load_config(volume_config(tmp_path)), tmp_path)
    assert not (tmp_path / "rejects.jsonl").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("t.jsonl", "t.rejects.jsonl"), ("t.jsonl.gz", "t.rejects.jsonl"), ("logs", "logs.rejects.jsonl")],
)
def test_default_rejects_path(tmp_path: Path, name: str, expected: str) -> None:
    assert default_rejects_path(Path("/data") / name, tmp_path) == tmp_path / expected


def test_parser_used_by_replay_accepts_what_it_reports(tmp_path: Path) -> None:
    # the rejects file holds each raw line: fixing it and parsing again must succeed
    cfg = load_config(volume_config(tmp_path))
    run(MIXED, cfg, tmp_path)
    first = msgspec.json.decode((tmp_path / "rejects.jsonl").read_bytes().splitlines()[0])
    fixed = first["raw"] + ", 0.3]}}"
    assert TrafficParser(cfg.profiles, "fixed").parse(fixed.encode(), 1)[0].principal == "cust_1"
