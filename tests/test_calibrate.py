"""Calibration sets thresholds from benign traffic only, at the requested quantile."""

from __future__ import annotations

import numpy as np
import pytest

from querywarden.calibrate import calibrate, threshold_for
from querywarden.core.detector import Calibration
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity
from querywarden.errors import ConfigError
from querywarden.plugins import load_detectors

load_detectors()
PROFILE = {"m": ModelProfile(id="m")}


def _benign(seed: int, principals: int = 200) -> list[Interaction]:
    """Customers with heavy-tailed hourly volumes (lognormal), spread over one hour."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(principals):
        n = int(rng.lognormal(3.0, 0.8)) + 1
        for i, t in enumerate(np.sort(rng.uniform(0, 3500, n))):
            out.append(Interaction(id=f"{seed}-{p}-{i}", ts=float(t), principal=f"c{seed}-{p}", model="m"))
    out.sort(key=lambda it: it.ts)
    return out


def test_threshold_reads_the_requested_quantile() -> None:
    values = tuple(float(v) for v in range(1, 1001))
    value, q = threshold_for(Calibration(values=values), 0.01)
    assert q == 0.99 and 990 < value < 992
    low, _ = threshold_for(Calibration(values=values, alarm_above=False), 0.01)
    assert 9 < low < 11
    floored, _ = threshold_for(Calibration(values=values, floor=5000.0), 0.01)
    assert floored == 5000.0


def test_calibrated_volume_keeps_held_out_benign_quiet_and_catches_a_flood() -> None:
    result = calibrate(_benign(1), PROFILE, [DetectorSpec("volume")], target_fpr=0.01)
    t, sustained = result.thresholds
    assert t.param == "min_queries" and t.principals == 200
    min_queries = result.specs[0].params["min_queries"]
    assert isinstance(min_queries, int) and min_queries < 1000  # tighter than the default
    # a sustained excess (medium) is factor times past the busiest benign window
    assert sustained.param == "sustained_queries" and sustained.value >= 5.0 * (min_queries - 1)

    engine = Engine(PROFILE, detectors=result.specs)
    held_out = _benign(2)
    flagged = {s.principal for it in held_out for s in engine.process(it).signals}
    assert len(flagged) / 200 <= 0.03  # about the 1% target on an independent split
    flood = [Interaction(id=f"f{i}", ts=i * 0.5, principal="flood", model="m") for i in range(2000)]
    assert any(sig.severity >= Severity.LOW for it in flood for sig in engine.process(it).signals)


def test_too_few_principals_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least 20 principals; got 5"):
        calibrate(_benign(1, principals=5), PROFILE, [DetectorSpec("volume")])


def test_unknown_model_in_benign_traffic_is_located() -> None:
    bad = [Interaction(id="x", ts=0.0, principal="p", model="other", source="benign.jsonl:3")]
    with pytest.raises(ConfigError, match=r"benign\.jsonl:3: .*unknown model 'other'"):
        calibrate(bad, PROFILE, [DetectorSpec("volume")])
