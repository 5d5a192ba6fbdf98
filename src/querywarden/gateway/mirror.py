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


class DecisionMirror:
    def __init__(self, max_actor_principals: int = 1_000_000) -> None:
        self.decisions: dict[str, Decision] = {}
        self.actor_of: dict[str, str] = {}
        self.actor_decisions: dict[str, Decision] = {}
        self.max_actor_principals = max_actor_principals

    def decision_for(self, principal: str) -> Decision:
        """As ``EnginePipeline.decision_for``: the principal's own decision, else its actor's."""
        decision = self.decisions.get(principal)
        if decision is not None:
            return decision
        if self.actor_of:
            actor = self.actor_of.get(principal)
            if actor is not None:
                inherited = self.actor_decisions.get(actor)
                if inherited is not None:
                    return msgspec.structs.replace(inherited, principal=principal)
        return ALLOW_ALL

    def replace_decisions(self, decisions: Iterable[Decision]) -> None:
        """The engine's whole decision table (sent when it starts and after operator changes)."""
        self.decisions = {d.principal: d for d in decisions if d is not ALLOW_ALL}

    def set_decisions(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.decisions[d.principal] = d

    def clear(self, principals: Iterable[str]) -> None:
        for p in principals:
            self.decisions.pop(p, None)

    def join(self, principal: str, actor: str) -> None:
        if self.actor_of.get(principal) == actor:
            return
        if principal not in self.actor_of and len(self.actor_of) >= self.max_actor_principals:
            self.actor_of.pop(next(iter(self.actor_of)))
        self.actor_of[principal] = actor

    def decide_actor(self, decision: Decision) -> None:
        if decision.actor is not None and replaces(self.actor_decisions.get(decision.actor), decision):
            self.actor_decisions[decision.actor] = decision
