"""The ring of 0/1 events and the share calibration shared by the boundary and ood detectors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given
from hypothesis import strategies as st

from querywarden.detectors.event_window import push_event, share_calibration


class _Record:
    def __init__(self) -> None:
        self.flags: npt.NDArray[np.uint8] | None = None
        self.pos = 0
        self.n = 0
        self.count = 0
        self.worst_share = 0.0
        self.worst_surprise = 0.0


def test_first_push_allocates_the_ring() -> None:
    rec = _Record()
    push_event(rec, 1, 4)
    assert rec.flags is not None
    assert rec.flags.shape == (4,)
    assert (rec.n, rec.count, rec.pos) == (1, 1, 1)


def test_a_full_ring_drops_the_oldest_flag() -> None:
    rec = _Record()
    for flag in (1, 1, 0, 0):
        push_event(rec, flag, 4)
    assert (rec.n, rec.count, rec.pos) == (4, 2, 0)
    push_event(rec, 0, 4)  # pushes out the first 1
    assert (rec.n, rec.count, rec.pos) == (4, 1, 1)
    push_event(rec, 1, 4)  # pushes out the second 1, adds one
    assert (rec.n, rec.count) == (4, 1)


@given(st.lists(st.integers(0, 1), max_size=60), st.integers(1, 12))
def test_count_is_the_sum_of_the_last_window_flags(flags: list[int], window: int) -> None:
    rec = _Record()
    for flag in flags:
        push_event(rec, flag, window)
    assert rec.n == min(len(flags), window)
    assert rec.count == sum(flags[-window:])
    if rec.flags is not None:
        assert int(rec.flags.sum()) == rec.count


def test_calibration_reads_only_principals_with_enough_queries() -> None:
    quiet, busy = _Record(), _Record()
    quiet.n, quiet.worst_share, quiet.worst_surprise = 3, 0.9, 40.0
    busy.n, busy.worst_share, busy.worst_surprise = 30, 0.1, 2.0
    cal = share_calibration([quiet, busy], min_queries=20, floors=(6.0, 0.25))
    assert cal["surprise"].values == (2.0,)
    assert cal["min_share"].values == (0.1,)
    assert (cal["surprise"].floor, cal["min_share"].floor) == (6.0, 0.25)
