"""The data plane's copy of the engine's decisions: one dict lookup per request.

When the engine runs in another process, the proxy cannot ask it what to do with a
principal. It keeps a mirror instead, fed by the engine's updates: each principal's
current decision, the actor the engine placed each principal in, and the strongest
decision taken against each actor, so a fresh API key of a blocked actor is refused on its
first request. Reads happen on the proxy's event loop and so do the updates; no locks.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from querywarden.core.records import ALLOW_ALL, Decision


def replaces(current: Decision | None, decision: Decision) -> bool:
    """Whether an actor's new decision supersedes its current one: stronger, or the current
    one was only shadowed."""
    return current is None or decision.action.rank > current.action.rank or current.shadow


class ActorDecisions:
    """Which actor each principal is in, and the strongest decision taken against each actor.

    Both the thread pipeline and the process-mode mirror keep this, so a principal that
    joins an actor after the actor's decision inherits it on its first request."""

    def __init__(self, max_actor_principals: int = 1_000_000) -> None:
        self.actor_of: dict[str, str] = {}
        self.actor_decisions: dict[str, Decision] = {}
        self.max_actor_principals = max_actor_principals

    def inherited(self, principal: str) -> Decision | None:
        """The principal's actor's decision, addressed to the principal; None without one."""
        if not self.actor_of:
            return None
        actor = self.actor_of.get(principal)
        if actor is None:
            return None
        inherited = self.actor_decisions.get(actor)
        return None if inherited is None else msgspec.structs.replace(inherited, principal=principal)

    def join(self, principal: str, actor: str) -> bool:
        """Place the principal in ``actor``; True when that changed anything."""
        if self.actor_of.get(principal) == actor:
            return False
        if principal not in self.actor_of and len(self.actor_of) >= self.max_actor_principals:
            self.actor_of.pop(next(iter(self.actor_of)))
        self.actor_of[principal] = actor
        return True

    def decide_actor(self, decision: Decision) -> None:
        if decision.actor is not None and replaces(self.actor_decisions.get(decision.actor), decision):
            self.actor_decisions[decision.actor] = decision


class DecisionMirror(ActorDecisions):
    def __init__(self, max_actor_principals: int = 1_000_000) -> None:
        super().__init__(max_actor_principals)
        self.decisions: dict[str, Decision] = {}

    def decision_for(self, principal: str) -> Decision:
        """As ``EnginePipeline.decision_for``: the principal's own decision, else its actor's."""
        decision = self.decisions.get(principal)
        if decision is not None:
            return decision
        return self.inherited(principal) or ALLOW_ALL

    def replace_decisions(self, decisions: Iterable[Decision]) -> None:
        """The engine's whole decision table (sent when it starts and after operator changes)."""
        self.decisions = {d.principal: d for d in decisions if d is not ALLOW_ALL}

    def set_decisions(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.decisions[d.principal] = d

    def clear(self, principals: Iterable[str]) -> None:
        for p in principals:
            self.decisions.pop(p, None)
