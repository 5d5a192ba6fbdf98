"""Volume detector: population-relative thresholds, once per window, baseline not poisoned."""

from __future__ import annotations

from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity
from querywarden.detectors.volume import VolumeDetector

PROFILE = ModelProfile(id="m")


def _feed(det: VolumeDetector, principal: str, n: int, window_index: int, window: float = 100.0) -> list:
    out = []
    for i in range(n):
        ts = window_index * window + i * (window / max(n, 1)) * 0.99
        out.extend(det.update(Interaction(id=f"{principal}{window_index}-{i}", ts=ts, principal=principal, model="m")))
    return out


def test_threshold_follows_population_after_warmup() -> None:
    det = VolumeDetector(profile=PROFILE, window=100.0, min_queries=5, warmup=20, factor=4.0)
    assert det.threshold() == 5.0
    for w in range(3):
        for p in range(10):
            _feed(det, f"c{p}", 30, w)
    # 20+ completed windows of 30 queries: threshold is factor x the upper bucket edge (32)
    assert det.threshold() == 4.0 * 32


def test_signals_once_per_window_and_escalates_when_sustained() -> None:
    det = VolumeDetector(profile=PROFILE, window=100.0, min_queries=10, sustained=2, warmup=10**6)
    first = _feed(det, "bot", 50, 0)
    assert len(first) == 1 and first[0].severity is Severity.LOW
    assert first[0].evidence["queries_in_window"] == 11
    second = _feed(det, "bot", 50, 1)
    assert len(second) == 1 and second[0].severity is Severity.MEDIUM
    assert second[0].evidence["consecutive_windows"] == 2


def test_a_gap_resets_the_sustained_run() -> None:
    det = VolumeDetector(profile=PROFILE, window=100.0, min_queries=10, sustained=2, warmup=10**6)
    _feed(det, "bot", 50, 0)
    again = _feed(det, "bot", 50, 5)
    assert again[0].severity is Severity.LOW


def test_flagged_windows_stay_out_of_a_warm_baseline() -> None:
    det = VolumeDetector(profile=PROFILE, window=100.0, min_queries=10, warmup=5, factor=2.0)
    for p in range(5):
        _feed(det, f"c{p}", 3, 0)
        _feed(det, f"c{p}", 1, 1)  # closes window 0
    warm = det.threshold()
    assert int(det._hist.sum()) == 5
    _feed(det, "bot", 10_000, 0)
    _feed(det, "bot", 1, 1)  # closes the flagged window
    assert int(det._hist.sum()) == 5
    assert det.threshold() == warm


def test_with_sustained_queries_only_a_far_excess_is_sustained() -> None:
    """Calibrated: a feed a little busier than every calibrating customer, hour after hour, stays low."""
    det = VolumeDetector(profile=PROFILE, window=100.0, min_queries=10, sustained=2, sustained_queries=50, warmup=10**6)
    steady = [s for w in range(12) for s in _feed(det, "feed", 30, w)]
    assert len(steady) == 12 and all(s.severity is Severity.LOW for s in steady)
    first = _feed(det, "flood", 60, 0)
    assert [s.severity for s in first] == [Severity.LOW]  # far past it, but not yet for long
    second = _feed(det, "flood", 60, 1)
    assert [s.severity for s in second] == [Severity.LOW, Severity.MEDIUM]
    assert second[1].evidence["queries_in_window"] == 51 and second[1].evidence["consecutive_windows"] == 2
