"""The command line: replay and profile end to end, exit codes, --version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

import querywarden
from querywarden.cli import app
from querywarden.plugins import load_detectors

MIXED = Path(__file__).parent / "data" / "replay" / "mixed.jsonl"
BAD = [5, 20, 35, 50, 65, 80, 95, 110, 125]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    others = "".join(f"[detectors.{n}]\nenabled = false\n" for n in sorted(load_detectors()) if n != "volume")
    path = tmp_path / "qw.toml"
    path.write_text("[models.credit]\nn_features = 3\n[detectors.volume]\nwindow = 60.0\nmin_queries = 20\n" + others)
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and out.strip() == f"querywarden {querywarden.__version__}"


def test_replay_reports_bad_lines_writes_findings_and_exits_0(tmp_path: Path, config: Path) -> None:
    findings = tmp_path / "out" / "f.jsonl"
    findings.parent.mkdir()
    code, out, err = invoke("replay", str(MIXED), "--config", str(config), "--findings", str(findings))
    assert code == 0, err
    for line in BAD:
        assert f"{MIXED}:{line}: " in err
    rejects = findings.parent / "mixed.rejects.jsonl"
    assert [msgspec.json.decode(r)["line"] for r in rejects.read_bytes().splitlines()] == BAD
    records = [msgspec.json.decode(r) for r in findings.read_bytes().splitlines()]
    assert records and all(r["principals"] == ["key_heavy"] for r in records)
    assert "AML.T0034.000 Cost Harvesting" in out
    assert "130" in out and "rejects" in out


def test_replay_ocsf_to_stdout(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # with findings on stdout, the rejects file goes to the working folder
    code, out, err = invoke("replay", str(MIXED), "-c", str(config), "--findings", "-", "--format", "ocsf")
    assert code == 0, err
    events = [msgspec.json.decode(line) for line in out.splitlines()]
    assert events and all(e["class_uid"] == 2004 for e in events)
    assert "interactions" in err  # the summary moves to stderr when findings use stdout
    assert (tmp_path / "mixed.rejects.jsonl").exists()


def test_replay_without_config_infers_profiles_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("replay", str(MIXED))
    assert code == 0, err
    assert "No --config given: inferred profiles" in err and "credit (tabular, 3 features)" in err
    assert (tmp_path / "mixed.findings.jsonl").exists()
    # inferred profiles make the 2-feature line a wrong-count reject and `fraud` an unknown model
    assert f"{MIXED}:110: wrong feature count" in err
    assert (tmp_path / "mixed.rejects.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "unknown --format 'xml'; allowed: json, ocsf"),
        (["--config", "missing.toml"], "missing.toml: cannot read config"),
        (["--findings", "/nonexistent/dir/f.jsonl"], "directory does not exist"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = invoke("replay", str(MIXED), *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_config_is_a_located_error_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.credit]\nn_features = 3\n\n[detectors.volume]\nfactr = 2\n")
    code, _, err = invoke("replay", str(MIXED), "--config", str(bad))
    assert code == 2
    assert f"{bad}:5: detectors.volume.factr: unknown parameter; allowed:" in " ".join(err.split())


def test_missing_traffic_file_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("replay", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "traffic file not found" in err


def test_replay_into_a_store(tmp_path: Path, config: Path) -> None:
    from querywarden.store import open_store

    url = f"sqlite:///{tmp_path / 'qw.db'}"
    code, _, err = invoke("replay", str(MIXED), "-c", str(config), "-o", str(tmp_path / "f.jsonl"), "--db", url)
    assert code == 0, err
    with open_store(url) as store:
        stats = store.stats()
        stored = store.findings()
    assert stats.interactions == 130
    assert stored and all(f.principals == ("key_heavy",) for f in stored)


def test_bad_store_url_exits_2(tmp_path: Path, config: Path) -> None:
    url = "sqlite:////nonexistent/dir/qw.db"
    code, _, err = invoke("replay", str(MIXED), "-c", str(config), "-o", str(tmp_path / "f"), "--db", url)
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_profile_command_writes_a_loadable_config(tmp_path: Path) -> None:
    out = tmp_path / "drafted.toml"
    code, _, err = invoke("profile", str(MIXED), "--out", str(out))
    assert code == 0, err
    assert "credit: drafted from 131 interactions" in err
    code, _, err = invoke("replay", str(MIXED), "--config", str(out), "-o", str(tmp_path / "f.jsonl"))
    assert code == 0, err
    assert f"{MIXED}:125: unknown model 'fraud'" not in err  # the draft includes every model seen


def test_profile_to_stdout_and_missing_file(tmp_path: Path) -> None:
    code, out, _ = invoke("profile", str(MIXED))
    assert code == 0 and "[models.credit]" in out and "n_features = 3" in out
    code, _, err = invoke("profile", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "not found" in err


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).with_name("querywarden")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert "replay" in done.stdout and "profile" in done.stdout
