"""A principal's last ``window`` queries as 0/1 events, and the calibration read from them.

Detectors that test an event share against a benign rate (boundary events, out-of-distribution
inputs) keep the same per-principal record: a ring of flags, how many are held and how many
are set, and the worst share and surprise seen so far. The ring is a uint8 array allocated
on the first query, so a principal that sends one query costs a few bytes, and the count is
kept up to date on every push so the share is read without summing the ring.

The state classes stay the detectors' own (their slots and pickled snapshots do not change);
this module works on anything with the attributes of ``EventState``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from querywarden.core.detector import Calibration


class EventState(Protocol):
    """The per-principal attributes the functions below read and write."""

    flags: npt.NDArray[np.uint8] | None
    pos: int
    n: int
    count: int
    worst_share: float
    worst_surprise: float


def push_event(st: EventState, flag: int, window: int) -> None:
    """Appends one query's flag (0 or 1) to the ring of the last ``window``, dropping the oldest."""
    flags = st.flags
    if flags is None:
        flags = st.flags = np.zeros(window, dtype=np.uint8)
    if st.n < window:
        st.n += 1
    else:
        st.count -= int(flags[st.pos])
    flags[st.pos] = flag
    st.count += flag
    st.pos = (st.pos + 1) % window


def fold_events(into: EventState, other: EventState, window: int) -> None:
    """Append ``other``'s held flags, oldest first, to ``into``'s ring: two principals'
    records becoming one actor's. The worst share and surprise are the worse of the two."""
    flags = other.flags
    if flags is not None and other.n:
        held = flags[: other.n] if other.n < window else np.concatenate([flags[other.pos :], flags[: other.pos]])
        for flag in held.tolist():
            push_event(into, int(flag), window)
    into.worst_share = max(into.worst_share, other.worst_share)
    into.worst_surprise = max(into.worst_surprise, other.worst_surprise)


def share_calibration(
    states: Iterable[EventState], min_queries: int, floors: tuple[float, float]
) -> dict[str, Calibration]:
    """The worst ``surprise`` and ``min_share`` of principals with at least ``min_queries`` queries.

    Calibration may raise the bars for a model whose benign traffic runs hot, never lower
    them past the shipped defaults (``floors``): a few dozen calibrating principals cannot
    vouch for 0.1%.
    """
    held = [st for st in states if st.n >= min_queries]
    return {
        "surprise": Calibration(values=tuple(st.worst_surprise for st in held), floor=floors[0]),
        "min_share": Calibration(values=tuple(st.worst_share for st in held), floor=floors[1]),
    }
