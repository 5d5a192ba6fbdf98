"""Which technique a boundary walk serves: evasion, or label-only membership inference.

HopSkipJump and the Boundary attack (evasion, AML.T0043) and label-only membership
inference (AML.T0024.000, e.g. ART's ``LabelOnlyDecisionBoundary``, which runs HopSkipJump
from every candidate record) send the very same walks: a random start, binary searches
towards a record, gradient estimates on the boundary. One walk alone cannot tell them
apart, and neither can the places it lingers: a single walk of either kind lingers at
several places more than a natural spacing apart on its way from the random start to the
record, so counting distinct probe sites names an evasion walk membership inference.

What differs is *which* records are walked from. An evasion attacker starts from the few
inputs it wants misclassified, its own data. A membership attacker must test many
candidate records, and a useful share of them are training records (it calibrates its
distance threshold on records it knows are members, then tests suspects). So when the
profile carries ``training_digests``, a walking principal that has queried at least
``member_records`` distinct exact training rows is named membership inference, and any
other walk evasion. Without digests, probe sites at many distinct places are the only
hint of many candidates, and they name membership inference as before.

Either way the runner-up is named in the evidence, so a reader sees both hypotheses.
"""

from __future__ import annotations

import numpy as np

from querywarden.core.atlas import ADVERSARIAL, MEMBERSHIP
from querywarden.core.profile import ModelProfile, row_digest
from querywarden.core.records import Interaction

MEMBER_RECORDS = 3
"""Distinct exact training rows a walking principal must have queried to be named membership
inference: one evasion target may be a training row by chance (duplicate records are common
in tabular data), three distinct ones are a candidate list."""

MAX_REMEMBERED = 8
"""Distinct training rows remembered per principal: enough to know the bar was passed."""


def training_digests(profile: ModelProfile) -> np.ndarray | None:
    """The profile's sorted training digests, or None when it carries none."""
    digests = profile.training_digests
    return None if digests is None or len(digests) == 0 else np.asarray(digests, dtype=np.uint64)


_last_digest: tuple[Interaction | None, int] = (None, 0)


def row_digest_of(interaction: Interaction) -> int:
    """``row_digest`` of the interaction's features, computed once per interaction however
    many detectors look the input up among the training rows (``boundary``, ``membership``
    and ``neardup`` each do). The caller has checked that the features exist."""
    global _last_digest
    last, key = _last_digest
    if interaction is not last:
        assert interaction.features is not None
        key = row_digest(interaction.features)
        _last_digest = (interaction, key)
    return key


def is_training_row(digests: np.ndarray, key: int) -> bool:
    """True when ``key`` (a ``row_digest``) is one of the sorted ``digests``."""
    i = int(digests.searchsorted(np.uint64(key)))
    return i < len(digests) and int(digests[i]) == key


def remember(rows: tuple[int, ...], key: int) -> tuple[int, ...]:
    """``rows`` with ``key`` added when new, holding at most ``MAX_REMEMBERED`` keys."""
    if key in rows or len(rows) >= MAX_REMEMBERED:
        return rows
    return (*rows, key)


def walk_technique(
    training_records: int, *, digests: bool, many_sites: bool, member_records: int = MEMBER_RECORDS
) -> tuple[str, str]:
    """(technique, runner-up) for a principal caught walking the decision boundary.

    ``training_records`` is how many distinct exact training rows it queried (meaningful
    only when ``digests``); ``many_sites`` says whether its probes sit at many distinct
    places, the only hint of many candidates when there are no digests.
    """
    if digests:
        if training_records >= member_records:
            return MEMBERSHIP, ADVERSARIAL
        return ADVERSARIAL, MEMBERSHIP
    if many_sites:
        return MEMBERSHIP, ADVERSARIAL
    return ADVERSARIAL, MEMBERSHIP
