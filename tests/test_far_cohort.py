"""The far-cohort index: who began together sending only far-off inputs, who is confirmed,
which single-query members belong to a cohort's first round, and its bounds."""

from __future__ import annotations

from querywarden.detectors.far_cohort import FLOOR, FarCohortIndex

T0 = 1_764_320_000.0


def _index(**kw: float) -> FarCohortIndex:
    return FarCohortIndex(window=kw.get("window", 120.0), horizon=kw.get("horizon", 3600.0), capacity=16)


def _round(idx: FarCohortIndex, levels: list[float], *, start: float = T0, gap: float = 0.2) -> list[str]:
    """One key per level joining ``gap`` s apart, then each confirmed in the same order."""
    names = [f"k{i:02d}" for i in range(len(levels))]
    for i, (name, level) in enumerate(zip(names, levels, strict=True)):
        idx.join(name, start + gap * i, level)
    t = start + gap * len(levels)
    for i, (name, level) in enumerate(zip(names, levels, strict=True)):
        assert idx.confirm(name, level, t + gap * i)
    return names


def test_confirmed_members_at_the_bar_make_the_cohort() -> None:
    idx = _index()
    names = _round(idx, [3.0, 2.5, 4.0])
    cohort = idx.cohort("k02", 2.0, 64)
    assert cohort is not None and cohort.confirmed == 3 and cohort.confirmed_at_floor == 3
    assert set(cohort.peers) == {"k00", "k01"} and 0 < cohort.span <= 0.5
    assert idx.cohort("k00", 2.0, 64) is not None and len(names) == 3


def test_members_only_at_the_floor_make_no_cohort_but_join_one() -> None:
    idx = _index()
    _round(idx, [1.2, 1.1, 1.3])
    weak = idx.cohort("k02", 2.0, 64)
    assert weak is not None and weak.confirmed == 0 and weak.confirmed_at_floor == 3
    idx = _index()
    _round(idx, [3.0, 1.1, 2.5, 4.0])  # k01 is off the manifold, under the bar
    joined = idx.cohort("k01", 2.0, 64)
    assert joined is not None and joined.confirmed == 3 and set(joined.peers) == {"k00", "k02", "k03"}


def test_single_query_members_of_the_first_round_only() -> None:
    idx = _index()
    idx.join("early-single", T0 - 1.0, 3.0)  # began before the confirming key
    for i, name in enumerate(("a", "b", "c")):
        idx.join(name, T0 + 0.2 * i, 3.0)
    idx.join("round-single", T0 + 1.0, 3.0)  # began after them, before anyone confirmed
    for i, name in enumerate(("a", "b")):
        idx.confirm(name, 3.0, T0 + 2.0 + 0.2 * i)
    idx.join("late-single", T0 + 3.0, 3.0)  # began after the first confirmation
    idx.confirm("c", 3.0, T0 + 3.5)
    cohort = idx.cohort("c", 2.0, 64)
    assert cohort is not None and cohort.confirmed == 3
    assert set(cohort.peers) == {"a", "b", "round-single"}


def test_the_window_the_horizon_and_leaving() -> None:
    idx = _index(window=60.0, horizon=600.0)
    idx.join("old", T0, 3.0)
    idx.confirm("old", 3.0, T0 + 1)
    for i, name in enumerate(("a", "b", "c")):
        idx.join(name, T0 + 100.0 + i, 3.0)
        idx.confirm(name, 3.0, T0 + 110.0 + i)
    cohort = idx.cohort("c", 2.0, 64)
    assert cohort is not None and set(cohort.peers) == {"a", "b"}  # "old" began 100 s earlier
    idx.leave("b")
    assert idx.confirm("b", 3.0, T0 + 120.0) is False
    idx.join("new", T0 + 650.0, 3.0)
    assert list(idx._members) == ["a", "c", "new"]  # "old" is past the horizon


def test_capacity_and_level() -> None:
    idx = _index()
    for i in range(40):
        idx.join(f"k{i}", T0 + i, 2.0 + FLOOR)
    assert len(idx) == 16
    idx.level("k39", 1.5)
    idx.level("k39", 2.5)
    assert idx._members["k39"].level == 1.5
    assert idx.cohort("k39", 2.0, 64) is None  # not confirmed
