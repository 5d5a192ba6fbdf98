"""MinHash fingerprints: near-duplicate prompts agree, unrelated ones do not."""

from __future__ import annotations

import numpy as np

from querywarden.text.fingerprint import band_keys, minhash, shingles, similarity


def test_near_duplicates_score_higher_than_unrelated_prompts() -> None:
    a = minhash("What was the largest transaction of customer Alice Moreau on 2026-03-02 at the bakery?")
    b = minhash("What was the largest transaction of customer Alice Moreau on 2026-03-02 at the bakery")
    c = minhash("Write a short poem about autumn leaves falling on a quiet river at dusk")
    assert similarity(a, b) == 1.0  # punctuation does not change the word shingles
    assert similarity(a, c) < 0.2
    assert a.dtype == np.uint32 and a.size == 32


def test_signature_is_deterministic_and_band_keys_find_duplicates() -> None:
    text = "how do I reset my password for the mobile app"
    assert np.array_equal(minhash(text), minhash(text))
    keys = band_keys(minhash(text), 4)
    assert len(keys) == 4 and keys == band_keys(minhash(text + "  "), 4)
    assert not set(keys) & set(band_keys(minhash("transfer limits for business accounts abroad"), 4))


def test_short_prompts_get_character_shingles() -> None:
    assert any(s.startswith(b"#") for s in shingles("reset pwd"))
    assert not any(s.startswith(b"#") for s in shingles("one two three four five six seven eight"))
    assert similarity(minhash("reset password"), minhash("reset pasword")) > similarity(
        minhash("reset password"), minhash("card limits")
    )
