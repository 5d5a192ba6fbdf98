"""What the LLM detectors share: whom an interaction counts for, and a level ladder.

Every LLM detector judges a principal and, once the engine has clustered principals into
an actor, the actor as a whole: a campaign split over many API keys is counted where it
adds up. ``subjects`` names the state keys one interaction updates; actor keys carry a
prefix no principal id can collide with (principal ids never start with a NUL).
"""

from __future__ import annotations

from querywarden.core.records import Interaction, Severity

ACTOR_PREFIX = "\x00actor:"


def subjects(interaction: Interaction) -> tuple[str, ...]:
    """The principal's key, then the actor's key when it has one."""
    if interaction.actor:
        return (interaction.principal, ACTOR_PREFIX + interaction.actor)
    return (interaction.principal,)


def is_actor(key: str) -> bool:
    return key.startswith(ACTOR_PREFIX)


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
