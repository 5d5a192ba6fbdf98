"""Linkage: evidence that several principals are one actor, from their clients and behaviour.

The engine's actor graph merges two principals once the link evidence between them reaches
its ``link_threshold`` (3.0 by default). This detector supplies seven kinds of it, as ``info``
signals that name the other principals in ``related``; it never raises a finding itself.

*Client linkage* (weak). Principals that send from the same IP prefix (IPv4 /24, IPv6 /48)
with the same user agent are linked once per pair with ``client_weight``. Many customers sit
behind one corporate NAT with one browser build, so this must never merge anyone alone:
keep ``client_weight`` well below the graph's threshold.

*Behaviour linkage* (stronger). A split attack's keys share what the attack cannot hide:
their queries are synthetic in the same way, and they run at the same time. Each principal
carries a running signature of its distinct queries (exact repeats are never folded, and
near-repeats that change under ``novelty`` of the features in use are folded one in eight
while the principal is young, so a retry loop or a what-if user resending one odd record
cannot look synthetic): the share far from the profile's reference sample (mean squared
z-score above the reference's own ``off_quantile``), the share with fractional values on
features the reference only ever holds as whole numbers (a quantised grid), and the mean
and spread of its inputs scaled to the feature ranges. At ``min_queries`` folded queries and
each doubling after, up to ``checkpoints`` times, a principal whose signature is synthetic
(either share at least ``synthetic_share``) is compared with the other synthetic principals
active within ``horizon`` seconds, kept in a bounded pool; those of the same style (mean and
spread within ``tolerance``, shares within ``tolerance`` plus two standard errors of their
difference) are linked with ``behaviour_weight``. Two matches merge a pair.

*Onset linkage.* A campaign starts its keys together, and each key's very first queries are
already synthetic. A principal that reaches its first checkpoint within ``burst`` seconds of
its first query, with a synthetic share whose 95% lower bound still reaches
``synthetic_share`` (7 of 8, not 5 of 8), is linked with ``onset_weight`` to the matching
principals that did the same and began within ``onset_window`` seconds of it. With the
behaviour match of that checkpoint this merges keys that send only a dozen queries each.
A customer qualifies only by sending almost nothing but off-manifold inputs at machine pace
from its first query, and then needs a partner of the same style starting alongside. After
the doublings, a principal is compared again at every multiple of the last gap, so a key
that turns synthetic late, or joins a running campaign late, is still linked.

*Campaign linkage.* One source sampled per key gives each key its own synthetic share, so
a few keys of a campaign can fall under ``synthetic_share`` while their siblings merged, or
reach it with too few queries for a second behaviour match or the onset's lower bound (6 of
10, a key of one request). A principal in no actor whose share reaches ``campaign_share``,
that reached its
checkpoint within ``burst`` of its first query, and that matches the style of at least
``campaign_keys`` pooled members of one actor begun within ``onset_window`` of it, is linked
to them with ``campaign_weight``: it completes that actor (a key that could complete two
campaigns completes neither). Customers hold no actor to join, and a person's pace never
reaches a checkpoint within ``burst``.

*Far-cohort linkage.* A small synthetic-query extraction split over many keys (Tramèr's d + 1
random inputs over 20 keys) leaves each key one or two queries, too few for a signature.
New principals whose every distinct query lies at least ``far_ratio`` off-manifold cuts from
the reference, confirmed by a second such query that is no edit of the first, and that began
within ``cohort_window`` of one another, are linked with ``cohort_weight`` once at least
``cohort_keys`` of them are confirmed, together with the single-query members of the same
first round (see ``far_cohort``). Customers' first queries are natural records; both bars
are calibrated on benign traffic.

*Sweep linkage.* Attribute inference (Fredrikson) sends each target record once per value of
the sensitive feature; finite differences send a record again with one coordinate moved.
Split over keys, each key still sends records followed by copies with the same one or two
features changed. During a principal's first 64 queries, a near-repeat of its last new
record that changes at most two features is a sweep step on that feature set, counted once
per record (a what-if user editing one application sweeps one record). A principal that
swept the same features over 2 records, and again at 4, within ``burst`` of its first query
is linked with ``sweep_weight`` to the principals that did the same within ``horizon``, and
with ``onset_weight`` to those that began within ``onset_window`` of it.

*Copy linkage.* Split in two passes, attribute inference sends each record from one key and
the same record with the sensitive feature set to another value from a second key. A
principal's first queries at machine pace are looked up in a bounded global index
(``copy_index``) for another principal's recent query (within ``horizon``) that they repeat
with one or two features changed. Only the principal's one dominant change (same features,
same old and new values, by majority vote) counts, and only while it covers at least half
of its records: natural records of a low-entropy table differ in a field or two now and
then, in ever different fields. Such a copy is a sweep step of the copying key (linked as
sweeps are), and a key that copied two (and four) records of one principal that way is
linked to it with ``sweep_weight``.

A reference of fewer than 8 rows turns behaviour linkage off; under 50 rows no feature is
taken as whole numbers only; a small reference's off-manifold cut sits at its largest rows.

Blind spots: natural-data extraction split over keys with unrelated clients (nothing
synthetic to share; black-box membership and attribute inference on natural records too);
keys that send fewer than ``min_queries`` distinct queries each; keys of one campaign run
hours apart (outside ``horizon``); an attacker who gives each key a different synthetic
style; a campaign whose keys are all only about half off-manifold (under
``synthetic_share``, which benign photo editors on tiny images also reach: campaign linkage
completes an actor, it cannot start one); a key that first sends natural seeds and turns
synthetic only after its checkpoints have seen them; a far cohort whose keys begin more than
``cohort_window`` apart or open with a natural query; a sweep whose record and changed copy
go to different keys of which one is past its first 64 queries or its first ``burst``
seconds, or that starts after a key's first 64 queries. At a merge the other
detectors move each key's state to the actor (``Detector.merge``), so what a key sent
before it was linked counts for the actor.
Near-duplicate chains shared by keys are the ``neardup`` detector's link evidence.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

import numpy as np

from querywarden.core.atlas import API_ACCESS
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.copy_index import CopyIndex
from querywarden.detectors.far_cohort import FLOOR, FarCohortIndex
from querywarden.detectors.fingerprint_index import stable_hash
from querywarden.detectors.small_arrays import count_nonzero

_MAX_PEERS = 64
_FULL_RATE_QUERIES = 64
_SAMPLE_EVERY = 8
_SWEEP_FEATURES = 2
"""A near-repeat that changes at most this many features of its base is a sweep step."""
_SWEEP_SETS = 4
"""Feature sets whose sweeps are followed per principal."""
_SWEEP_EMITS = (2, 4)
"""Records swept on one feature set at which a principal's sweep is compared with others'."""
_MIN_REFERENCE = 8
"""Reference rows below which behaviour linkage is off (the off-manifold cut needs a few)."""
_MIN_GRID_REFERENCE = 50
"""Reference rows below which no feature is taken to hold whole numbers only: a small
reference leaves the off-manifold test loose, and on a few whole-numbered features a
client's own arithmetic (a sensor feed drifting its readings by fractions) is off the grid on
every query."""


class _Principal:
    __slots__ = (
        "base_code",
        "checkpoints",
        "client",
        "client_raw",
        "cohort",
        "copy_due",
        "far",
        "far_confirm",
        "far_first",
        "first_ts",
        "grid_off",
        "last_ts",
        "linked_client",
        "mean_u",
        "n",
        "off",
        "onset",
        "pattern",
        "pattern_hits",
        "pattern_votes",
        "prev",
        "queries",
        "records",
        "repeats",
        "sq_u",
        "sweep_due",
        "sweeps",
    )

    def __init__(self) -> None:
        self.queries = 0
        self.n = 0  # queries folded into the signature (all at first, then a sample)
        self.off = 0.0
        self.grid_off = 0.0
        self.mean_u = 0.0
        self.sq_u = 0.0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.checkpoints = 0
        self.onset = False  # synthetic already at its first checkpoint
        self.prev: np.ndarray | None = None  # the last folded input, quantised to 16 bits
        self.repeats = 0  # near-repeats of it since
        self.records = 0  # distinct records folded (not counting edits folded as a sample)
        self.base_code: np.ndarray | None = None  # the last record folded as a new record (what a sweep edits)
        self.copy_due: list[str] | None = None  # principals whose records this one copied, due a link
        # the most frequent way this principal changes other principals' records (features,
        # old values, new values), by majority vote over its young queries, and its matches
        self.pattern: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
        self.pattern_votes = 0
        self.pattern_hits = 0
        self.client_raw: tuple[str, str] | None = None
        self.client: str | None = None
        self.linked_client: set[str] | None = None
        self.sweeps: dict[tuple[int, ...], list[int]] | None = None  # features -> [records swept, last base]
        self.sweep_due: tuple[int, ...] | None = None
        self.far = 0  # far-cohort membership: 0 not yet, 1 a member, 2 confirmed, -1 never again
        self.far_first = 0.0  # how far its first folded query lay, in off-manifold cuts
        self.far_confirm = 0.0  # the bar at which its second distinct query would have confirmed it (0: never)
        self.cohort = 0  # the most confirmed members of a far cohort it was confirmed in (at the floor)

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore a snapshot, with defaults for what a snapshot from an older version lacks."""
        self.__init__()  # type: ignore[misc]
        for name, value in state[1].items():
            if name in self.__slots__:
                setattr(self, name, value)

    def signature(self) -> np.ndarray:
        n = max(1, self.n)
        mean = self.mean_u / n
        spread = max(0.0, self.sq_u / n - mean * mean) ** 0.5
        return np.array([self.off / n, self.grid_off / n, mean, spread])


class _Entry:
    """A synthetic principal's signature in the comparison pool, with when it was active."""

    __slots__ = ("actor", "first_ts", "last_ts", "n", "onset", "sig")

    def __init__(
        self, sig: np.ndarray, n: int, first_ts: float, last_ts: float, onset: bool, actor: str | None = None
    ) -> None:
        self.sig = sig
        self.n = n
        self.first_ts = first_ts
        self.last_ts = last_ts
        self.onset = onset
        self.actor = actor  # the engine's actor holding the principal, as last told

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore a snapshot, with defaults for what a snapshot from an older version lacks."""
        self.actor = None
        for name, value in state[1].items():
            if name in self.__slots__:
                setattr(self, name, value)


class LinkageDetector(Detector):
    name = "linkage"
    technique = API_ACCESS
    description = "links principals that share a client prefix and agent, or the same synthetic query style at once"
    needs = frozenset({"features"})
    supplies_links = True

    def __init__(
        self,
        *,
        profile: ModelProfile,
        client_weight: float = 0.5,
        behaviour_weight: float = 1.5,
        min_queries: int = 8,
        synthetic_share: float = 0.5,
        tolerance: float = 0.15,
        horizon: float = 3600.0,
        onset_weight: float = 1.5,
        sweep_weight: float = 1.5,
        onset_window: float = 600.0,
        burst: float = 120.0,
        campaign_weight: float = 3.0,
        campaign_keys: int = 4,
        campaign_share: float = 0.25,
        cohort_weight: float = 3.0,
        cohort_keys: int = 3,
        far_ratio: float = 2.0,
        cohort_window: float = 120.0,
        checkpoints: int = 5,
        copy_capacity: int = 4096,
        novelty: float = 0.25,
        off_quantile: float = 0.99,
        group_size: int = 16,
        max_groups: int = 50_000,
        pool_size: int = 256,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if client_weight < 0 or behaviour_weight < 0 or min_queries < 1 or not 0 < synthetic_share <= 1:
            raise ValueError("linkage: weights >= 0, min_queries >= 1 and 0 < synthetic_share <= 1 are required")
        if tolerance <= 0 or horizon <= 0 or not 0 < off_quantile < 1 or group_size < 1 or pool_size < 1:
            raise ValueError("linkage: tolerance, horizon, group_size and pool_size must be positive")
        if onset_weight < 0 or onset_window < 0 or burst < 0 or checkpoints < 1 or not 0 <= novelty <= 1:
            raise ValueError("linkage: onset_weight, onset_window, burst >= 0, checkpoints >= 1, 0 <= novelty <= 1")
        if sweep_weight < 0:
            raise ValueError("linkage: sweep_weight >= 0 is required")
        if copy_capacity < 1:
            raise ValueError("linkage: copy_capacity >= 1 is required")
        if campaign_weight < 0 or campaign_keys < 1 or not 0 < campaign_share <= synthetic_share:
            raise ValueError("linkage: campaign_weight >= 0, campaign_keys >= 1, 0 < campaign_share <= synthetic_share")
        if cohort_weight < 0 or cohort_keys < 2 or far_ratio < FLOOR or cohort_window < 0:
            raise ValueError(f"linkage: cohort_weight >= 0, cohort_keys >= 2, far_ratio >= {FLOOR}, cohort_window >= 0")
        self.client_weight = client_weight
        self.behaviour_weight = behaviour_weight
        self.min_queries = min_queries
        self.synthetic_share = synthetic_share
        self.tolerance = tolerance
        self.horizon = horizon
        self.onset_weight = onset_weight
        self.sweep_weight = sweep_weight
        self.onset_window = onset_window
        self.burst = burst
        self.campaign_weight = campaign_weight
        self.campaign_keys = campaign_keys
        self.campaign_share = campaign_share
        self.cohort_weight = cohort_weight
        self.cohort_keys = cohort_keys
        self.far_ratio = far_ratio
        self.cohort_window = cohort_window
        self.checkpoints = checkpoints
        self.copy_capacity = copy_capacity
        self.novelty = novelty
        self.off_quantile = off_quantile
        self.group_size = group_size
        self.max_groups = max_groups
        self.pool_size = pool_size
        self.max_principals = max_principals
        self._states: PrincipalStates[_Principal] = PrincipalStates(_Principal, max_principals)
        self._groups: OrderedDict[str, list[str]] = OrderedDict()
        self._pool: OrderedDict[str, _Entry] = OrderedDict()
        self._sweepers: OrderedDict[tuple[str, tuple[int, ...]], tuple[float, float]] = OrderedDict()
        self._reference = self._reference_stats(profile)
        self._ones = np.ones(self._reference[0].shape[0]) if self._reference is not None else np.ones(0)
        dim = self._ones.shape[0]
        self._copies = CopyIndex(dim, copy_capacity) if dim >= 3 and sweep_weight > 0 else None
        self._copy_pairs: OrderedDict[tuple[str, str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], list[int]] = (
            OrderedDict()
        )
        self._cohorts = FarCohortIndex(window=cohort_window, horizon=horizon, capacity=pool_size)

    # -- set-up -------------------------------------------------------------------------
    def _reference_stats(
        self, profile: ModelProfile
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray | None] | None:
        """Range scaling, the reference's mean and 1/sd in scaled units, its off-manifold cut,
        and the features it only ever holds as whole numbers."""
        ref = profile.reference
        if ref is None or ref.ndim != 2 or ref.shape[0] < _MIN_REFERENCE:
            return None
        ref = np.asarray(ref, dtype=np.float64)
        bounds = profile.bounds()
        if bounds is not None and bounds[0].shape[0] == ref.shape[1]:
            lo, hi = bounds
        else:
            lo, hi = ref.min(axis=0), ref.max(axis=0)
        width = hi - lo
        inv_width = 1.0 / np.where(width > 0, width, 1.0)
        shift = lo * inv_width
        u = np.clip(ref * inv_width - shift, -1.0, 2.0)
        mean = u.mean(axis=0)
        sd = u.std(axis=0)
        floor = max(float(np.median(sd[sd > 0])) if np.any(sd > 0) else 1.0, 1e-6) * 0.1
        inv_sd = 1.0 / np.maximum(sd, floor)
        z2 = (((u - mean) * inv_sd) ** 2).mean(axis=1)
        cut = float(np.quantile(z2, self.off_quantile))
        # a small reference's own quantile sits at its largest rows, so a natural query falls
        # beyond it about 1/(rows+1) of the time rather than 1 - off_quantile: still rare
        integral = np.all(ref == np.round(ref), axis=0)
        if ref.shape[0] < _MIN_GRID_REFERENCE:
            integral[:] = False
        return shift, inv_width, mean, inv_sd, cut, integral if integral.any() else None

    # -- the contract -------------------------------------------------------------------
    def update(self, interaction: Interaction) -> list[Signal]:
        st = self._states.get(interaction.principal)
        st.queries += 1
        if st.queries == 1:
            st.first_ts = interaction.ts
        st.last_ts = max(st.last_ts, interaction.ts)
        signals: list[Signal] = []
        client = interaction.client
        if client.ip and client.user_agent and self.client_weight > 0:
            raw = (client.ip, client.user_agent)
            if raw != st.client_raw:
                st.client_raw = raw
                st.client = _client_key(client.ip, client.user_agent)
                if st.client is not None:
                    peers = self._join_group(interaction.principal, st, st.client)
                    if peers:
                        signals.append(self._link(interaction, peers, self.client_weight, "client"))
        x = interaction.features
        if x is None or self._reference is None or x.ndim != 1 or x.shape[0] != self._reference[0].shape[0]:
            return signals
        if st.queries > _FULL_RATE_QUERIES and st.queries % _SAMPLE_EVERY:
            return signals
        far = self._fold(st, x, interaction.principal, interaction.ts)
        if st.copy_due:
            copied = tuple(dict.fromkeys(st.copy_due))
            st.copy_due = None
            signals.append(self._link(interaction, copied, self.sweep_weight, "copy"))
        if st.sweep_due is not None:
            peers, lockstep = self._sweep_peers(interaction.principal, st, st.sweep_due)
            st.sweep_due = None
            if peers:
                signals.append(self._link(interaction, peers, self.sweep_weight, "sweep"))
            if lockstep and self.onset_weight > 0:
                signals.append(self._link(interaction, lockstep, self.onset_weight, "onset"))
        if far is None:
            return signals
        if st.far >= 0 and self.cohort_weight > 0:
            cohort = self._far_cohort(interaction, st, far)
            if cohort is not None:
                signals.append(cohort)
        if st.n >= self._due(st.checkpoints):
            st.checkpoints += 1
            peers, lockstep = self._behaviour_peers(interaction.principal, st, interaction.actor)
            if peers:
                signals.append(self._link(interaction, peers, self.behaviour_weight, "behaviour"))
            if lockstep and self.onset_weight > 0:
                signals.append(self._link(interaction, lockstep, self.onset_weight, "onset"))
            if interaction.actor is None and self.campaign_weight > 0:
                joined = self._campaign_peers(interaction.principal, st)
                if joined:
                    signals.append(self._link(interaction, joined, self.campaign_weight, "campaign"))
        return signals

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Note which pooled principals the engine now holds in ``actor`` (a part is a
        principal, or an actor that no longer exists), for campaign linkage."""
        gone = set(parts)
        for principal, entry in self._pool.items():
            if principal in gone or (entry.actor is not None and entry.actor in gone):
                entry.actor = actor

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        """The bar at which each principal's first two distinct queries would have confirmed it
        a far-cohort member (``far_ratio``; 0 for one that sent fewer, or edited its first),
        and the most confirmed members of a far cohort it was confirmed in, counted at the
        floor, the loosest bar ``far_ratio`` can take (``cohort_keys``)."""
        levels: list[float] = []
        cohorts: list[float] = []
        for _, st in self._states.items():
            if st.n > 0:
                levels.append(st.far_confirm)
                cohorts.append(float(st.cohort))
        return {
            "far_ratio": Calibration(tuple(levels), floor=FLOOR),
            "cohort_keys": Calibration(tuple(cohorts), floor=3.0),
        }

    def _due(self, done: int) -> int:
        """Folded queries at which the next checkpoint falls: ``min_queries``, doubling
        ``checkpoints`` times, then at every multiple of the last gap, so a long-running key
        that turns synthetic late, or a key joining a campaign late, is still compared."""
        if done < self.checkpoints:
            return self.min_queries << done
        gap = self.min_queries << (self.checkpoints - 1)
        return gap * (done - self.checkpoints + 2)

    # -- client linkage -----------------------------------------------------------------
    def _join_group(self, principal: str, st: _Principal, key: str) -> tuple[str, ...]:
        """Add the principal to its client group; the members it was not yet linked to."""
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = []
            if len(self._groups) > self.max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(key)
        if principal in group:
            return ()
        if st.linked_client is None:
            st.linked_client = set()
        peers = tuple(p for p in group if p not in st.linked_client)
        for p in peers:
            st.linked_client.add(p)
            other = self._states.peek(p)
            if other is not None:
                if other.linked_client is None:
                    other.linked_client = set()
                if len(other.linked_client) < _MAX_PEERS:
                    other.linked_client.add(principal)
        if len(st.linked_client) > _MAX_PEERS:
            st.linked_client = set(list(st.linked_client)[-_MAX_PEERS:])
        group.append(principal)
        if len(group) > self.group_size:
            del group[0]
        return peers

    # -- behaviour linkage --------------------------------------------------------------
    def _fold(self, st: _Principal, x: np.ndarray, principal: str, ts: float) -> float | None:
        """Fold one query into the principal's signature and say how far off the reference it
        lay (its mean squared z-score over the off-manifold cut); None if it was not new enough.

        Everything is computed on the input scaled to its ranges and clipped to [-1, 2], so
        huge values cannot overflow and NaN lands at the low edge. An input that changes
        fewer than ``novelty`` of the features that either of them uses (a retry, a duplicate,
        a what-if edit of one or two fields) from the last folded one is not folded: the shares then count distinct
        inputs, so one unusual record sent again and again cannot make a customer look
        synthetic."""
        ref = self._reference
        assert ref is not None
        lo, inv_width, mean, inv_sd, cut, integral = ref
        u = x * inv_width
        u -= lo
        np.fmax(u, -1.0, out=u)
        np.fmin(u, 2.0, out=u)
        d = u.shape[0]
        c = np.maximum(u, 0.0)  # u holds no NaN after fmax: the same as clip, without its checks
        np.minimum(c, 1.0, out=c)
        c *= 65535.0
        code = c.astype(np.uint16)
        prev = st.prev
        if prev is not None:
            changed = count_nonzero(code != prev)
            if changed == 0:
                return None
        young = st.queries <= _FULL_RATE_QUERIES and st.last_ts - st.first_ts <= self.burst
        if young and self._copies is not None:
            self._note_copies(st, code, principal, ts)
        # relative to the features either input uses, so one-hot fields count as much as dense ones
        if (
            prev is not None
            and st.queries <= _FULL_RATE_QUERIES
            and changed < self.novelty * d
            and changed < self.novelty * count_nonzero(code | prev)
        ):
            if changed <= _SWEEP_FEATURES and self.sweep_weight > 0:
                base = st.base_code if st.base_code is not None else prev
                self._note_sweep(st, (code != prev).nonzero()[0], self._digest(base))
            if st.far > 0:  # an edit of one record is no campaign's fresh draw
                self._cohorts.leave(principal)
            st.far = -1
            st.repeats += 1
            if st.repeats < _SAMPLE_EVERY:
                return None
            st.records -= 1  # folded as a sample of the edits, not as another record
        else:  # a new record: what later sweeps edit (none are counted after the first queries)
            st.base_code = code if st.queries <= _FULL_RATE_QUERIES else None
        st.repeats = 0
        st.prev = code
        st.n += 1
        st.records += 1
        st.mean_u += float(u @ self._ones) / d
        st.sq_u += float(u @ u) / d
        u -= mean  # u is not read again: z is computed in place
        u *= inv_sd
        z2: float = float(u @ u) / d
        st.off += z2 > cut
        if integral is not None:
            xi = x[integral]
            st.grid_off += count_nonzero(xi != np.rint(xi)) > 0.25 * xi.shape[0]  # rint is round to 0 decimals
        return z2 / max(float(cut), 1e-12)

    # -- sweep linkage ------------------------------------------------------------------
    def _digest(self, code: np.ndarray) -> int:
        """A record's identity, the same one the copy index gives it."""
        return self._copies.digest(code) if self._copies is not None else stable_hash(code.tobytes())

    def _note_copies(self, st: _Principal, code: np.ndarray, principal: str, ts: float) -> None:
        """Find the records of other principals this query repeats with one or two features
        changed (within ``horizon``), then index it.

        A split attribute inference in two passes sends each record from one key and its
        changed copy from another: the copy is a sweep step of the copying key on those
        features (the stored record is its base), and a key that copies the same features
        of the same principal's records, from the same values to the same values (one
        sensitive value set to another), twice and four times owes that principal a link.
        Only a principal's first queries, sent at machine pace (within ``burst`` of its
        first), are searched and indexed. Copies count only in the principal's one dominant
        way of changing records (the same features, from the same values to the same
        values), and only while that way covers at least half of its records: on a
        low-entropy table natural records of two customers often differ in a field or two,
        but in ever different fields and values, never one change record after record."""
        copies = self._copies
        assert copies is not None
        found_all = copies.find_and_add(code, principal, ts, ts - self.horizon)
        if not found_all:
            return
        ways = sorted({(c.features, c.old, c.new) for c in found_all})
        if st.pattern in ways:
            st.pattern_votes += 1
            st.pattern_hits += 1
        elif st.pattern_votes <= 1:
            st.pattern, st.pattern_votes, st.pattern_hits = ways[0], 1, 1
        else:
            st.pattern_votes -= 1
        way = st.pattern
        if way not in ways or st.pattern_hits * 2 < st.records + 1:
            return
        chosen = [c for c in found_all if (c.features, c.old, c.new) == way]
        self._note_sweep(st, np.asarray(way[0]), chosen[0].base)  # one sweep step per query
        paired: set[str] = set()
        for found in chosen:
            if found.principal in paired:
                continue
            paired.add(found.principal)
            key = (principal, found.principal, *way)
            bases = self._copy_pairs.pop(key, None) or []
            if found.base not in bases and len(bases) < _SWEEP_EMITS[-1]:
                bases.append(found.base)
                if len(bases) in _SWEEP_EMITS:
                    st.copy_due = [*(st.copy_due or []), found.principal]
            self._copy_pairs[key] = bases
            if len(self._copy_pairs) > self.pool_size * 16:
                self._copy_pairs.popitem(last=False)

    def _note_sweep(self, st: _Principal, edited: np.ndarray, base: int) -> None:
        """Count a sweep step: a record (``base``) sent again with these features changed.

        Each record counts once per feature set, so a what-if user editing one application
        again and again sweeps one record. A principal that sweeps the same features over
        a second (and a fourth) record at machine pace (within ``burst`` of its first query)
        is due a comparison with the other principals sweeping those features."""
        key = tuple(edited.tolist())
        sweeps = st.sweeps
        if sweeps is None:
            sweeps = st.sweeps = {}
        entry = sweeps.get(key)
        if entry is None:
            if len(sweeps) >= _SWEEP_SETS:
                return
            entry = sweeps[key] = [0, -1]
        if entry[1] == base:
            return
        entry[0] += 1
        entry[1] = base
        if entry[0] in _SWEEP_EMITS and st.last_ts - st.first_ts <= self.burst:
            st.sweep_due = key

    def _sweep_peers(
        self, principal: str, st: _Principal, key: tuple[int, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The principals that swept the same features over several records at machine pace
        and were active within ``horizon``, and among them those that began within
        ``onset_window`` of this one (a campaign splitting one attribute inference, or one
        gradient estimate, over keys it starts together)."""
        sweepers = self._sweepers
        recent = st.first_ts - self.horizon
        peers: list[str] = []
        lockstep: list[str] = []
        for (other, features), (first_ts, last_ts) in sweepers.items():
            if features != key or other == principal or last_ts < recent:
                continue
            peers.append(other)
            if abs(first_ts - st.first_ts) <= self.onset_window:
                lockstep.append(other)
        sweepers[(principal, key)] = (st.first_ts, st.last_ts)
        sweepers.move_to_end((principal, key))
        if len(sweepers) > self.pool_size:
            sweepers.popitem(last=False)
        return tuple(peers[-_MAX_PEERS:]), tuple(lockstep[-_MAX_PEERS:])

    def _matches(self, a: np.ndarray, na: int, b: np.ndarray, nb: int) -> bool:
        """Whether two signatures are one style.

        The two shares are proportions over a few dozen inputs at most, so they are compared
        with their sampling error added to ``tolerance`` (two standard errors of the
        difference): eight draws of one source easily give 3/8 and 6/8. The mean and spread
        are averages over every feature and vary far less, so ``tolerance`` alone applies."""
        if abs(a[2] - b[2]) > self.tolerance or abs(a[3] - b[3]) > self.tolerance:
            return False
        inv_n = 1.0 / max(1, na) + 1.0 / max(1, nb)
        for i in (0, 1):
            pooled = (a[i] * na + b[i] * nb) / max(1, na + nb)
            allowed = self.tolerance + 2.0 * (pooled * (1.0 - pooled) * inv_n) ** 0.5
            if abs(a[i] - b[i]) > allowed:
                return False
        return True

    def _behaviour_peers(
        self, principal: str, st: _Principal, actor: str | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The synthetic principals of the same style active within ``horizon``, and among
        them those that, like this one, were synthetic from their first checkpoint and began
        within ``onset_window`` of it (a campaign starting its keys together)."""
        sig = st.signature()
        first = st.checkpoints == 1
        if max(sig[0], sig[1]) < self.synthetic_share:
            self._pool.pop(principal, None)
            return (), ()
        if first:
            st.onset = st.last_ts - st.first_ts <= self.burst and _lower_bound(max(sig[0], sig[1]), st.n) >= (
                self.synthetic_share
            )
            first = st.onset
        pool = self._pool
        peers: list[str] = []
        lockstep: list[str] = []
        recent = st.first_ts - self.horizon
        for other, entry in pool.items():
            if other == principal or entry.last_ts < recent:
                continue
            if self._matches(sig, st.n, entry.sig, entry.n):
                peers.append(other)
                if first and entry.onset and abs(entry.first_ts - st.first_ts) <= self.onset_window:
                    lockstep.append(other)
        pool[principal] = _Entry(sig, st.n, st.first_ts, st.last_ts, st.onset, actor)
        pool.move_to_end(principal)
        if len(pool) > self.pool_size:
            pool.popitem(last=False)
        # refresh the peers' activity so a long campaign stays within the horizon
        for other in peers:
            ost = self._states.peek(other)
            held = pool.get(other)
            if ost is not None and held is not None:
                held.last_ts = ost.last_ts
        return tuple(peers[:_MAX_PEERS]), tuple(lockstep[:_MAX_PEERS])

    def _campaign_peers(self, principal: str, st: _Principal) -> tuple[str, ...]:
        """The members of one running campaign this principal completes, else nothing.

        A campaign is an actor already holding at least ``campaign_keys`` pooled principals
        that were synthetic in one style and began within ``onset_window`` of this one. A
        key of it that draws a little less often off the manifold (its share at least
        ``campaign_share``: one source sampled per key varies), or that sends too few queries
        for a second behaviour match or the onset's bound, still shows the campaign's style,
        its start and its machine pace: it reached this checkpoint within ``burst`` of its
        first query. Customers hold no actor to join, and a human's pace never reaches a
        checkpoint that fast."""
        sig = st.signature()
        share = max(sig[0], sig[1])
        if share < self.campaign_share or st.last_ts - st.first_ts > self.burst:
            return ()
        members: dict[str, list[str]] = {}
        for other, entry in self._pool.items():
            if (
                entry.actor is None
                or other == principal
                or abs(entry.first_ts - st.first_ts) > self.onset_window
                or not self._matches(sig, st.n, entry.sig, entry.n)
            ):
                continue
            members.setdefault(entry.actor, []).append(other)
        best = max(members.values(), key=len, default=[])
        if len(best) < self.campaign_keys or len(members) > 1:
            return ()  # too few keys, or two campaigns it could complete: neither
        return tuple(best[:_MAX_PEERS])

    def _far_cohort(self, interaction: Interaction, st: _Principal, far: float) -> Signal | None:
        """Link a confirmed member of a far cohort of at least ``cohort_keys`` confirmed
        members at ``far_ratio`` with ``cohort_weight`` (membership: ``far_cohort``)."""
        cohort = self._cohorts.follow(interaction.principal, st, far, interaction.ts, self.far_ratio, _MAX_PEERS)
        if cohort is None or cohort.confirmed < self.cohort_keys or not cohort.peers:
            return None
        return self._link(
            interaction,
            cohort.peers,
            self.cohort_weight,
            "cohort",
            confirmed_keys=cohort.confirmed,
            far_ratio=round(far, 2),
            far_bar=round(self.far_ratio, 2),
            began_within_s=round(cohort.span, 3),
        )

    def _link(
        self, interaction: Interaction, peers: tuple[str, ...], weight: float, kind: str, **detail: float | int
    ) -> Signal:
        return self.signal(
            interaction,
            score=0.05,
            severity=Severity.INFO,
            evidence={"link": kind, "peers": len(peers), **detail},
            related=peers,
            link_weight=weight,
        )


def _lower_bound(share: float, n: int, z: float = 1.645) -> float:
    """The one-sided 95% Wilson lower bound of a share seen over ``n`` inputs: 6/8 is not
    yet sure evidence that most of a principal's inputs are synthetic, 8/8 is."""
    if n <= 0:
        return 0.0
    z2 = z * z / n
    centre = share + z2 / 2
    margin = z * ((share * (1 - share) + z2 / 4) / n) ** 0.5
    return float((centre - margin) / (1 + z2))


def _client_key(ip: str, user_agent: str) -> str | None:
    """The client's network prefix (IPv4 /24, IPv6 /48) and user agent, or None if the IP is not one."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    net = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    return f"{net}|{user_agent.strip()}"
