"""The fingerprint index: near-duplicates share hashes, the table forgets what the ring
evicted, and memory per stored query is fixed and under budget."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from querywarden.detectors.fingerprint_index import Fingerprinter, FingerprintIndex, stable_hash
from querywarden.errors import DetectorError


def fingerprinter(salt: str = "s", levels: int = 8, window: int = 6) -> Fingerprinter:
    return Fingerprinter(
        lo=np.zeros(64), step=np.full(64, 16.0 / levels), levels=levels, window=window, top_s=32, salt=salt
    )


def shared(a: np.ndarray, b: np.ndarray) -> int:
    return len(np.intersect1d(a, b))


def test_near_duplicates_share_most_hashes_and_different_digits_few() -> None:
    x = load_digits().data.astype(np.float64)
    fp = fingerprinter()
    base = fp.fingerprint(x[0])
    assert base.shape == (32,) and np.all(np.diff(base.astype(np.float64)) > 0)  # sorted, distinct
    nudged = x[0].copy()
    nudged[[10, 40]] += 2.5  # two pixels cross a bin
    assert shared(base, fp.fingerprint(nudged)) >= 20
    others = [shared(base, fp.fingerprint(x[i])) for i in range(1, 200)]
    assert float(np.median(others)) < 12


def test_codes_clip_out_of_range_values_to_the_edge_bins() -> None:
    fp = fingerprinter(levels=4)
    values = [-100.0, -0.01, 0.0, 3.99, 4.0, 15.99, 16.0, 1e300, np.inf, -np.inf, np.nan]
    codes = fp.codes(np.array(values + [0.0] * (64 - len(values))))
    assert codes[: len(values)].tolist() == [0, 0, 1, 1, 2, 4, 5, 5, 5, 0, 0]


def test_long_windows_and_fine_levels_still_match() -> None:
    fp = Fingerprinter(lo=np.zeros(64), step=np.full(64, 0.5), levels=32, window=16, top_s=32, salt="s")
    x = load_digits().data[5].astype(np.float64)
    assert np.array_equal(fp.fingerprint(x), fp.fingerprint(x.copy()))
    assert shared(fp.fingerprint(x), fp.fingerprint(load_digits().data[6].astype(np.float64))) < 8


def test_exact_hash_tells_repeats_from_the_slightest_change() -> None:
    fp = fingerprinter()
    x = load_digits().data[3].astype(np.float64)
    assert fp.exact(x) == fp.exact(x.copy())
    y = x.copy()
    y[7] += 1e-9
    assert fp.exact(y) != fp.exact(x)
    flipped = x + 1.0
    flipped[[3, 5]] *= -1.0  # two sign bits: they must not cancel out
    assert fp.exact(flipped) != fp.exact(x + 1.0)
    assert fp.exact(np.full(64, np.inf)) != fp.exact(np.full(64, -np.inf))
    assert fp.exact(np.full(64, np.nan)) == fp.exact(np.full(64, np.nan))  # bits, not values


def test_lookup_finds_stored_near_duplicates_and_forgets_evicted_ones() -> None:
    x = load_digits().data.astype(np.float64)
    fp = fingerprinter()
    index = FingerprintIndex(capacity=50, top_s=32, table_factor=2.0)
    first = index.probe(fp.fingerprint(x[0]))
    assert len(index.lookup(first, 12)) == 0  # empty index
    index.insert(first, exact=1.0, principal=7, actor=0, chain=0, ts=10.0)
    nudged = x[0].copy()
    nudged[20] += 3.0
    found = index.lookup(index.probe(fp.fingerprint(nudged)), 12)
    assert len(found) == 1
    assert found.principal.tolist() == [7] and found.chain.tolist() == [1] and found.ts.tolist() == [10.0]
    assert 12 <= int(found.shared()[0]) < 32  # one pixel crossed a bin: some windows changed
    same = index.lookup(first, 12)
    assert same.shared().tolist() == [32]
    for i in range(1, 60):  # push the first query out of the ring
        index.insert(index.probe(fp.fingerprint(x[i] + 100.0)), exact=0.0, principal=8, actor=0, chain=0, ts=11.0)
    assert len(index) == 50
    assert len(index.lookup(index.probe(fp.fingerprint(nudged)), 12)) == 0


def test_memory_per_stored_query_is_fixed_and_under_two_kilobytes() -> None:
    index = FingerprintIndex(capacity=10_000, top_s=32, table_factor=2.0)
    assert index.nbytes() == 0  # nothing allocated until the first insert
    fp = fingerprinter()
    index.insert(index.probe(fp.fingerprint(np.zeros(64))), exact=0.0, principal=1, actor=0, chain=0, ts=0.0)
    per_query = index.nbytes() / index.capacity
    assert per_query <= 2048
    assert index.size & (index.size - 1) == 0 and index.size <= 10_000 * 32 * 2


def test_stable_hash_is_keyed_and_reproducible() -> None:
    assert stable_hash(b"key_1") == stable_hash(b"key_1")
    assert stable_hash(b"key_1", b"a") != stable_hash(b"key_1", b"b")
    assert 0 <= stable_hash(b"x") < 2**63


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(DetectorError):
        FingerprintIndex(capacity=0, top_s=32, table_factor=2.0)
    with pytest.raises(DetectorError):
        Fingerprinter(lo=np.zeros(4), step=np.ones(4), levels=0, window=2, top_s=4, salt="")


def test_outside_counts_features_more_than_one_bin_out_of_range() -> None:
    fp = Fingerprinter(lo=np.zeros(4), step=np.full(4, 0.25), levels=4, window=2, top_s=4, salt="s")
    assert fp.outside(np.array([0.0, 0.5, 1.0, 0.99])) == 0.0
    assert fp.outside(np.array([-0.2, 1.2, 0.5, 0.5])) == 0.0, "within one bin of the range"
    assert fp.outside(np.array([-0.3, 1.3, 0.5, np.nan])) == 0.75
