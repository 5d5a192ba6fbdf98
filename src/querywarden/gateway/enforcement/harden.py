"""Output hardening: give a suspicious principal less of what the model knows.

Classifiers (applied to one probability vector at a time, in this order):

- ``noise``: calibrated noise. Gaussian noise with standard deviation ``noise`` is added
  to the log-probabilities and the vector renormalized; the top-1 class never changes, so
  a benign caller's answer stays right while the confidence values an extraction or
  inversion attack fits to become unreliable.
- ``reverse_sigmoid``: the reverse-sigmoid perturbation (Lee et al., 2019). Each
  probability ``y`` loses ``beta * (sigmoid(gamma * logit(y)) - 1/2)`` and the vector is
  renormalized. The perturbation is largest where the output is most confident, which
  poisons the gradients of a surrogate model trained on it. The top-1 class is kept.
- ``top_k``: only the k most likely classes keep their probability; the rest become 0.
- ``label_only``: a one-hot vector on the top-1 class (the shape stays, clients keep parsing).
- ``round``: probabilities rounded to k decimals.

LLM endpoints: ``harden_llm_request`` strips ``logprobs`` (or caps ``top_logprobs``),
drops ``logit_bias`` and ``echo``, before the request reaches the model. The answer has PII
redacted and, when the model declares protected passages (its system prompt), their
verbatim echoes too: ``protect`` puts the passages and the prompts the answer continues on
the spec, and ``sse_redactor`` builds the streaming redactor from it. Declared passages are
never echoed to anyone: a principal that is not hardened gets ``REDACT_ONLY``, which removes
their echoes and nothing else.

Parameters come from a decision's ``params``; ``HardenSpec.parse`` rejects unknown keys
with the allowed ones, so a policy typo is caught when the policy loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from querywarden.core.policy import DEFAULT_HARDEN
from querywarden.errors import PolicyError
from querywarden.text.protected import ProtectedText
from querywarden.text.stream import SseRedactor

FloatArray = npt.NDArray[np.float64]
_EPS = 1e-7


@dataclass(frozen=True, slots=True)
class HardenSpec:
    """Validated hardening parameters. ``None`` disables a step."""

    round: int | None = None
    top_k: int | None = None
    label_only: bool = False
    noise: float | None = None
    reverse_sigmoid: float | None = None
    """beta: how strongly confident outputs are pushed back."""
    gamma: float = 1.0
    top_logprobs: int = 0
    protected: ProtectedText | None = None
    """The model's protected passages, whose echoes are redacted from LLM answers (set by ``protect``)."""
    contexts: tuple[str, ...] = ()
    """The prompt each instance's answer continues (set by ``protect``)."""
    redact_only: bool = False
    """Only redact the protected passages' echoes: what every principal's answer gets (``REDACT_ONLY``)."""

    def sse_redactor(self) -> SseRedactor:
        """The streaming redactor for an LLM answer (choice 0 continues the first prompt)."""
        context = self.contexts[0] if self.contexts else ""
        return SseRedactor(self.protected, context=context, pii=not self.redact_only)

    @classmethod
    def parse(cls, params: Mapping[str, Any], *, source: str | None = None) -> HardenSpec:
        """A spec from a decision's params; an empty mapping means the default hardening."""
        if not params:
            params = DEFAULT_HARDEN
        allowed = ("round", "top_k", "label_only", "noise", "reverse_sigmoid", "gamma", "top_logprobs")
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise PolicyError(f"harden: unknown parameter(s) {unknown}; allowed: {', '.join(allowed)}", source=source)

        def count(name: str, minimum: int) -> int | None:
            v = params.get(name)
            if v is None:
                return None
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise PolicyError(f"harden: {name} must be an integer >= {minimum}, got {v!r}", source=source)
            return v

        def positive(name: str) -> float | None:
            v = params.get(name)
            if v is None:
                return None
            if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
                raise PolicyError(f"harden: {name} must be a positive number, got {v!r}", source=source)
            return float(v)

        label_only = params.get("label_only", False)
        if not isinstance(label_only, bool):
            raise PolicyError(f"harden: label_only must be true or false, got {label_only!r}", source=source)
        return cls(
            round=count("round", 0),
            top_k=count("top_k", 1),
            label_only=label_only,
            noise=positive("noise"),
            reverse_sigmoid=positive("reverse_sigmoid"),
            gamma=positive("gamma") or 1.0,
            top_logprobs=count("top_logprobs", 0) or 0,
        )


def harden_probabilities(probs: FloatArray, spec: HardenSpec, rng: np.random.Generator) -> FloatArray:
    """Harden one probability vector (or an ``(n, classes)`` batch, row by row)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2:
        return np.stack([harden_probabilities(row, spec, rng) for row in p]) if len(p) else p.copy()
    if p.ndim != 1 or p.size == 0:
        return p.copy()
    if p.size == 1:  # a single sigmoid output: treat as [1 - p, p] and give back the positive class
        return harden_probabilities(np.array([1.0 - p[0], p[0]]), spec, rng)[1:]
    top = int(np.argmax(p))
    out = p.copy()
    if spec.noise is not None:
        out = _keep_top(_noisy(out, spec.noise, rng), top)
    if spec.reverse_sigmoid is not None:
        out = _keep_top(reverse_sigmoid(out, spec.reverse_sigmoid, spec.gamma), top)
    if spec.label_only:
        out = np.zeros_like(out)
        out[top] = 1.0
    elif spec.top_k is not None and spec.top_k < out.size:
        keep = np.argpartition(out, -spec.top_k)[-spec.top_k :]
        masked = np.zeros_like(out)
        masked[keep] = out[keep]
        out = masked
    if spec.round is not None:
        out = np.round(out, spec.round)
        rivals = np.delete(out, top)
        if rivals.size and rivals.max() >= out[top]:  # rounding made a tie: keep the answer unambiguous
            out[top] = min(1.0, float(rivals.max()) + 10.0**-spec.round)
    return out


def reverse_sigmoid(p: FloatArray, beta: float, gamma: float) -> FloatArray:
    """The reverse-sigmoid perturbation, renormalized to sum to one."""
    y = np.clip(p, _EPS, 1.0 - _EPS)
    logit = np.log(y) - np.log1p(-y)
    perturbed = np.clip(y - beta * (1.0 / (1.0 + np.exp(-gamma * logit)) - 0.5), 0.0, None)
    total = perturbed.sum()
    if total <= 0:
        return np.full_like(p, 1.0 / p.size)
    return np.asarray(perturbed / total, dtype=np.float64)


def _noisy(p: FloatArray, scale: float, rng: np.random.Generator) -> FloatArray:
    logp = np.log(np.clip(p, _EPS, 1.0)) + rng.normal(0.0, scale, size=p.size)
    e = np.exp(logp - logp.max())
    return np.asarray(e / e.sum(), dtype=np.float64)


def _keep_top(p: FloatArray, top: int) -> FloatArray:
    """Swap values so the original top-1 class stays on top: benign callers keep their answer."""
    now = int(np.argmax(p))
    if now != top:
        p = p.copy()
        p[now], p[top] = p[top], p[now]
    return p


REDACT_ONLY = HardenSpec(redact_only=True)
"""For a principal the policy does not harden: its LLM answers keep everything but echoes of
the model's declared protected passages (the request and the logprobs are left alone)."""


class Prompted(Protocol):
    """An LLM request instance: a prompt, or chat messages."""

    @property
    def prompt(self) -> str | None: ...
    @property
    def messages(self) -> tuple[dict[str, str], ...] | None: ...


def protect(spec: HardenSpec, protected: ProtectedText | None, instances: Sequence[Prompted]) -> HardenSpec:
    """``spec`` with the model's protected passages and each instance's prompt (the last user turn of a chat)."""
    if protected is None:
        return spec
    return dataclasses.replace(spec, protected=protected, contexts=tuple(_prompt(i) for i in instances))


def _prompt(instance: Prompted) -> str:
    if instance.prompt is not None:
        return instance.prompt
    for message in reversed(instance.messages or ()):
        content = message.get("content")
        if message.get("role", "user") == "user" and isinstance(content, str):
            return content
    return ""


def harden_llm_request(body: dict[str, Any], spec: HardenSpec) -> bool:
    """Strip the leakage-prone options of an OpenAI-style request in place. True if it changed.

    Chat completions carry ``logprobs: bool`` plus ``top_logprobs: int``; legacy completions
    carry ``logprobs: int``. ``echo`` returns the prompt's own log-probabilities, so it goes
    too. ``logit_bias`` lets a caller steer and probe token probabilities; it is dropped.
    """
    changed = False
    cap = spec.top_logprobs
    for key in ("logit_bias", "echo"):
        if key in body:
            del body[key]
            changed = True
    if "top_logprobs" in body:
        current = body["top_logprobs"]
        if cap <= 0:
            del body["top_logprobs"]
            changed = True
        elif not isinstance(current, int) or current > cap:
            body["top_logprobs"] = cap
            changed = True
    if "logprobs" in body:
        lp = body["logprobs"]
        if cap <= 0:
            del body["logprobs"]
            body.pop("top_logprobs", None)
            changed = True
        elif isinstance(lp, int) and not isinstance(lp, bool) and lp > cap:
            body["logprobs"] = cap
            changed = True
    return changed


def strip_llm_logprobs(body: dict[str, Any]) -> bool:
    """Remove ``logprobs`` from every choice of a response: defence in depth for upstreams
    that return them even when not asked. True if anything was removed."""
    changed = False
    choices = body.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("logprobs") is not None:
                choice["logprobs"] = None
                changed = True
    return changed
