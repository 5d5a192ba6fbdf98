"""Actors: clusters of principals that one adversary is believed to control.

Detectors emit link evidence (a signal's ``related`` principals with a ``link_weight``).
Evidence between a pair of principals accumulates; once it crosses ``link_threshold`` the
two are merged (union-find). An actor's id is derived from its first member, so it is
stable across merges of later members and across replays of the same traffic.

Each merge is reported as a ``Merge``: the actor that results and the *parts* it absorbed,
each either a principal that was in no actor yet or an actor id that no longer exists.
The engine hands it to every detector (``Detector.merge``) so actor-level state starts
from everything the parts had seen, not from the moment of the merge.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Merge:
    """Two clusters became one: ``actor`` now holds what ``parts`` held.

    A part is a principal's own id when it was in no actor before, else the id of the
    actor it was in (that id is gone from now on). The actor that kept its id, when one
    did, is not a part."""

    actor: str
    parts: tuple[str, ...]


class ActorGraph:
    def __init__(self, *, link_threshold: float = 3.0, max_pairs: int = 200_000) -> None:
        self.link_threshold = link_threshold
        self.max_pairs = max_pairs
        self._parent: dict[str, str] = {}
        self._members: dict[str, list[str]] = {}
        self._pair_weight: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._evidence: dict[str, dict[str, float]] = {}

    def find(self, principal: str) -> str:
        parent = self._parent
        root = principal
        while parent.get(root, root) != root:
            root = parent[root]
        while principal != root:  # path compression
            nxt = parent[principal]
            parent[principal] = root
            principal = nxt
        return root

    def actor_of(self, principal: str) -> str | None:
        """The actor id of a clustered principal, else None."""
        root = self.find(principal)
        if root not in self._members:
            return None
        return actor_id(root)

    def members(self, principal: str) -> tuple[str, ...]:
        root = self.find(principal)
        return tuple(self._members.get(root, [principal]))

    def evidence(self, principal: str) -> dict[str, float]:
        """Link evidence totals by kind for the principal's actor."""
        return dict(self._evidence.get(self.find(principal), {}))

    def link(self, a: str, b: str, weight: float, kind: str) -> bool:
        """Add ``weight`` of evidence that a and b are one actor. True if this merged them."""
        return self.join(a, b, weight, kind) is not None

    def join(self, a: str, b: str, weight: float, kind: str) -> Merge | None:
        """As ``link``, and say what merged: the resulting actor and the parts it absorbed."""
        if a == b or weight <= 0:
            return None
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        key = (a, b) if a < b else (b, a)
        total = self._pair_weight.pop(key, 0.0) + weight
        self._pair_weight[key] = total
        if len(self._pair_weight) > self.max_pairs:
            self._pair_weight.popitem(last=False)
        if total < self.link_threshold:
            return None
        before = {r: actor_id(r) if r in self._members else r for r in (ra, rb)}
        root = self._union(ra, rb, kind, total)
        del self._pair_weight[key]
        actor = actor_id(root)
        return Merge(actor, tuple(part for part in before.values() if part != actor))

    def _union(self, ra: str, rb: str, kind: str, weight: float) -> str:
        ma = self._members.get(ra, [ra])
        mb = self._members.get(rb, [rb])
        # the larger cluster stays root, so an actor keeps its id as members join;
        # ties go to the lexically smaller root, so the id does not depend on arrival order
        if (len(mb), ra) > (len(ma), rb):
            ra, rb, ma, mb = rb, ra, mb, ma
        self._parent[rb] = ra
        self._members[ra] = ma + mb
        self._members.pop(rb, None)
        ev = self._evidence.setdefault(ra, {})
        for k, v in self._evidence.pop(rb, {}).items():
            ev[k] = ev.get(k, 0.0) + v
        ev[kind] = ev.get(kind, 0.0) + weight
        return ra

    def actors(self) -> dict[str, tuple[str, ...]]:
        return {actor_id(root): tuple(m) for root, m in self._members.items()}


def actor_id(root: str) -> str:
    return "actor-" + hashlib.blake2b(root.encode(), digest_size=6).hexdigest()
