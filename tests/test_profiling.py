"""Drafting model profiles from traffic, and rendering them as config tables."""

from __future__ import annotations

import gzip
import tomllib
from pathlib import Path

import numpy as np

from querywarden.config import load_config
from querywarden.core.records import InputKind, Interaction, Output
from querywarden.core.traffic_encode import encode
from querywarden.profiling import ProfileDrafter, infer_profiles, render_toml

MIXED = Path(__file__).parent / "data" / "replay" / "mixed.jsonl"


def write_traffic(path: Path, interactions: list[Interaction], extra: bytes = b"") -> None:
    body = b"\n".join(encode(i) for i in interactions) + b"\n" + extra
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(body)
    else:
        path.write_bytes(body)


def tabular(n: int, rng: np.random.Generator) -> list[Interaction]:
    out = []
    for i in range(n):
        x = np.array([rng.uniform(0, 10), rng.normal(50, 5), float(rng.integers(0, 2))])
        probs = np.array([0.2, 0.5, 0.3])
        out.append(Interaction(id=str(i), ts=float(i), principal="p", model="credit", features=x,
                               output=Output(probabilities=probs)))  # fmt: skip
    return out


def test_tabular_profile_from_quantiles_with_margin() -> None:
    drafter = ProfileDrafter(sample=2000)
    rng = np.random.default_rng(0)
    for it in tabular(3000, rng):
        drafter.observe(it)
    assert drafter.count("credit") == 2000  # bounded sample
    p = drafter.draft("credit")
    assert p.inferred and p.input_kind is InputKind.TABULAR and p.n_features == 3
    assert p.classes == ("0", "1", "2") and p.output_kind == "probabilities"
    assert p.ranges is not None
    (lo0, hi0), (lo1, hi1), (lo2, hi2) = p.ranges
    assert -1.5 < lo0 < 0.1 and 9.9 < hi0 < 11.5
    assert 30 < lo1 < 40 and 60 < hi1 < 70
    assert lo2 < 0 and 0.05 < -lo2 < 0.2 and 1 < hi2 < 1.2


def test_an_outlier_does_not_widen_the_ranges() -> None:
    drafter = ProfileDrafter()
    rng = np.random.default_rng(1)
    for it in tabular(1000, rng):
        drafter.observe(it)
    drafter.observe(Interaction(id="x", ts=1.0, principal="a", model="credit", features=np.array([1e6, 50, 1])))
    ranges = drafter.draft("credit").ranges
    assert ranges is not None and ranges[0][1] < 12


def test_image_text_and_labels() -> None:
    drafter = ProfileDrafter()
    rng = np.random.default_rng(2)
    for i in range(50):
        drafter.observe(Interaction(id=str(i), ts=1.0, principal="p", model="digits",
                                    features=rng.uniform(0, 1, 784), output=Output(label=int(i % 10))))  # fmt: skip
        drafter.observe(Interaction(id=str(i), ts=1.0, principal="p", model="chat",
                                    prompt="hi", output=Output(text="hello")))  # fmt: skip
    digits, chat = drafter.draft("digits"), drafter.draft("chat")
    assert digits.input_kind is InputKind.IMAGE and digits.shape == (28, 28) and digits.n_features == 784
    assert digits.classes == tuple(str(i) for i in range(10)) and digits.output_kind == "label"
    assert chat.input_kind is InputKind.TEXT and chat.output_kind == "text" and chat.n_features is None


def test_infer_from_a_gzip_file_counts_rejects_and_finds_late_models(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    late = Interaction(id="late", ts=9.0, principal="q", model="fraud", features=np.array([1.0, 2.0]))
    path = tmp_path / "t.jsonl.gz"
    write_traffic(path, [*tabular(300, rng), late], extra=b'{"broken\n')
    run = infer_profiles(path, sample=100)
    assert sorted(run.profiles) == ["credit", "fraud"]
    assert run.counts == {"credit": 100, "fraud": 1}
    assert run.rejects == 1 and run.lines == 302
    assert run.profiles["fraud"].n_features == 2


def test_rendered_toml_loads_as_a_config(tmp_path: Path) -> None:
    run = infer_profiles(MIXED)
    text = render_toml(run.profiles.values(), source="mixed.jsonl")
    assert text.startswith("# Model profiles drafted from mixed.jsonl")
    config = tmp_path / "qw.toml"
    config.write_text(text)
    loaded = load_config(config).profiles["credit"]
    assert loaded.n_features == 3 and loaded.ranges == run.profiles["credit"].ranges
    assert tomllib.loads(text)["models"]["credit"]["classes"] == ["0", "1"]
    # without profiles, the unknown-model and wrong-count lines are valid traffic
    assert run.rejects == 7 and run.counts["credit"] == 131
    assert sorted(run.profiles) == ["credit", "fraud"]
