"""What the LLM detectors share: whom an interaction counts for, a level ladder, actor pooling.

Every LLM detector judges a principal and, once the engine has clustered principals into
an actor, the actor as a whole: a campaign split over many API keys is counted where it
adds up. ``subjects`` names the state keys one interaction updates; actor keys carry a
prefix no principal id can collide with (principal ids never start with a NUL).

An actor's state starts from everything its members sent, not from the merge: when the
engine merges (``Detector.merge``), ``merge_into_actor`` adds each part's state to the
actor's, and ``joined`` does the same for a principal first seen in an actor on an
interaction (a detector restored from an older snapshot, say). A principal keeps its own
state and marks the actor it was added to, so it is added once: when its old actor is
later merged into another, the old actor's state moves whole and the principal only
follows the mark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from querywarden.core.detector import PrincipalStates
from querywarden.core.records import Interaction, Severity

ACTOR_PREFIX = "\x00actor:"


class ActorMarked(Protocol):
    actor: str | None
    """On a principal's state: the actor its state was added to, if any."""


A = TypeVar("A", bound=ActorMarked)

Pool = Callable[[A, A, bool], None]
"""``pool(into, part, counters)``: add ``part``'s state to the actor's ``into``; its counters
(prompt counts, hits) only when ``counters`` is true, since a principal that follows its old
actor into a new one was counted there already."""


def subjects(interaction: Interaction) -> tuple[str, ...]:
    """The principal's key, then the actor's key when it has one."""
    if interaction.actor:
        return (interaction.principal, ACTOR_PREFIX + interaction.actor)
    return (interaction.principal,)


def is_actor(key: str) -> bool:
    return key.startswith(ACTOR_PREFIX)


def joined(states: PrincipalStates[A], key: str, interaction: Interaction, pool: Pool[A]) -> A:
    """The state for ``key``; a principal seen in an actor for the first time brings its state to the actor."""
    st = states.get(key)
    actor = interaction.actor
    if actor and st.actor != actor and not is_actor(key):
        first = st.actor is None  # a principal that moved with its old actor was counted there already
        st.actor = actor
        pool(states.get(ACTOR_PREFIX + actor), st, first)
    return st


def merge_into_actor(states: PrincipalStates[A], actor: str, parts: tuple[str, ...], pool: Pool[A]) -> None:
    """``Detector.merge`` for per-principal and per-actor state: pool each part into ``actor``."""
    for part in parts:
        old = states.pop(ACTOR_PREFIX + part)
        if old is not None:  # an actor that no longer exists: everything it held moves
            pool(states.get(ACTOR_PREFIX + actor), old, True)
            continue
        st = states.peek(part)
        if st is not None and st.actor != actor:
            first = st.actor is None
            st.actor = actor
            pool(states.get(ACTOR_PREFIX + actor), st, first)


def level(value: float, medium: float, high: float) -> Severity | None:
    """``medium`` at or past the first threshold, ``high`` at or past the second, else None."""
    if value >= high:
        return Severity.HIGH
    if value >= medium:
        return Severity.MEDIUM
    return None


def subject_evidence(key: str) -> dict[str, str]:
    """Evidence naming the subject a crossing was counted on."""
    return {"counted_on": "actor", "actor": key[len(ACTOR_PREFIX) :]} if is_actor(key) else {"counted_on": "principal"}
