"""Naming boundary walks: evasion versus label-only membership inference.

A digits classifier whose profile carries its training digests. Evasion walks go from
records the attacker holds (held-out digits) towards the boundary; label-only membership
inference queries each candidate record (training rows among them) and walks from it.
The walks are the same HopSkipJump-style walk, so only the walked records tell them apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier

from digits_victim import digits_data, digits_mlp, digits_profile, feed
from querywarden.core.atlas import ADVERSARIAL, MEMBERSHIP
from querywarden.core.detector import Detector
from querywarden.core.profile import ModelProfile, row_digests
from querywarden.core.records import Severity
from querywarden.detectors.boundary import BoundaryDetector
from querywarden.detectors.membership import MembershipDetector
from querywarden.detectors.neardup import NearDuplicateDetector
from querywarden.detectors.walk_naming import walk_technique
from test_boundary import hop_skip_jump

Victim = tuple[ModelProfile, MLPClassifier, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Victim:
    x, y = digits_data()
    model, profile = digits_mlp(), digits_profile(training_digests=row_digests(x[:1000]))
    return profile, model, x[1400:], y[1400:], x[:1000]


def _walks(model: MLPClassifier, records: np.ndarray, starts: np.ndarray, rounds: int) -> np.ndarray:
    """Each record queried, then walked from (as ART's HopSkipJump does per record), each walk
    starting at the first of ``starts`` the model puts in another class."""
    labels = model.predict(records)
    start_labels = model.predict(starts)
    parts = []
    for i, record in enumerate(records):
        start = starts[int(np.flatnonzero(start_labels != labels[i])[0])]
        parts.append(record[None])
        parts.append(hop_skip_jump(model, record, start, rounds=rounds, seed=i))
    return np.vstack(parts)


def _detectors(profile: ModelProfile) -> list[Detector]:
    return [
        BoundaryDetector(profile=profile),
        MembershipDetector(profile=profile, probed_records=2),
        NearDuplicateDetector(profile=profile, min_hits=24),
    ]


def test_the_rule_names_walks_from_training_records_membership_inference() -> None:
    assert walk_technique(3, digests=True, many_sites=False) == (MEMBERSHIP, ADVERSARIAL)
    assert walk_technique(2, digests=True, many_sites=True) == (ADVERSARIAL, MEMBERSHIP)
    assert walk_technique(0, digests=False, many_sites=True) == (MEMBERSHIP, ADVERSARIAL)
    assert walk_technique(0, digests=False, many_sites=False) == (ADVERSARIAL, MEMBERSHIP)
    assert walk_technique(1, digests=True, many_sites=False, member_records=1) == (MEMBERSHIP, ADVERSARIAL)


def test_evasion_walks_from_held_out_records_are_never_named_membership_inference(digits: Victim) -> None:
    profile, model, pool, _, _ = digits
    walks = _walks(model, pool[[3, 40, 77]], pool[200:], rounds=25)
    for det in _detectors(profile):
        signals = [s for _, s in feed(det, model, walks, "evader") if s.severity >= Severity.MEDIUM]
        assert signals, det.name
        assert all(s.technique == ADVERSARIAL for s in signals), (det.name, [s.evidence for s in signals])
        assert signals[0].evidence["runner_up"] == MEMBERSHIP


def test_walks_from_a_list_of_training_records_are_membership_inference(digits: Victim) -> None:
    profile, model, pool, _, train = digits
    known = train[[5, 50, 95, 140, 185]]
    # ART's label-only attack first sends the members it knows, then walks from each
    walks = np.vstack([known, _walks(model, known, pool[200:], rounds=6)])
    for det in _detectors(profile):
        signals = [s for _, s in feed(det, model, walks, "mia") if s.severity >= Severity.MEDIUM]
        assert signals, det.name
        assert signals[0].technique == MEMBERSHIP, (det.name, signals[0].evidence)
        assert signals[0].evidence["runner_up"] == ADVERSARIAL
        assert signals[0].evidence["training_records"] >= 3


def test_a_walker_named_evasion_is_named_again_when_its_candidates_turn_out_to_be_training_records(
    digits: Victim,
) -> None:
    profile, model, pool, _, train = digits
    first = _walks(model, pool[[7]], pool[200:], rounds=12)  # one held-out record: nothing says membership yet
    then = _walks(model, train[[11, 111, 211, 311]], pool[200:], rounds=4)
    for det in (NearDuplicateDetector(profile=profile, min_hits=24), MembershipDetector(profile=profile)):
        signals = [s for _, s in feed(det, model, np.vstack([first, then]), "mia") if s.severity >= Severity.MEDIUM]
        techniques = [s.technique for s in signals]
        assert techniques[0] == ADVERSARIAL, det.name
        assert MEMBERSHIP in techniques, det.name
        renamed = next(s for s in signals if s.technique == MEMBERSHIP)
        assert renamed.evidence["runner_up"] == ADVERSARIAL


def test_without_digests_probing_at_many_places_still_names_membership_inference(digits: Victim) -> None:
    profile, model, pool, _, _ = digits
    bare = ModelProfile(
        id=profile.id,
        input_kind=profile.input_kind,
        n_features=profile.n_features,
        shape=profile.shape,
        ranges=profile.ranges,
        classes=profile.classes,
        reference=profile.reference,
    )
    det = MembershipDetector(profile=bare, probed_records=2)
    walks = _walks(model, pool[[20, 45, 70, 95]], pool[200:], rounds=6)
    signals = [s for _, s in feed(det, model, walks, "mia")]
    assert signals and signals[0].technique == MEMBERSHIP
    assert "training_records" not in signals[0].evidence
