"""The in-process guard: the response ladder for a model called from Python, no proxy needed.

    from querywarden import guard
    guarded = guard(model.predict_proba, model="credit-risk", config="querywarden.toml")
    probs = guarded(X, principal="key_1")          # possibly hardened
    # raises Blocked (403-equivalent) or Throttled (429-equivalent, with retry_after)

It is the gateway's logic without HTTP: the same engine (fed through the same bounded
queue and worker thread, so detection stays off the caller's path), the same store, the
same hardening and token buckets. Inputs and outputs may be numpy arrays, lists, pandas
frames or PyTorch tensors; a hardened output comes back in the type the model returned.
"""

from __future__ import annotations

import importlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from querywarden.core.records import Action, Client, Decision, Interaction, Output
from querywarden.errors import QueryWardenError

if TYPE_CHECKING:
    from querywarden.config import Config
    from querywarden.core.engine import Engine
    from querywarden.gateway.pipeline import EnginePipeline
    from querywarden.gateway.settings import GatewaySettings


class Blocked(QueryWardenError):
    """The principal is blocked. ``finding_id`` names the finding behind the decision."""

    def __init__(self, principal: str, finding_id: str | None, reason: str = "") -> None:
        self.principal = principal
        self.finding_id = finding_id
        detail = f" by finding {finding_id}" if finding_id else ""
        super().__init__(f"principal {principal} is blocked{detail}" + (f" ({reason})" if reason else ""))


class Throttled(QueryWardenError):
    """The principal is over its rate; retry after ``retry_after`` seconds."""

    def __init__(self, principal: str, retry_after: float, reason: str = "rate limited") -> None:
        self.principal = principal
        self.retry_after = retry_after
        super().__init__(f"principal {principal} is throttled: {reason}; retry after {retry_after:.1f}s")


class Guarded:
    """A model callable wrapped by QueryWarden. Create it with ``guard``."""

    def __init__(
        self,
        predict: Callable[..., Any],
        *,
        model: str,
        pipeline: EnginePipeline,
        settings: GatewaySettings,
        background: bool,
        owns: tuple[Any, ...] = (),
    ) -> None:
        from querywarden.gateway.enforcement.throttle import TokenBuckets

        self.predict = predict
        self.model = model
        self.pipeline = pipeline
        self.settings = settings
        self.background = background
        self.buckets = TokenBuckets(settings.max_throttled)
        self.rng = np.random.default_rng(settings.seed)
        self._owns = owns
        self._seq = itertools.count(1)
        self._prefix = f"sdk-{secrets.token_hex(3)}-"
        self._lock = threading.Lock()
        self.shadowed = 0
        if background:
            pipeline.start()

    @property
    def engine(self) -> Engine:
        return self.pipeline.engine

    def __call__(self, x: Any, *args: Any, principal: str, client_ip: str | None = None, **kwargs: Any) -> Any:
        """Call the model for ``principal``; raises ``Blocked`` or ``Throttled`` per its decision."""
        from querywarden.gateway.enforcement.harden import HardenSpec, harden_probabilities

        decision = self.pipeline.decision_for(principal)
        action = self._enforce(principal, decision)
        if self.settings.on_overflow == "closed" and not self.pipeline.has_room():
            raise Throttled(principal, 1.0, "detection queue full")
        result = self.predict(x, *args, **kwargs)
        out = _to_numpy(result)
        self._record(principal, x, out, client_ip)
        if action is not Action.HARDEN or out is None or not _probability_rows(out):
            return result  # labels and raw scores are returned as they are
        hardened = harden_probabilities(out, HardenSpec.parse(decision.params), self.rng)
        return _like(result, hardened)

    def _enforce(self, principal: str, decision: Decision) -> Action:
        from querywarden.gateway.enforcement.throttle import ThrottleSpec

        action = decision.action
        if action is not Action.ALLOW and decision.shadow:
            self.shadowed += 1
            return Action.ALLOW
        if action is Action.BLOCK:
            raise Blocked(principal, decision.finding_id, decision.reason)
        if action is Action.THROTTLE:
            key = principal
            if self.settings.throttle_scope == "actor":
                key = decision.actor or self.pipeline.actor_of(principal) or principal
            wait = self.buckets.take(key, ThrottleSpec.parse(decision.params), time.monotonic())
            if wait > 0:
                raise Throttled(principal, wait)
        return action

    def _record(self, principal: str, x: Any, out: np.ndarray | None, client_ip: str | None) -> None:
        from querywarden.gateway.pipeline import Ready

        rid = f"{self._prefix}{next(self._seq)}"
        ts = time.time()
        client = Client(ip=client_ip)
        items = []
        for i, (inputs, output) in enumerate(_rows(x, out)):
            items.append(
                Interaction(
                    id=rid if i == 0 and not _is_batch(x) else f"{rid}#{i}",
                    ts=ts,
                    principal=principal,
                    model=self.model,
                    client=client,
                    output=output,
                    source="sdk",
                    **inputs,
                )
            )
        if not items:
            return
        self.pipeline.submit(Ready(items))
        if not self.background:
            with self._lock:
                self.pipeline.drain()

    def flush(self, timeout: float | None = 10.0) -> None:
        """Wait until the engine has processed every call made so far."""
        self.pipeline.drain(timeout)

    def close(self) -> None:
        """Stop the engine worker and close what ``guard`` opened (the store)."""
        self.pipeline.stop()
        for resource in self._owns:
            resource.close()

    def __enter__(self) -> Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def guard(
    predict: Callable[..., Any],
    *,
    model: str,
    config: str | Path | Config | None = None,
    engine: Engine | None = None,
    store: Any = None,
    pipeline: EnginePipeline | None = None,
    settings: GatewaySettings | None = None,
    background: bool = True,
) -> Guarded:
    """Wrap a model callable (``predict_proba``, ``predict``, a PyTorch module) with QueryWarden.

    ``config`` is a config file or a loaded ``Config``; without it every registered detector
    runs on a profile drafted from the first call. Pass ``pipeline`` (another guard's
    ``.pipeline``) to share one engine between several models. ``store`` overrides the
    config's store URL. ``background=False`` runs detection inline before returning
    (deterministic; for tests and batch jobs).
    """
    from querywarden.gateway.pipeline import EnginePipeline
    from querywarden.gateway.settings import GatewaySettings

    settings = settings or GatewaySettings()
    owns: list[Any] = []
    if pipeline is None:
        cfg = _config(config)
        if store is None and cfg is not None and cfg.store_url is not None:
            from querywarden.store import open_store

            store = open_store(cfg.store_url, retention=cfg.retention)
            owns.append(store)
        if engine is None:
            engine = cfg.engine() if cfg is not None else _default_engine()
        pipeline = EnginePipeline.from_settings(engine, settings, store=store)
    return Guarded(predict, model=model, pipeline=pipeline, settings=settings, background=background, owns=tuple(owns))


def _config(config: str | Path | Config | None) -> Config | None:
    if config is None:
        return None
    if isinstance(config, str | Path):
        from querywarden.config import load_config

        return load_config(config)
    return config


def _default_engine() -> Engine:
    from querywarden.core.engine import Engine
    from querywarden.defaults import default_detectors

    return Engine({}, detectors=default_detectors())


# -- array plumbing ---------------------------------------------------------------------------
def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _to_numpy(value: Any) -> np.ndarray | None:
    if _is_torch(value):
        return np.asarray(value.detach().cpu().numpy())
    if hasattr(value, "to_numpy"):  # pandas
        return np.asarray(value.to_numpy())
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype != object else None


def _is_batch(x: Any) -> bool:
    if isinstance(x, str):
        return False
    if isinstance(x, list | tuple) and x and isinstance(x[0], str):
        return True
    arr = _to_numpy(x)
    return arr is not None and arr.ndim >= 2


def _rows(x: Any, out: np.ndarray | None) -> list[tuple[dict[str, Any], Output | None]]:
    """Pair each input instance with its output."""
    if isinstance(x, str):
        prompts: list[str] | None = [x]
    elif isinstance(x, list | tuple) and x and all(isinstance(p, str) for p in x):
        prompts = list(x)
    else:
        prompts = None
    if prompts is not None:
        texts = [str(t) for t in out.ravel()] if out is not None and out.dtype.kind in "UO" else []
        return [({"prompt": p}, Output(text=texts[i]) if i < len(texts) else None) for i, p in enumerate(prompts)]
    arr = _to_numpy(x)
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


def _probability_rows(out: np.ndarray) -> bool:
    if out.dtype.kind != "f" or out.ndim not in (1, 2) or out.shape[-1] < 2:
        return False
    return bool((out >= 0).all() and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def _like(original: Any, hardened: np.ndarray) -> Any:
    """``hardened`` in the type (and dtype) of the model's own output."""
    if _is_torch(original):
        torch = importlib.import_module("torch")
        return torch.as_tensor(hardened, dtype=original.dtype, device=original.device)
    if isinstance(original, np.ndarray):
        return hardened.astype(original.dtype, copy=False).reshape(original.shape)
    if isinstance(original, list):
        return hardened.tolist()
    return hardened


__all__ = ["Blocked", "Guarded", "Throttled", "guard"]
