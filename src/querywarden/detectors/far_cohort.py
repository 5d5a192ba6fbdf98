"""Far cohorts: new principals that begin together and send nothing but inputs far from natural data.

A small synthetic-query extraction split over many keys (Tramèr's d + 1 uniformly random
inputs over 20 keys) leaves each key one or two queries: too few for any statistic of one
key, and too few for a behaviour signature. What the split cannot hide is that every key is
new, begins within moments of the others, and sends only inputs far off the natural data.
Customers essentially never do all three at once: their first queries are natural records.

This index holds the *members*: principals whose every distinct query so far lay at least
the floor (the reference's own off-manifold cut) from the reference, with when each began,
the least far of its queries (its *level*), and, once it sent a second such query that is
not an edit of the first, when it was *confirmed*. A cohort at a bar is the members of at
least that level that began within ``window`` seconds of one another. One far query proves
little (a customer's odd record is one too), so a cohort is judged on its confirmed members;
a member with a single query is counted in only when it began after the confirming member
and before any member of the cohort was confirmed: a key of the campaign's first round, not
a customer who appears while it runs. Whether there is a cohort is decided on the members
at the bar; the members of its first round that are off the manifold at the floor only are
linked with it.

Bounded: members older than ``horizon`` seconds are dropped, and at most ``capacity`` are
held (oldest first). Each call scans the held members once, and a principal calls at most
twice (its first and second distinct query), so the cost per query does not grow with
history. Pure: time comes from the caller.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Protocol

FLOOR = 1.0
"""The least far a member's queries may be, as a multiple of the off-manifold cut."""


class Member(NamedTuple):
    first_ts: float
    level: float  # the least far of its queries, as a multiple of the cut
    confirmed_ts: float | None  # when it sent its second far, distinct query


class Cohort(NamedTuple):
    """Who a confirmed principal is linked to at a bar, and how many members are confirmed."""

    peers: tuple[str, ...]
    confirmed: int
    """Confirmed members at the bar, the principal included if it is at the bar."""
    confirmed_at_floor: int
    """Confirmed members at the floor (what calibration reads: the loosest bar there can be)."""
    span: float
    """Seconds between the earliest and the latest start among the principal and its peers."""


class Follower(Protocol):
    """The per-principal attributes ``FarCohortIndex.follow`` reads and writes."""

    n: int  # distinct queries folded so far, this one included
    first_ts: float
    far: int  # membership: 0 not yet, 1 a member, 2 confirmed, -1 never again
    far_first: float  # how far its first folded query lay, in off-manifold cuts
    far_confirm: float  # the bar at which its second distinct query would have confirmed it
    cohort: int  # the most confirmed members of a cohort it was confirmed in (at the floor)


class FarCohortIndex:
    def __init__(self, *, window: float, horizon: float, capacity: int) -> None:
        self.window = window
        self.horizon = horizon
        self.capacity = capacity
        self._members: OrderedDict[str, Member] = OrderedDict()

    def __len__(self) -> int:
        return len(self._members)

    def follow(self, principal: str, st: Follower, far: float, now: float, bar: float, max_peers: int) -> Cohort | None:
        """Follow a principal whose every distinct query so far lay far off the reference, its
        latest ``far`` cuts away; the cohort at ``bar`` once it is confirmed, else None.

        Its first query makes it a member (if at least the floor away), its second distinct
        one confirms it, and later ones only lower its level; a query nearer than the floor
        ends its membership for good."""
        if st.n == 1:
            st.far_first = far
        elif st.n == 2:
            st.far_confirm = min(st.far_first, far)
        if far < FLOOR:
            if st.far > 0:
                self.leave(principal)
            st.far = -1
            return None
        if st.n == 1:
            st.far = 1
            self.join(principal, st.first_ts, far)
            return None
        if st.far != 1:
            self.level(principal, far)
            return None
        if not self.confirm(principal, far, now):
            st.far = -1  # dropped from the bounded index
            return None
        st.far = 2
        cohort = self.cohort(principal, bar, max_peers)
        if cohort is not None:
            st.cohort = max(st.cohort, cohort.confirmed_at_floor)
        return cohort

    def join(self, principal: str, first_ts: float, level: float) -> None:
        """A principal's first query lay ``level`` cuts from the reference (at least the floor)."""
        members = self._members
        members[principal] = Member(first_ts, level, None)
        members.move_to_end(principal)
        while members:
            oldest = next(iter(members.values()))
            if oldest.first_ts >= first_ts - self.horizon and len(members) <= self.capacity:
                break
            members.popitem(last=False)

    def confirm(self, principal: str, level: float, now: float) -> bool:
        """Its second distinct query lay ``level`` cuts away; False if it is no member (any more)."""
        held = self._members.get(principal)
        if held is None:
            return False
        self._members[principal] = Member(held.first_ts, min(held.level, level), now)
        return True

    def leave(self, principal: str) -> None:
        """It sent a query near the natural data, or an edit of its last one: no member any more."""
        self._members.pop(principal, None)

    def level(self, principal: str, level: float) -> None:
        """A further far query: its level is the least far of all of them."""
        held = self._members.get(principal)
        if held is not None and level < held.level:
            self._members[principal] = held._replace(level=level)

    def cohort(self, principal: str, bar: float, max_peers: int) -> Cohort | None:
        """The cohort a confirmed member belongs to, else None.

        ``bar`` decides whether there is one: the confirmed members of at least that level.
        Once there is, the members of the same first round that are only off the manifold
        (every query at least the floor) belong to it too: a key next to a running campaign
        needs less fresh evidence than strangers, never less than its start and the floor."""
        me = self._members.get(principal)
        if me is None or me.confirmed_ts is None:
            return None
        near = [
            (other, m)
            for other, m in self._members.items()
            if other != principal and abs(m.first_ts - me.first_ts) <= self.window
        ]
        confirmed = [(other, m) for other, m in near if m.confirmed_ts is not None]
        strong = sum(1 for _, m in confirmed if m.level >= bar) + (me.level >= bar)
        first_confirmation = min([me.confirmed_ts, *(_confirmed_ts(m) for _, m in confirmed)])
        single = [
            (other, m) for other, m in near if m.confirmed_ts is None and me.first_ts < m.first_ts < first_confirmation
        ]
        linked = (confirmed + single)[-max_peers:]
        starts = [me.first_ts, *(m.first_ts for _, m in linked)]
        return Cohort(tuple(other for other, _ in linked), strong, 1 + len(confirmed), max(starts) - min(starts))


def _confirmed_ts(member: Member) -> float:
    assert member.confirmed_ts is not None
    return member.confirmed_ts
