"""Calibration: set every detector threshold from benign traffic for a target false-positive rate.

Each detector reports, per thresholding parameter, the most alarming value of the statistic
that each benign principal reached (``Detector.calibration``). The threshold becomes the
``1 - target_fpr`` quantile of those values (or the ``target_fpr`` quantile when low values
alarm), pushed just past it so the calibrating principals themselves stay quiet, and never
past the detector's declared floor. Attacks are never used here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from querywarden.core import registry
from querywarden.core.detector import Calibration, Detector
from querywarden.core.engine import DetectorSpec
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction
from querywarden.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Threshold:
    detector: str
    model: str
    param: str
    old: Any
    new: float
    principals: int
    """How many benign principals the statistic was measured on."""
    quantile: float
    alarm_above: bool = True
    integer: bool = False
    """The parameter takes whole numbers (its default is an int): ``new`` is rounded outward."""

    @property
    def value(self) -> float | int:
        return int(self.new) if self.integer else self.new


@dataclass(slots=True)
class CalibrationResult:
    specs: list[DetectorSpec]
    thresholds: list[Threshold] = field(default_factory=list)
    interactions: int = 0
    principals: int = 0

    def params_by_detector(self) -> dict[str, dict[str, float | int]]:
        """Thresholds to write into a config: ``{detector: {param: value}}``.

        With several models, the strictest (least alarming) value across models wins, since
        a config's ``[detectors.<name>]`` table applies to every model.
        """
        out: dict[str, dict[str, float | int]] = {}
        for t in self.thresholds:
            current = out.setdefault(t.detector, {}).get(t.param)
            if current is None:
                out[t.detector][t.param] = t.value
            else:
                out[t.detector][t.param] = max(current, t.value) if t.alarm_above else min(current, t.value)
        return out


def calibrate(
    interactions: Iterable[Interaction],
    profiles: Mapping[str, ModelProfile],
    specs: Iterable[DetectorSpec],
    *,
    target_fpr: float = 0.001,
    min_principals: int = 20,
) -> CalibrationResult:
    """Run benign traffic through fresh detectors and derive their thresholds."""
    if not 0 < target_fpr < 0.5:
        raise ConfigError(f"target FPR must be in (0, 0.5), got {target_fpr}")
    specs = list(specs)
    built: dict[str, list[tuple[DetectorSpec, Detector]]] = {}
    for model, profile in profiles.items():
        built[model] = [
            (spec, registry.get(spec.name)(profile=profile, **dict(spec.params)))
            for spec in specs
            if not spec.models or model in spec.models
        ]
    seen: set[str] = set()
    count = 0
    for it in interactions:
        dets = built.get(it.model)
        if dets is None:
            raise ConfigError(f"benign traffic names unknown model {it.model!r}", source=it.source)
        count += 1
        seen.add(it.principal)
        for _, det in dets:
            det.update(it)
    if len(seen) < min_principals:
        raise ConfigError(
            f"calibration needs benign traffic from at least {min_principals} principals; got {len(seen)}"
        )
    result = CalibrationResult(specs=[], interactions=count, principals=len(seen))
    new_params: dict[str, dict[str, Any]] = {s.name: dict(s.params) for s in specs}
    for model, dets in built.items():
        for spec, det in dets:
            for param, cal in det.calibration().items():
                if len(cal.values) < min_principals:
                    continue
                value, q = threshold_for(cal, target_fpr)
                old = spec.params.get(param, det.defaults().get(param))
                integer = isinstance(det.defaults().get(param), int)
                if integer:
                    value = float(math.ceil(value)) if cal.alarm_above else float(math.floor(value))
                result.thresholds.append(
                    Threshold(spec.name, model, param, old, value, len(cal.values), q, cal.alarm_above, integer)
                )
    for name, params in result.params_by_detector().items():
        new_params[name].update(params)
    result.specs = [DetectorSpec(s.name, new_params[s.name], s.models) for s in specs]
    return result


def threshold_for(cal: Calibration, target_fpr: float) -> tuple[float, float]:
    """The threshold for one statistic, and the quantile it was read at."""
    values = np.asarray(cal.values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ConfigError("calibration statistic has no finite values")
    q = 1.0 - target_fpr if cal.alarm_above else target_fpr
    point = float(np.quantile(values, q, method="higher" if cal.alarm_above else "lower"))
    # step just past the quantile so the principal that defined it stays under the bar
    nudged = math.nextafter(point, math.inf if cal.alarm_above else -math.inf)
    spread = float(np.std(values)) * 1e-3
    value = nudged + spread if cal.alarm_above else nudged - spread
    if cal.floor is not None:
        value = max(value, cal.floor) if cal.alarm_above else min(value, cal.floor)
    return value, q
