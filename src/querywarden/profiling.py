"""Drafting model profiles from traffic, for ``querywarden profile`` and config-less ``replay``.

A drafted profile is a starting point for a person to review, not ground truth: its
ranges come from the traffic seen, which may already hold an attacker's queries. That is
why ranges are taken at inner quantiles (an outlier does not widen them) plus a margin, and
why every drafted profile carries ``inferred=True`` and says so when rendered.

What is inferred, per model:
- input kind: ``text`` for prompts and messages; ``image`` for square-sized feature
  vectors (28x28, 32x32x3, ...) whose values stay in [0, 1] or [0, 255]; else ``tabular``;
- the feature count (the most common one seen) and an image's shape;
- per-feature ranges from the 0.5% and 99.5% quantiles, widened by 10% of their width;
- classes from the probability vector's length, or from the labels seen;
- output kind: the richest output field seen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from querywarden.config_text import toml_value
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction
from querywarden.core.traffic import DEFAULT_MODEL, TrafficParser
from querywarden.errors import TrafficError
from querywarden.reference import open_text_or_gzip

SAMPLE_PER_MODEL = 5_000
"""Interactions per model that a draft is based on."""

_QUANTILES = (0.005, 0.995)
_MARGIN = 0.10
_OUTPUT_ORDER = ("probabilities", "scores", "logprobs", "text", "label")
_KNOWN_IMAGE_SHAPES = {784: (28, 28), 1024: (32, 32), 3072: (32, 32, 3), 4096: (64, 64), 12288: (64, 64, 3)}


@dataclass(slots=True)
class _Seen:
    interactions: int = 0
    text: int = 0
    dims: Counter[int] = field(default_factory=Counter)
    rows: list[np.ndarray] = field(default_factory=list)
    n_probabilities: Counter[int] = field(default_factory=Counter)
    labels: set[str] = field(default_factory=set)
    outputs: Counter[str] = field(default_factory=Counter)


class ProfileDrafter:
    """Learns a draft profile per model from up to ``sample`` interactions each."""

    def __init__(self, sample: int = SAMPLE_PER_MODEL) -> None:
        self.sample = sample
        self._seen: dict[str, _Seen] = {}

    def wants(self, model: str) -> bool:
        seen = self._seen.get(model)
        return seen is None or seen.interactions < self.sample

    def observe(self, interaction: Interaction) -> None:
        seen = self._seen.setdefault(interaction.model, _Seen())
        if seen.interactions >= self.sample:
            return
        seen.interactions += 1
        if interaction.features is not None:
            seen.dims[interaction.features.shape[0]] += 1
            seen.rows.append(interaction.features)
        elif interaction.prompt is not None or interaction.messages is not None:
            seen.text += 1
        out = interaction.output
        if out is None:
            return
        for name in _OUTPUT_ORDER:
            if getattr(out, name) is not None:
                seen.outputs[name] += 1
        if out.probabilities is not None:
            seen.n_probabilities[out.probabilities.shape[0]] += 1
        if out.label is not None and len(seen.labels) < 1000:
            seen.labels.add(str(out.label))

    def models(self) -> list[str]:
        return sorted(self._seen)

    def count(self, model: str) -> int:
        return self._seen[model].interactions

    def draft(self, model: str) -> ModelProfile:
        seen = self._seen[model]
        output_kind = next((k for k in _OUTPUT_ORDER if seen.outputs[k]), "probabilities")
        if seen.text >= sum(seen.dims.values()):
            return ModelProfile(id=model, input_kind=InputKind.TEXT, output_kind=output_kind, inferred=True)
        dim = seen.dims.most_common(1)[0][0]
        sample = np.vstack([r for r in seen.rows if r.shape[0] == dim])
        lo, hi = np.quantile(sample, _QUANTILES, axis=0)
        margin = np.maximum((hi - lo) * _MARGIN, np.maximum(np.abs(lo), np.abs(hi)) * 1e-3 + 1e-9)
        ranges = tuple((_round(a), _round(b)) for a, b in zip(lo - margin, hi + margin, strict=True))
        shape = _image_shape(dim, sample)
        return ModelProfile(
            id=model,
            input_kind=InputKind.IMAGE if shape else InputKind.TABULAR,
            n_features=dim,
            shape=shape,
            ranges=None if shape else ranges,
            classes=_classes(seen),
            output_kind=output_kind,
            inferred=True,
        )

    def drafts(self) -> dict[str, ModelProfile]:
        return {m: self.draft(m) for m in self.models()}


def _round(x: float) -> float:
    """Six significant digits: enough for a range, short enough to read."""
    return float(f"{x:.6g}")


def _image_shape(dim: int, sample: np.ndarray) -> tuple[int, ...] | None:
    shape = _KNOWN_IMAGE_SHAPES.get(dim)
    if shape is None:
        side = math.isqrt(dim)
        if side < 8 or side * side != dim:
            return None
        shape = (side, side)
    lo, hi = float(sample.min()), float(sample.max())
    return shape if lo >= 0 and (hi <= 1 or hi <= 255) else None


def _classes(seen: _Seen) -> tuple[str, ...] | None:
    if seen.n_probabilities:
        k = seen.n_probabilities.most_common(1)[0][0]
        if len(seen.labels) == k and not all(label.isdigit() for label in seen.labels):
            return tuple(sorted(seen.labels))
        return tuple(str(i) for i in range(k))
    if seen.labels:
        ordered = sorted(seen.labels, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
        return tuple(ordered)
    return None


# -- reading a traffic file --------------------------------------------------------------------
class _ModelOnly(msgspec.Struct):
    model: str | None = None


_MODEL_ONLY = msgspec.json.Decoder(_ModelOnly)


@dataclass(slots=True)
class InferenceRun:
    profiles: dict[str, ModelProfile]
    counts: dict[str, int]
    """How many interactions each draft is based on."""
    rejects: int
    lines: int


def infer_profiles(path: Path, sample: int = SAMPLE_PER_MODEL) -> InferenceRun:
    """Draft a profile for every model in a traffic file (plain or .gz), in one pass.

    Only the first ``sample`` interactions of each model are parsed fully; the rest of the
    file is only scanned for model names, so a model that first appears late is not missed.
    Bad lines are counted here and reported by whoever replays the file.
    """
    drafter = ProfileDrafter(sample)
    parser = TrafficParser(None, str(path))
    rejects = 0
    lineno = 0
    with open_text_or_gzip(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                model = _MODEL_ONLY.decode(line).model or DEFAULT_MODEL
            except (msgspec.DecodeError, UnicodeDecodeError):
                rejects += 1
                continue
            if not drafter.wants(model):
                continue
            try:
                for interaction in parser.parse(line, lineno):
                    drafter.observe(interaction)
            except TrafficError:
                rejects += 1
    models = drafter.models()
    return InferenceRun(drafter.drafts(), {m: drafter.count(m) for m in models}, rejects, lineno)


# -- rendering -----------------------------------------------------------------------------------
def render_toml(profiles: Iterable[ModelProfile], *, source: str | None = None) -> str:
    """``[models.<id>]`` tables for a config file, with a note to review drafted values."""
    out: list[str] = []
    if source is not None:
        out.append(f"# Model profiles drafted from {source} by `querywarden profile`.")
        out.append("# Review them: ranges come from the traffic seen, which may include attacks.")
        out.append("")
    for p in profiles:
        key = p.id if p.id.replace("_", "").replace("-", "").isalnum() else toml_value(p.id)
        out.append(f"[models.{key}]")
        out.append(f"input_kind = {toml_value(p.input_kind.value)}")
        if p.n_features is not None:
            out.append(f"n_features = {p.n_features}")
        if p.shape is not None:
            out.append(f"shape = {toml_value(list(p.shape))}")
        if p.feature_names is not None:
            out.append(f"feature_names = {toml_value(list(p.feature_names))}")
        if p.ranges is not None:
            out.append("ranges = [")
            out.extend(f"    [{toml_value(lo)}, {toml_value(hi)}]," for lo, hi in p.ranges)
            out.append("]")
        if p.classes is not None:
            out.append(f"classes = {toml_value(list(p.classes))}")
        out.append(f"output_kind = {toml_value(p.output_kind)}")
        out.append("")
    return "\n".join(out)


__all__ = ["SAMPLE_PER_MODEL", "InferenceRun", "ProfileDrafter", "infer_profiles", "render_toml"]
