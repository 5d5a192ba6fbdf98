"""The in-process guard around a real PyTorch classifier trained on scikit-learn's digits:
tensors in and out, logits and probabilities hardened in the model's own dtype, typed
blocks from the engine's decisions, and one principal per row of a batch."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from querywarden import Blocked, Throttled, guard
from querywarden.core import registry
from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Detector
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, Decision, Interaction, Severity, Signal
from querywarden.errors import QueryWardenError
from querywarden.sdk_arrays import ZERO_LOGIT

torch = pytest.importorskip("torch")


class ImageBudget(Detector):
    """Raises a high extraction signal once a principal has sent ``budget`` images."""

    name = "sdk_torch_budget"
    technique = EXTRACTION

    def __init__(self, *, profile: ModelProfile, budget: int = 40) -> None:
        super().__init__(profile=profile)
        self.budget = budget
        self.seen: dict[str, int] = {}

    def update(self, interaction: Interaction) -> list[Signal]:
        n = self.seen[interaction.principal] = self.seen.get(interaction.principal, 0) + 1
        if n != self.budget:
            return []
        return [self.signal(interaction, score=0.95, severity=Severity.HIGH, evidence={"images": n})]


@pytest.fixture(autouse=True)
def _test_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, ImageBudget.name, ImageBudget)


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any, Any, Any]:
    """Digits as ``(n, 1, 8, 8)`` float32 images scaled to [0, 1]; the last 297 held out."""
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    return x[:1500], y[:1500], x[1500:], y[1500:]


@pytest.fixture(scope="module")
def net(digits: tuple[Any, Any, Any, Any]) -> Iterator[Any]:
    """A small classifier that returns logits, trained in well under a second."""
    x, y, x_test, y_test = digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend for shared cores
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.9, f"the test model did not learn the digits ({accuracy:.2f})"
    yield model
    torch.set_num_threads(threads)


def engine(budget: int = 10_000) -> Engine:
    return Engine(
        {"digits": ModelProfile(id="digits", shape=(1, 8, 8))},
        detectors=[DetectorSpec("sdk_torch_budget", {"budget": budget})],
    )


def harden(guarded: Any, principal: str, **params: Any) -> None:
    guarded.engine.set_decision(Decision(principal=principal, action=Action.HARDEN, ts=0, params=params))


def test_an_allowed_call_returns_the_modules_own_tensor_and_feeds_the_engine(net: Any, digits: tuple) -> None:
    x = digits[2][:5]
    seen: list[Interaction] = []
    guarded = guard(net, model="digits", engine=engine(), background=False)
    original = guarded.pipeline.process

    def spy(i: Interaction) -> Any:
        seen.append(i)
        return original(i)

    guarded.pipeline.process = spy  # type: ignore[method-assign]
    with torch.no_grad():
        out = guarded(x, principal="key_1")
        assert torch.equal(out, net(x))
    assert [i.features.shape for i in seen] == [(64,)] * 5
    assert np.allclose(seen[0].features, x[0].numpy().ravel())
    assert np.allclose(seen[0].output.scores, out[0].numpy()), "logits are recorded as the model's scores"


def test_hardened_logits_keep_type_dtype_shape_and_answer(net: Any, digits: tuple) -> None:
    x = digits[2][:40]
    guarded = guard(net, model="digits", engine=engine(), background=False)
    harden(guarded, "p")  # the default: top-1, rounded to one decimal
    with torch.no_grad():
        truth = net(x)
        out = guarded(x, principal="p")
    assert isinstance(out, torch.Tensor) and out.dtype == truth.dtype and out.shape == truth.shape
    assert out.device == truth.device and not out.requires_grad
    assert torch.equal(out.argmax(1), truth.argmax(1))
    probs = torch.softmax(out, 1)
    assert ((probs > 1e-30).sum(1) == 1).all(), "softmax of what the caller gets is the hardened vector"
    assert (out[probs < 1e-30] == ZERO_LOGIT).all()


def test_hardened_probabilities_from_a_softmax_head(net: Any, digits: tuple) -> None:
    head = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    x = digits[2][:30]
    guarded = guard(head, model="digits", engine=engine(), background=False)
    harden(guarded, "p", noise=0.5)
    with torch.no_grad():
        truth = head(x)
        out = guarded(x, principal="p")
    assert out.dtype == torch.float32 and torch.equal(out.argmax(1), truth.argmax(1))
    assert torch.allclose(out.sum(1), torch.ones(30)) and not torch.allclose(out, truth, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_other_float_dtypes_come_back_in_their_own_dtype(net: Any, digits: tuple, dtype: str) -> None:
    kind = getattr(torch, dtype)
    model = copy.deepcopy(net).to(kind)
    x = digits[2][:8].to(kind)
    guarded = guard(model, model="digits", engine=engine(), background=False)
    harden(guarded, "p", label_only=True)
    with torch.no_grad():
        out = guarded(x, principal="p")
        truth = model(x)
    assert out.dtype == kind and torch.equal(out.argmax(1), truth.argmax(1))
    assert guarded.engine.queries("p") == 8


def test_the_engines_block_raises_blocked_naming_the_finding(net: Any, digits: tuple) -> None:
    guarded = guard(net, model="digits", engine=engine(budget=40), background=False)
    with torch.no_grad():
        for start in range(0, 40, 10):
            guarded(digits[0][start : start + 10], principal="thief")
        with pytest.raises(Blocked) as caught:
            guarded(digits[2][:1], principal="thief")
        assert caught.value.finding_id == guarded.engine.decision_for("thief").finding_id is not None
        assert guarded(digits[2][:1], principal="customer").shape == (1, 10)


def test_a_batch_may_carry_one_principal_per_row(net: Any, digits: tuple) -> None:
    head = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    calls: list[int] = []

    def model(x: Any) -> Any:
        calls.append(len(x))
        with torch.no_grad():
            return head(x)

    x = digits[2][:6]
    guarded = guard(model, model="digits", engine=engine(), background=False)
    harden(guarded, "b", label_only=True)
    out = guarded(x, principal=["a", "b", "a", "c", "b", "a"])
    truth = head(x).detach()
    assert torch.equal(out[[0, 2, 3, 5]], truth[[0, 2, 3, 5]]), "only the hardened principal's rows change"
    assert torch.equal(out[[1, 4]], torch.nn.functional.one_hot(truth[[1, 4]].argmax(1), 10).float())
    assert [guarded.engine.queries(p) for p in "abc"] == [3, 2, 1]

    guarded.engine.set_decision(Decision(principal="c", action=Action.BLOCK, ts=0, finding_id="f-c"))
    with pytest.raises(Blocked) as caught:
        guarded(x, principal=["a", "b", "a", "c", "b", "c"])
    assert (caught.value.principal, caught.value.rows, caught.value.finding_id) == ("c", (3, 5), "f-c")
    assert calls == [6], "a refused batch never reaches the model"

    guarded.engine.set_decision(
        Decision(principal="a", action=Action.THROTTLE, ts=0, params={"rate": 0.01, "burst": 1})
    )
    guarded(x[:2], principal=["a", "b"])
    with pytest.raises(Throttled) as throttled:
        guarded(x[:2], principal=["b", "a"])
    assert throttled.value.rows == (1,)


def test_a_principal_list_that_does_not_match_the_batch_is_refused(net: Any, digits: tuple) -> None:
    guarded = guard(net, model="digits", engine=engine(), background=False)
    with pytest.raises(QueryWardenError, match="names 2 principals for a batch of 3 instances"):
        guarded(digits[2][:3], principal=["a", "b"])
    with pytest.raises(QueryWardenError, match=r"principal\[1\] must be a non-empty string"):
        guarded(digits[2][:2], principal=["a", ""])


def test_logits_false_returns_unnormalised_outputs_untouched(net: Any, digits: tuple) -> None:
    embed = torch.nn.Sequential(*list(net)[:3])  # the hidden layer: an embedding, not class scores
    guarded = guard(embed, model="digits", engine=engine(), background=False, logits=False)
    harden(guarded, "p")
    with torch.no_grad():
        x = digits[2][:4]
        assert torch.equal(guarded(x, principal="p"), embed(x))


def test_the_docs_pytorch_example_runs_as_printed(capsys: pytest.CaptureFixture[str]) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "sdk.md").read_text(encoding="utf-8")
    section = page[page.index("## PyTorch") :]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/sdk.md", "exec"), scope)
    net, x = scope["net"], scope["x"]
    with torch.no_grad():
        truth = net(x[:5])
    assert torch.equal(scope["logits"], truth)
    hardened = scope["hardened"]
    assert hardened.dtype == torch.float32 and torch.equal(hardened.argmax(1), truth.argmax(1))
    assert ((torch.softmax(hardened, 1) > 1e-30).sum(1) == 1).all()
    mixed = scope["mixed"]
    assert torch.equal(mixed[[0, 2]], truth[[0, 2]]) and not torch.equal(mixed[1], truth[1])
    assert capsys.readouterr().out == "key_3 (1,) fnd-1\n"
