"""Snapshots restore our own state and refuse anything else."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from querywarden.core import snapshot
from querywarden.core.records import Action, Decision
from querywarden.errors import DetectorError


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_round_trip_of_records_and_arrays() -> None:
    state = {"d": Decision(principal="p", action=Action.BLOCK, ts=1.0), "a": np.arange(5.0)}
    back = snapshot.loads(snapshot.dumps(state))
    assert back["d"] == state["d"]
    assert np.array_equal(back["a"], state["a"])


def test_refuses_code_execution() -> None:
    with pytest.raises(DetectorError, match=r"disallowed class posix\.system"):
        snapshot.loads(pickle.dumps(_Evil()))


def test_garbage_is_a_detector_error() -> None:
    with pytest.raises(DetectorError, match="cannot restore snapshot"):
        snapshot.loads(b"not a pickle")
