"""querywarden calibrate: writes thresholds into a config that then loads and runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

import querywarden.detectors
from querywarden.cli import app
from querywarden.config import load_config

SAMPLES = Path(querywarden.detectors.__file__).parent / "samples" / "volume"
runner = CliRunner()


def test_writes_a_loadable_config_from_benign_traffic(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    benign = tmp_path / "benign.jsonl"
    shutil.copy(SAMPLES / "negative.jsonl", benign)
    with benign.open("a") as fh:
        fh.write('{"principal": "x", "ts": "yesterday", "input": [1, 2, 3]}\n')
    result = runner.invoke(app, ["calibrate", str(benign), "--target-fpr", "0.01"])
    assert result.exit_code == 0, result.output
    assert "benign.jsonl:353: unparseable ts 'yesterday'" in result.output
    assert "cannot resolve a 1.00% rate" in result.output
    cfg = load_config(tmp_path / "querywarden.toml")
    volume = next(s for s in cfg.detector_specs if s.name == "volume")
    assert isinstance(volume.params["min_queries"], int)
    assert 100 < volume.params["min_queries"] < 1000  # the batch job's 150-query burst sets it


def test_updates_an_existing_config_in_place_keeping_comments(tmp_path: Path) -> None:
    cfg_path = tmp_path / "qw.toml"
    cfg_path.write_text(
        '# my models\n[models.credit]\ninput_kind = "tabular"\nn_features = 3\n\n'
        "[detectors.volume]\nwindow = 600.0  # ten minutes\n"
    )
    result = runner.invoke(app, ["calibrate", str(SAMPLES / "negative.jsonl"), "--config", str(cfg_path)])
    assert result.exit_code == 0, result.output
    text = cfg_path.read_text()
    assert text.startswith("# my models") and "window = 600.0  # ten minutes" in text
    volume = next(s for s in load_config(cfg_path).detector_specs if s.name == "volume")
    assert volume.params["window"] == 600.0 and "min_queries" in volume.params


def test_refuses_to_overwrite_and_reports_usage_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "querywarden.toml").write_text("")
    result = runner.invoke(app, ["calibrate", str(SAMPLES / "negative.jsonl")])
    assert result.exit_code == 2 and "exists; pass --config" in result.output
    missing = runner.invoke(app, ["calibrate", str(tmp_path / "nope.jsonl"), "--out", "x.toml"])
    assert missing.exit_code == 2 and "traffic file not found" in missing.output
    bad_rate = runner.invoke(
        app, ["calibrate", str(SAMPLES / "negative.jsonl"), "--out", "y.toml", "--target-fpr", "2"]
    )
    assert bad_rate.exit_code == 2 and "target FPR must be in (0, 0.5)" in bad_rate.output
