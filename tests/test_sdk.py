"""The in-process guard around real scikit-learn models: decisions from real traffic,
hardened outputs in the model's own types, and decisions that survive a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from querywarden import Blocked, Throttled, guard
from querywarden.core import registry
from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Detector
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, Decision, Interaction, Severity, Signal
from querywarden.errors import QueryWardenError
from querywarden.gateway.pipeline import Ready
from querywarden.gateway.settings import GatewaySettings


class RowBudget(Detector):
    """Raises a high extraction signal once a principal has sent ``budget`` rows."""

    name = "sdk_test_budget"
    technique = EXTRACTION

    def __init__(self, *, profile: ModelProfile, budget: int = 50) -> None:
        super().__init__(profile=profile)
        self.budget = budget
        self.rows: dict[str, int] = {}

    def update(self, interaction: Interaction) -> list[Signal]:
        n = self.rows[interaction.principal] = self.rows.get(interaction.principal, 0) + 1
        if n != self.budget:
            return []
        return [self.signal(interaction, score=0.95, severity=Severity.HIGH, evidence={"rows": n})]


@pytest.fixture(autouse=True)
def _test_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered only while a test here runs, so suites that walk the registry never see them."""
    monkeypatch.setitem(registry._REGISTRY, RowBudget.name, RowBudget)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=1)
    return x, y


@pytest.fixture(scope="module")
def model(data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(*data)


def engine(budget: int = 1000) -> Engine:
    return Engine(
        {"credit": ModelProfile(id="credit", n_features=6)},
        detectors=[DetectorSpec("sdk_test_budget", {"budget": budget})],
    )


def test_allowed_calls_return_the_model_output_and_feed_the_engine(model: LogisticRegression, data: tuple) -> None:
    x = data[0][:5]
    guarded = guard(model.predict_proba, model="credit", engine=engine(), background=False)
    out = guarded(x, principal="key_1")
    assert np.array_equal(out, model.predict_proba(x))
    assert guarded.engine.queries("key_1") == 5


def test_extraction_budget_ends_in_a_typed_block_naming_the_finding(model: LogisticRegression, data: tuple) -> None:
    guarded = guard(model.predict_proba, model="credit", engine=engine(budget=30), background=False)
    for row in data[0][:30]:
        guarded(row.reshape(1, -1), principal="thief")
    with pytest.raises(Blocked) as caught:
        guarded(data[0][:1], principal="thief")
    assert isinstance(caught.value, QueryWardenError)
    assert caught.value.finding_id == guarded.engine.decision_for("thief").finding_id is not None
    assert np.array_equal(guarded(data[0][:1], principal="customer"), model.predict_proba(data[0][:1]))


def test_background_detection_catches_up_after_flush(model: LogisticRegression, data: tuple) -> None:
    with guard(model.predict_proba, model="credit", engine=engine(budget=10)) as guarded:
        guarded(data[0][:10], principal="batcher")
        guarded.flush()
        with pytest.raises(Blocked):
            guarded(data[0][:1], principal="batcher")


def test_throttle_raises_with_retry_after(model: LogisticRegression, data: tuple) -> None:
    guarded = guard(model.predict_proba, model="credit", engine=engine(), background=False)
    guarded.engine.set_decision(Decision(principal="p", action=Action.THROTTLE, ts=0, params={"rate": 0.5, "burst": 2}))
    guarded(data[0][:1], principal="p")
    guarded(data[0][:1], principal="p")
    with pytest.raises(Throttled) as caught:
        guarded(data[0][:1], principal="p")
    assert 1.0 < caught.value.retry_after <= 2.0


def test_hardened_output_keeps_the_models_type_and_answer(model: LogisticRegression, data: tuple) -> None:
    x = data[0][:20]
    guarded = guard(model.predict_proba, model="credit", engine=engine(), background=False)
    guarded.engine.set_decision(Decision(principal="p", action=Action.HARDEN, ts=0))
    out = guarded(x, principal="p")
    truth = model.predict_proba(x)
    assert isinstance(out, np.ndarray) and out.dtype == truth.dtype and out.shape == truth.shape
    assert ((out > 0).sum(1) == 1).all() and (out.argmax(1) == truth.argmax(1)).all()
    labels = guard(model.predict, model="credit", pipeline=guarded.pipeline, background=False)
    assert np.array_equal(labels(x, principal="p"), model.predict(x)), "labels have nothing left to harden"


def test_shadow_decisions_only_count(model: LogisticRegression, data: tuple) -> None:
    guarded = guard(model.predict_proba, model="credit", engine=engine(), background=False)
    guarded.engine.set_decision(Decision(principal="p", action=Action.BLOCK, ts=0, shadow=True))
    assert guarded(data[0][:1], principal="p").shape == (1, 3)
    assert guarded.shadowed == 1


def test_without_config_the_profile_is_drafted_from_the_first_call(data: tuple) -> None:
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(*data)
    guarded = guard(forest.predict_proba, model="forest", background=False)
    guarded(data[0][:3], principal="a")
    assert guarded.engine.profiles["forest"].n_features == 6 and guarded.engine.queries("a") == 3


def test_text_models_record_prompts_and_answers() -> None:
    seen: list[Interaction] = []
    guarded = guard(lambda prompts: [p.upper() for p in prompts], model="chat", background=False)
    original = guarded.pipeline.process

    def spy(i: Interaction) -> object:
        seen.append(i)
        return original(i)

    guarded.pipeline.process = spy  # type: ignore[method-assign]
    assert guarded(["hi", "there"], principal="u") == ["HI", "THERE"]
    assert [(i.prompt, i.output.text) for i in seen] == [("hi", "HI"), ("there", "THERE")]


def test_fail_closed_overflow_raises_throttled(model: LogisticRegression, data: tuple) -> None:
    settings = GatewaySettings(queue_size=1, on_overflow="closed")
    guarded = guard(model.predict_proba, model="credit", engine=engine(), settings=settings, background=False)
    assert guarded.pipeline.submit(Ready([]))  # the only slot is taken: the engine is behind
    with pytest.raises(Throttled, match="queue full"):
        guarded(data[0][:1], principal="p")


def test_decisions_survive_a_restart_through_the_store(model: LogisticRegression, data: tuple, tmp_path: Path) -> None:
    from querywarden.store import open_store

    url = f"sqlite:///{tmp_path / 'qw.db'}"
    with open_store(url) as store:
        first = guard(model.predict_proba, model="credit", engine=engine(budget=5), store=store, background=False)
        first(data[0][:5], principal="thief")
        with pytest.raises(Blocked):
            first(data[0][:1], principal="thief")
        store.flush()
    with open_store(url) as store:  # a new process: fresh engine, same store
        second = guard(model.predict_proba, model="credit", engine=engine(budget=5), store=store, background=False)
        with pytest.raises(Blocked):
            second(data[0][:1], principal="thief")
        assert second(data[0][:1], principal="customer").shape == (1, 3)


def test_pytorch_modules_are_guarded_in_their_own_types() -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.Softmax(dim=1))
    guarded = guard(net, model="credit", engine=engine(), background=False)
    guarded.engine.set_decision(Decision(principal="p", action=Action.HARDEN, ts=0, params={"label_only": True}))
    out = guarded(torch.randn(4, 6), principal="p")
    assert isinstance(out, torch.Tensor) and out.shape == (4, 3) and (out.sum(1) == 1).all()


_WITHOUT_TORCH = """
import importlib.abc
import sys


class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, NoTorch())  # as if PyTorch were not installed
import numpy as np
from sklearn.linear_model import LogisticRegression

from querywarden import guard
from querywarden.core.records import Action, Decision

rng = np.random.default_rng(0)
x = rng.normal(size=(200, 4))
model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
guarded = guard(model.predict_proba, model="m", background=False)
guarded.engine.set_decision(Decision(principal="p", action=Action.HARDEN, ts=0, params={"label_only": True}))
out = guarded(x[:5], principal="p")
assert out.dtype == np.float64 and (out.max(1) == 1).all(), out
print(sorted(m for m in sys.modules if m.split(".")[0] == "torch"))
"""


def test_the_sdk_needs_no_pytorch_and_never_imports_it_for_other_models() -> None:
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
