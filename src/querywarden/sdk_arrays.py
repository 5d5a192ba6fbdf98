"""The SDK's array plumbing: model inputs and outputs to interactions, and hardened
outputs back into the model's own type.

Inputs and outputs may be numpy arrays, lists, pandas frames or PyTorch tensors. PyTorch
is recognised by the value's module, never imported to check, so nothing here needs it
installed; it is imported only to build a tensor from a hardened output, when the model
itself returned a tensor.

A float output matrix is hardened in one of two readings:

- rows that sum to 1 are probabilities and are hardened as they are;
- other rows are scores (logits): they are turned into probabilities with a softmax,
  hardened, and given back as log-probabilities, so ``softmax`` of what the caller gets
  is the hardened vector and the top class is unchanged. A class the hardening zeroed
  gets the logit ``ZERO_LOGIT`` (finite, so the caller's arithmetic stays finite).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from querywarden.core.records import Output
from querywarden.errors import QueryWardenError

FloatVector = npt.NDArray[np.float64]
ZERO_LOGIT = -100.0
"""The logit given to a class whose hardened probability is 0 (``exp(-100)`` is about 4e-44)."""


def is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def to_numpy(value: Any) -> np.ndarray | None:
    if is_torch(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype.itemsize < 4:  # float16, bfloat16 (numpy has no bfloat16)
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    if hasattr(value, "to_numpy"):  # pandas
        return np.asarray(value.to_numpy())
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype != object else None


def prompts_of(x: Any) -> list[str] | None:
    """The prompts when ``x`` is a string or a list of strings (a text model), else None."""
    if isinstance(x, str):
        return [x]
    if isinstance(x, list | tuple) and x and all(isinstance(p, str) for p in x):
        return list(x)
    return None


def is_batch(x: Any) -> bool:
    if isinstance(x, str):
        return False
    if isinstance(x, list | tuple) and x and isinstance(x[0], str):
        return True
    arr = to_numpy(x)
    return arr is not None and arr.ndim >= 2


def n_instances(x: Any) -> int:
    """How many instances the model input holds (one row each)."""
    prompts = prompts_of(x)
    if prompts is not None:
        return len(prompts)
    arr = to_numpy(x)
    if arr is None or arr.size == 0:
        return 0
    return 1 if arr.ndim <= 1 else len(arr)


def owners(principal: str | Sequence[str], x: Any) -> list[str]:
    """One principal per instance: ``principal`` repeated, or the batch's own list, checked."""
    if isinstance(principal, str):
        return [principal] * max(1, n_instances(x))
    given = list(principal)
    bad = [i for i, p in enumerate(given) if not isinstance(p, str) or not p]
    if bad:
        raise QueryWardenError(f"principal[{bad[0]}] must be a non-empty string, got {given[bad[0]]!r}")
    n = n_instances(x)
    if len(given) != n:
        raise QueryWardenError(
            f"principal names {len(given)} principals for a batch of {n} instances; give one per row"
        )
    return given


def rows(x: Any, out: np.ndarray | None) -> list[tuple[dict[str, Any], Output | None]]:
    """Pair each input instance with its output."""
    prompts = prompts_of(x)
    if prompts is not None:
        texts = [str(t) for t in out.ravel()] if out is not None and out.dtype.kind in "UO" else []
        return [({"prompt": p}, Output(text=texts[i]) if i < len(texts) else None) for i, p in enumerate(prompts)]
    arr = to_numpy(x)
    if arr is None or arr.dtype.kind not in "biuf" or arr.size == 0:
        return []
    matrix = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(len(arr), -1)
    matrix = matrix.astype(np.float64, copy=False)
    return [({"features": row}, _output(out, i, len(matrix))) for i, row in enumerate(matrix)]


def _output(out: np.ndarray | None, i: int, n: int) -> Output | None:
    if out is None:
        return None
    if out.ndim == 2 and len(out) == n:
        row = out[i].astype(np.float64)
        probs = row.size >= 2 and (row >= 0).all() and abs(row.sum() - 1.0) < 1e-3
        return Output(probabilities=row) if probs else Output(scores=row)
    if out.ndim == 1 and len(out) == n:
        value = out[i]
        if out.dtype.kind == "f":
            return Output(scores=np.array([float(value)]))
        return Output(label=value.item() if hasattr(value, "item") else value)
    if out.ndim == 1 and n == 1 and out.dtype.kind == "f":  # one instance, a flat probability vector
        return _output(out.reshape(1, -1), 0, 1)
    return None


def probability_rows(out: np.ndarray) -> bool:
    if out.dtype.kind != "f" or out.ndim not in (1, 2) or out.shape[-1] < 2:
        return False
    return bool((out >= 0).all() and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def hardenable(out: np.ndarray) -> bool:
    """A float ``(n, classes)`` matrix, or one vector, of probabilities or logits."""
    return out.dtype.kind == "f" and out.ndim in (1, 2) and out.shape[-1] >= 2 and bool(np.isfinite(out).all())


def harden_rows(
    out: np.ndarray, hardeners: Sequence[Callable[[FloatVector], FloatVector] | None], *, logits: bool
) -> FloatVector:
    """``out`` with each row passed through its hardener (a probability vector to a
    probability vector; None leaves the row as it is). Logit rows go through a softmax and
    come back as log-probabilities."""
    matrix = np.array(out, dtype=np.float64).reshape(len(hardeners), -1)
    for i, harden in enumerate(hardeners):
        if harden is None:
            continue
        row = matrix[i]
        if not logits:
            matrix[i] = harden(row)
            continue
        e = np.exp(row - row.max())
        p = harden(e / e.sum())
        matrix[i] = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), ZERO_LOGIT)
    return matrix.reshape(out.shape)


def like(original: Any, hardened: np.ndarray) -> Any:
    """``hardened`` in the type, dtype and shape of the model's own output (a tensor on its device)."""
    if is_torch(original):
        torch = importlib.import_module("torch")
        return torch.as_tensor(hardened, dtype=original.dtype, device=original.device).reshape(original.shape)
    if isinstance(original, np.ndarray):
        return hardened.astype(original.dtype, copy=False).reshape(original.shape)
    if isinstance(original, list):
        return hardened.tolist()
    return hardened
