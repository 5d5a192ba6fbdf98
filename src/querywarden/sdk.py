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

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from querywarden.core.records import Action, Client, Decision, Interaction
from querywarden.errors import QueryWardenError
from querywarden.sdk_arrays import harden_rows, hardenable, is_batch, like, owners, probability_rows, rows, to_numpy

if TYPE_CHECKING:
    from querywarden.config import Config
    from querywarden.core.engine import Engine
    from querywarden.gateway.pipeline import EnginePipeline
    from querywarden.gateway.settings import GatewaySettings


class Blocked(QueryWardenError):
    """The principal is blocked. ``finding_id`` names the finding behind the decision."""

    def __init__(self, principal: str, finding_id: str | None, reason: str = "", rows: tuple[int, ...] = ()) -> None:
        self.principal = principal
        self.finding_id = finding_id
        self.rows = rows
        """With one principal per row: the rows of this principal (drop them and call again)."""
        detail = f" by finding {finding_id}" if finding_id else ""
        super().__init__(f"principal {principal} is blocked{detail}" + (f" ({reason})" if reason else ""))


class Throttled(QueryWardenError):
    """The principal is over its rate; retry after ``retry_after`` seconds."""

    def __init__(
        self, principal: str, retry_after: float, reason: str = "rate limited", rows: tuple[int, ...] = ()
    ) -> None:
        self.principal = principal
        self.retry_after = retry_after
        self.rows = rows
        """With one principal per row: the rows of this principal (drop them and call again)."""
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
        logits: bool = True,
        owns: tuple[Any, ...] = (),
    ) -> None:
        from querywarden.gateway.enforcement.throttle import TokenBuckets

        self.predict = predict
        self.model = model
        self.pipeline = pipeline
        self.settings = settings
        self.background = background
        self.logits = logits
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

    def __call__(
        self, x: Any, *args: Any, principal: str | Sequence[str], client_ip: str | None = None, **kwargs: Any
    ) -> Any:
        """Call the model for ``principal``; raises ``Blocked`` or ``Throttled`` per its decision.

        ``principal`` is one principal for the whole call, or one per instance (row) when a
        batch gathers several callers' requests: every principal's decision applies before
        the model runs, and only the rows of hardened principals are hardened.
        """
        from querywarden.gateway.enforcement.harden import HardenSpec, harden_probabilities

        per_row = owners(principal, x)
        decisions = {p: self.pipeline.decision_for(p) for p in dict.fromkeys(per_row)}
        actions = self._enforce(decisions, per_row)
        if self.settings.on_overflow == "closed" and not self.pipeline.has_room():
            raise Throttled(per_row[0], 1.0, "detection queue full")
        result = self.predict(x, *args, **kwargs)
        out = to_numpy(result)
        self._record(per_row, x, out, client_ip)
        if out is None or Action.HARDEN not in actions.values() or not hardenable(out):
            return result  # labels and texts are returned as they are
        if out.ndim == 1 and len(per_row) != 1:
            return result  # one value per instance (labels, scores): nothing to harden
        logits = not probability_rows(out)
        if logits and not self.logits:
            return result  # embeddings, regression values: not class scores
        hardeners = {
            p: partial(harden_probabilities, spec=HardenSpec.parse(d.params), rng=self.rng)
            for p, d in decisions.items()
            if actions[p] is Action.HARDEN
        }
        n = len(out) if out.ndim == 2 else 1
        if len(per_row) != n:  # the rows do not line up with the instances: harden them all
            per_row = [next(iter(hardeners))] * n
        return like(result, harden_rows(out, [hardeners.get(p) for p in per_row], logits=logits))

    def _enforce(self, decisions: dict[str, Decision], per_row: list[str]) -> dict[str, Action]:
        """Each principal's action; raises for the first blocked, then the first throttled one."""
        from querywarden.gateway.enforcement.throttle import ThrottleSpec

        def rows_of(principal: str) -> tuple[int, ...]:
            return tuple(i for i, p in enumerate(per_row) if p == principal) if len(decisions) > 1 else ()

        actions: dict[str, Action] = {}
        for principal, decision in decisions.items():
            action = decision.action
            if action is not Action.ALLOW and decision.shadow:
                self.shadowed += 1
                action = Action.ALLOW
            if action is Action.BLOCK:
                raise Blocked(principal, decision.finding_id, decision.reason, rows_of(principal))
            actions[principal] = action
        for principal, decision in decisions.items():
            if actions[principal] is Action.THROTTLE:
                key = principal
                if self.settings.throttle_scope == "actor":
                    key = decision.actor or self.pipeline.actor_of(principal) or principal
                wait = self.buckets.take(key, ThrottleSpec.parse(decision.params), time.monotonic())
                if wait > 0:
                    raise Throttled(principal, wait, rows=rows_of(principal))
        return actions

    def _record(self, per_row: list[str], x: Any, out: np.ndarray | None, client_ip: str | None) -> None:
        from querywarden.gateway.pipeline import Ready

        rid = f"{self._prefix}{next(self._seq)}"
        ts = time.time()
        client = Client(ip=client_ip)
        items = []
        for i, (inputs, output) in enumerate(rows(x, out)):
            items.append(
                Interaction(
                    id=rid if i == 0 and not is_batch(x) else f"{rid}#{i}",
                    ts=ts,
                    principal=per_row[min(i, len(per_row) - 1)],
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
    logits: bool = True,
) -> Guarded:
    """Wrap a model callable (``predict_proba``, ``predict``, a PyTorch module) with QueryWarden.

    ``config`` is a config file or a loaded ``Config``; without it every registered detector
    runs on a profile drafted from the first call. Pass ``pipeline`` (another guard's
    ``.pipeline``) to share one engine between several models. ``store`` overrides the
    config's store URL. ``background=False`` runs detection inline before returning
    (deterministic; for tests and batch jobs). A float output whose rows do not sum to 1 is
    read as class scores (logits) and hardened through a softmax; ``logits=False`` returns
    such outputs as they are (embeddings, regression values).
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
    return Guarded(
        predict,
        model=model,
        pipeline=pipeline,
        settings=settings,
        background=background,
        logits=logits,
        owns=tuple(owns),
    )


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


__all__ = ["Blocked", "Guarded", "Throttled", "guard"]
