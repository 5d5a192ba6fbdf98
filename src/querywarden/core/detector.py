"""The detector contract: an online learner over a stream of interactions.

A detector:
- takes every parameter by name in ``__init__`` and stores each under its own name
  (so ``params()``, ``clone()`` and ``repr`` come for free);
- learns from one interaction at a time in ``update(interaction) -> list[Signal]``, with
  no I/O and no clock (time is ``interaction.ts``);
- keeps bounded state (windows, a cap on principals, eviction);
- can be snapshotted to bytes and restored;
- when it keeps actor-level state, folds the state of the parts of a merge into the
  actor's in ``merge(actor, parts)``, which the engine calls whenever its actor graph
  merges two clusters.

Every detector receives the ``profile`` of the model it watches as a parameter; the engine
builds one detector instance per model.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from querywarden.core import snapshot
from querywarden.core.atlas import technique as lookup_technique
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Evidence, Interaction, Severity, Signal
from querywarden.errors import DetectorError

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Calibration:
    """Per-principal worst values of one thresholded statistic (see ``Detector.calibration``)."""

    values: tuple[float, ...]
    alarm_above: bool = True
    """True when values above the threshold raise an alarm; False when values below do."""
    floor: float | None = None
    """A threshold below (or, with ``alarm_above=False``, above) this is never chosen."""


class Detector:
    """Base class for every detector, built-in or third-party."""

    name: ClassVar[str] = ""
    technique: ClassVar[str] = ""
    description: ClassVar[str] = ""
    supplies_links: ClassVar[bool] = False
    """True for a detector whose purpose is link evidence (signals with ``related`` and a
    ``link_weight``). The engine runs such detectors first, so a merge they cause already
    applies to the interaction that caused it in every other detector."""
    needs: ClassVar[frozenset[str]] = frozenset()
    """What an interaction must carry for the detector to learn from it: any of
    ``features``, ``probabilities``, ``text``, ``output``. Others are skipped cheaply."""

    def __init__(self, *, profile: ModelProfile) -> None:
        self.profile = profile

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.technique:
            lookup_technique(cls.technique)  # fail at import on an invented ATLAS id

    # -- the contract -----------------------------------------------------------------
    def update(self, interaction: Interaction) -> list[Signal]:
        raise NotImplementedError

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """The engine merged ``parts`` into ``actor``: fold what they had learned into it.

        A part is a principal that was in no actor yet, or an actor id that no longer
        exists. From the next interaction on, ``interaction.actor`` names ``actor`` for all
        its members; a detector that keeps state per actor (or per ``actor or principal``)
        moves the parts' state there now, so an actor's counts start from everything its
        members sent, including keys that fell silent before they were linked. The engine
        calls this on every detector of every model, for parts the detector may never have
        seen. No I/O, no clock; the default keeps no actor state and does nothing.
        """
        return None

    def state_size(self) -> int:
        """How many principals (or stored items) the detector currently holds."""
        return 0

    def calibration(self) -> dict[str, Calibration]:
        """The statistics behind each threshold, as seen so far, for ``querywarden calibrate``.

        Keyed by the name of the constructor parameter that thresholds the statistic. Each
        value holds one number per principal: the most alarming value of the statistic that
        principal reached. Run over benign traffic, ``calibrate`` sets the parameter to the
        quantile that gives the target false-positive rate. Detectors with nothing to
        calibrate return an empty dict.
        """
        return {}

    # -- free from the constructor ----------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.KEYWORD_ONLY]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        }

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def clone(self, **overrides: Any) -> Detector:
        """A fresh detector with the same parameters (and no learned state)."""
        params = self.params()
        params.update(overrides)
        return type(self)(**params)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "profile")
        return f"{type(self).__name__}({shown})"

    # -- snapshot / restore -------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The learned state as bytes. Restore with ``restore`` on a detector of the same params."""
        state = {k: v for k, v in self.__dict__.items() if k not in self.param_names()}
        return snapshot.dumps((type(self).__qualname__, state))

    def restore(self, blob: bytes) -> None:
        loaded = snapshot.loads(blob)
        if not (isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[1], dict)):
            raise DetectorError(f"cannot restore {self.name}: not a detector snapshot")
        qualname, state = loaded
        if qualname != type(self).__qualname__:
            raise DetectorError(f"snapshot belongs to {qualname}, not {type(self).__qualname__}")
        self.__dict__.update(state)

    # -- helpers for subclasses -------------------------------------------------------
    def signal(
        self,
        interaction: Interaction,
        *,
        score: float,
        severity: Severity,
        evidence: Evidence,
        technique: str | None = None,
        related: tuple[str, ...] = (),
        link_weight: float = 0.0,
    ) -> Signal:
        return Signal(
            detector=self.name,
            technique=technique or self.technique,
            principal=interaction.principal,
            model=interaction.model,
            interaction_id=interaction.id,
            ts=interaction.ts,
            score=min(1.0, max(0.0, float(score))),
            severity=severity,
            evidence=evidence,
            related=related,
            link_weight=link_weight,
        )


class PrincipalStates(Generic[S]):
    """Per-principal state with a hard cap: the least recently seen principal is evicted.

    This is how detectors keep memory bounded at 10^5+ principals. ``factory`` must be
    picklable (a class or a module-level function) so snapshots can carry it.
    """

    def __init__(self, factory: Callable[[], S], max_principals: int) -> None:
        if max_principals < 1:
            raise DetectorError("max_principals must be at least 1")
        self._factory = factory
        self._cap = max_principals
        self._states: OrderedDict[str, S] = OrderedDict()

    def get(self, principal: str) -> S:
        states = self._states
        state = states.get(principal)
        if state is None:
            state = self._factory()
            states[principal] = state
            if len(states) > self._cap:
                states.popitem(last=False)
        else:
            states.move_to_end(principal)
        return state

    def peek(self, principal: str) -> S | None:
        return self._states.get(principal)

    def pop(self, principal: str) -> S | None:
        """Remove and return the principal's state (None when it holds none)."""
        return self._states.pop(principal, None)

    def fold(self, actor: str, parts: Iterable[str], fold: Callable[[S, S], None]) -> None:
        """Move each part's state into ``actor``'s (see ``Detector.merge``).

        The first state to arrive becomes the actor's as it is; each later one is added
        to it with ``fold(into, part_state)``. Parts with no state are skipped."""
        states = self._states
        for part in parts:
            st = states.pop(part, None)
            if st is None:
                continue
            into = states.get(actor)
            if into is None:
                states[actor] = st
            else:
                fold(into, st)
                states.move_to_end(actor)

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def items(self) -> Iterator[tuple[str, S]]:
        return iter(self._states.items())
