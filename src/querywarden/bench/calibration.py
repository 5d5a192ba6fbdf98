"""Calibration for the benchmark: thresholds from the calibration half, and the config that replays them.

The thresholds come from :func:`querywarden.calibrate.calibrate` run on the calibration
half of a victim's benign customers, never on the half that is scored and never on an
attack. The result is written as a config TOML beside the victim's traffic files (model
profile, reference sample, calibrated detector parameters) so that
``querywarden replay FILE --config config.toml`` builds the very engine the benchmark ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from querywarden.bench.scenario import Victim
from querywarden.calibrate import CalibrationResult
from querywarden.config_text import toml_value
from querywarden.core.engine import DetectorSpec


def threshold_rows(result: CalibrationResult) -> list[dict[str, object]]:
    """Each calibrated threshold as a row for results.json: detector, parameter, default, new value."""
    return [
        {
            "detector": t.detector,
            "param": t.param,
            "default": t.old,
            "calibrated": t.new,
            "principals": t.principals,
        }
        for t in result.thresholds
    ]


def write_config(folder: Path, victim: Victim, specs: Sequence[DetectorSpec]) -> Path:
    """A config TOML (profile, reference sample, calibrated detector parameters) for replay."""
    folder.mkdir(parents=True, exist_ok=True)
    prof = victim.profile
    lines = [f"[models.{toml_value(prof.id)}]", f"input_kind = {toml_value(prof.input_kind.value)}"]
    if prof.n_features is not None:
        lines.append(f"n_features = {prof.n_features}")
    if prof.shape:
        lines.append(f"shape = {toml_value(list(prof.shape))}")
    if prof.feature_names:
        lines.append(f"feature_names = {toml_value(list(prof.feature_names))}")
    if prof.ranges:
        lines.append(f"ranges = {toml_value([list(r) for r in prof.ranges])}")
    if prof.classes:
        lines.append(f"classes = {toml_value(list(prof.classes))}")
    lines.append(f"output_kind = {toml_value(prof.output_kind)}")
    if prof.reference is not None:
        np.save(folder / "reference.npy", np.asarray(prof.reference, dtype=np.float64))
        lines.append('reference = "reference.npy"')
    if prof.training_digests is not None:
        np.save(folder / "training-digests.npy", np.asarray(prof.training_digests, dtype=np.uint64))
        lines.append('training_digests = "training-digests.npy"')
    for spec in specs:
        lines.append("")
        lines.append(f"[detectors.{spec.name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in spec.params.items())
        if spec.models:
            lines.append(f"models = {toml_value(list(spec.models))}")
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
