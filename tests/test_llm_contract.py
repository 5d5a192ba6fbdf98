"""The detector contract on chat traffic, for every LLM detector.

The conformance suite drives every detector with a numeric image stream; these checks
drive the LLM detectors with what they are for: benign chat from many customers mixed with
each attack, some of it attributed to an actor. Snapshot round-trip, deterministic replay,
odd records, bounded memory, and the contract's severity promise on benign chat.
"""

from __future__ import annotations

import itertools

import msgspec
import pytest

import llm_chat as chat
from querywarden.core.detector import Detector
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Output, Severity, Signal
from querywarden.plugins import load_detectors

LLM = sorted(n for n in load_detectors() if n.startswith("llm_"))
PROFILE = ModelProfile(id="assistant", input_kind=InputKind.TEXT, output_kind="text")


def _make(name: str, **params: object) -> Detector:
    cls = load_detectors()[name]
    return cls(profile=PROFILE, **{k: v for k, v in params.items() if k in cls.param_names()})


def _mixed(seed: int) -> list[Interaction]:
    attacks: list[Interaction] = [
        *chat.enumeration("enum", 40, seed),
        *chat.divergence("div", 12, seed),
        *chat.logit_sweep("bias-a", 30, seed, actor="ring"),
        *chat.logit_sweep("bias-b", 30, seed + 1, actor="ring"),
        *chat.system_probe("thief", 6, leak=True),
        *chat.leaking("leak", 20, seed),
        *chat.distillation(["d1", "d2"], 120, seed, actor="farm"),
    ]
    return sorted(chat.benign(seed, customers=20, per_customer=15) + attacks, key=lambda it: (it.ts, it.id))


def _run(det: Detector, stream: list[Interaction]) -> list[Signal]:
    return [s for it in stream for s in det.update(it)]


@pytest.fixture(scope="module")
def mixed() -> list[Interaction]:
    return _mixed(5)


def test_all_six_are_registered() -> None:
    assert LLM == ["llm_distill", "llm_extraction", "llm_leakage", "llm_logprobs", "llm_sysprompt", "llm_templated"]


@pytest.mark.parametrize("name", LLM)
def test_each_detector_finds_its_attack_in_mixed_traffic(name: str, mixed: list[Interaction]) -> None:
    attacker = {
        "llm_templated": "enum",
        "llm_extraction": "div",
        "llm_logprobs": "bias-a",
        "llm_sysprompt": "thief",
        "llm_leakage": "leak",
        "llm_distill": "d1",
    }[name]
    signals = _run(_make(name), mixed)
    loud = {s.principal for s in signals if s.severity >= Severity.MEDIUM}
    assert attacker in loud
    assert not {p for p in loud if p.startswith("cust-")}, "a benign customer reached medium"


@pytest.mark.parametrize("name", LLM)
def test_snapshot_round_trip_and_deterministic_replay(name: str, mixed: list[Interaction]) -> None:
    head, tail = mixed[: len(mixed) // 2], mixed[len(mixed) // 2 :]
    original = _make(name)
    _run(original, head)
    restored = original.clone()
    restored.restore(original.snapshot())
    assert restored.state_size() == original.state_size() > 0
    a, b = _run(original, tail), _run(restored, tail)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    assert msgspec.json.encode(_run(_make(name), mixed)) == msgspec.json.encode(_run(_make(name), mixed))


@pytest.mark.parametrize("name", LLM)
def test_odd_records_do_not_crash(name: str) -> None:
    det = _make(name)
    odd = [
        Interaction(id="a", ts=1.0, principal="x", model="assistant"),
        Interaction(id="b", ts=2.0, principal="x", model="assistant", prompt=""),
        Interaction(id="c", ts=3.0, principal="x", model="assistant", messages=()),
        Interaction(id="d", ts=4.0, principal="x", model="assistant", messages=({"role": "system", "content": "hi"},)),
        Interaction(id="e", ts=5.0, principal="x", model="assistant", prompt="hello", output=Output()),
        Interaction(
            id="f", ts=6.0, principal="x", model="assistant", prompt="x" * 50_000, output=Output(text="{" * 50_000)
        ),
        Interaction(
            id="g",
            ts=0.5,
            principal="x",
            model="assistant",
            prompt="hi",
            params={"logit_bias": "abc", "top_logprobs": "5", "logprobs": None},
        ),
        Interaction(id="h", ts=7.0, principal="x", model="assistant", params={"logit_bias": {"1": "x", "2": None}}),
        Interaction(id="i", ts=8.0, principal="x", model="assistant", messages=({"content": "no role"},)),
    ]
    for it in odd:
        assert isinstance(det.update(it), list)


@pytest.mark.parametrize("name", LLM)
def test_state_is_capped_with_many_principals(name: str) -> None:
    det = _make(name, max_principals=500, max_templates=256, max_spans=1000)
    stream = list(
        itertools.chain(
            chat.enumeration("e", 300),
            chat.leaking("l", 300),
            chat.distillation(["d"], 300),
            chat.logit_sweep("b", 300),
        )
    )
    sizes = []
    for i, it in enumerate(stream * 5):
        det.update(msgspec.structs.replace(it, principal=f"k{i}", actor=None))
        if i + 1 in (3000, 6000):
            sizes.append(len(det.snapshot()))
    assert det.state_size() <= 500
    assert sizes[1] <= sizes[0] * 1.15 + 65_536, sizes


@pytest.mark.parametrize("name", LLM)
def test_benign_chat_never_reaches_medium_and_stays_under_its_thresholds(name: str) -> None:
    """The contract: thresholds leave benign principals (here 600 customers) below medium."""
    det = _make(name)
    stream = chat.benign(31, customers=300, per_customer=30) + chat.benign(32, customers=300, per_customer=30)
    stream += chat.hard_negatives(33)
    signals = _run(det, sorted(stream, key=lambda it: (it.ts, it.id)))
    assert all(s.severity <= Severity.LOW for s in signals), [(s.principal, s.evidence) for s in signals[:3]]
    for param, cal in det.calibration().items():
        assert len(cal.values) >= 600
        assert max(cal.values) < getattr(det, param), param
