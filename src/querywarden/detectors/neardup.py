"""Neardup: iterative near-duplicate probing, caught in one index shared by every principal.

Boundary walks (HopSkipJump, Boundary attack), black-box inversion (MI-Face) and label-only
membership inference all query long chains of inputs that differ from earlier ones in a
few features. Customers almost never do: they send different records, or retry the very
same one. So every input is fingerprinted (see ``fingerprint_index``) and looked up in one
global table; a query that shares at least ``min_shared`` of its ``top_s`` hashes with a
stored query, without being an exact copy of it, is a *near-duplicate hit*. On dense data,
where natural records near-duplicate each other (one-hot tables with few continuous
columns), the bar is raised above what natural twins in the reference sample share
(``_natural_twins``).

Hits form *chains*: a hit joins the oldest chain among the stored queries it matches,
and a query that matches nothing starts a new chain. Chains are global, so the
queries of one attack split over many API keys land in one chain. Per principal, and per
actor once the engine has clustered principals, the detector counts hits per chain; a
chain idle for ``hits_window`` of the principal's queries starts again from zero. What
customers do stays short: an edited photo or a what-if application makes a chain of a
handful of hits, and a batch of natural records makes almost none. An attack cannot
avoid a long chain: it needs hundreds of small steps. Crossing ``min_hits`` (calibrated
on benign traffic) raises ``medium``; a chain reaching ``high_hits``, or ``high_chains``
separate chains each reaching ``min_hits`` (a walk that restarts, or one candidate record
after another), raises ``high``; one signal per crossing. Exact repeats (retries, nightly
re-scoring, a monitoring probe) are counted apart and never count as hits, even when the
repeated record has near-duplicates of its own in the index.

Hits against another principal's query stored in the last ``link_horizon`` seconds that
share at least ``link_shared`` hashes (tiny steps, closer than natural neighbours on dense
data ever are), from a principal whose last hits mostly fed the chain they join (two of
its last three), are link evidence: the signal names those principals in ``related``
with ``link_weight``, each time the pair's hit count reaches a power of two it never
reached before, at most ``max_link_emits`` times per pair; only when the other principal
walks that chain itself (a probe re-sending one record is no walk), counting again from
zero after ``link_horizon`` seconds without a hit between them, and a pair's first hit once
whichever way. The keys of one split attack query the same chain minutes apart and merge
into one actor within a few rounds; customers who happen to edit the same popular photo do
it hours or days apart and stay apart. When principals merge into an actor their chain
counts are added to the actor's (``merge``), so the actor crosses ``min_hits`` as soon as
its members together have.

Technique: a chain whose hits mostly lie off the valid input box (a quarter of their
features more than one quantisation bin outside their range, and ``_SAMPLE_PAD`` of the
width further when the range is a sample's span) is extraction (AML.T0024.002:
functionally-equivalent extraction walks far off the data, wherever the network's kinks
are; evasion and inversion must end in a valid input, so their walks stay in the box); a
chain whose outputs settle on one class with rising confidence is model inversion
(AML.T0024.001); anything else is a boundary walk, named by ``walk_naming``: label-only
membership inference (AML.T0024.000) when the profile carries ``training_digests`` and the
principal queried at least ``member_records`` distinct exact training rows (a candidate
list), decision-boundary probing (AML.T0043) otherwise, with the runner-up in the
evidence; a walker named AML.T0043 that goes on to query its third training row is
signalled again as membership inference. Exact repeats name nothing: line searches re-ask
points, and so do finite-difference optimisers.

Drift: a monitoring feed drifting for hours is a chain too. A chain that would be named
boundary probing, whose recent hits diffuse like a random walk (``drift``: a median spread
ratio in ``drift.BAND``), most of them answered off the boundary, is reported at ``low`` and
judged again at every hit; a walk that circles one point or heads somewhere is judged as before.

Blind spots: adaptive attacks that use the block as an oracle and resample until they
pass (OARS), query blinding (random transforms large enough to change most windows), and
chains spaced further apart than the index's capacity.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np

from querywarden.core.atlas import ADVERSARIAL, EXTRACTION, INVERSION, MEMBERSHIP
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Evidence, InputKind, Interaction, Severity, Signal, Vector
from querywarden.detectors.drift import Spread
from querywarden.detectors.fingerprint_index import Fingerprinter, FingerprintIndex, Matches, stable_hash
from querywarden.detectors.walk_naming import (
    MEMBER_RECORDS,
    is_training_row,
    remember,
    row_digest_of,
    training_digests,
    walk_technique,
)
from querywarden.errors import DetectorError

_MAX_RELATED = 8
_MAX_LINK_PEERS = 32
_MAX_CHAINS = 8
_RECENT = 64
_OFF_BOX_FEATURES = 0.25
"""A hit with this share of its features more than one bin outside their range is off the box."""
_EXTRACTION_OFF_BOX = 0.5
"""Hits off the valid input box, as a share of all hits, that make a chain extraction."""
_SAMPLE_PAD = 0.25
"""A valid box taken from a sample's span (the reference, or the first queries) is widened
by this share of each feature's width on each side: a sample's extremes fall short of the
valid range, a small one's by far (wine's 18 reference rows span 0.98-4.72 of malic acid's
0.74-5.8), and an evasion walk's random start may lie anywhere in the valid range. Declared
ranges are the box itself. Functionally-equivalent extraction walks half a width to two
widths outside."""
_LAST_HITS = 3


_LOW_MARGIN = 0.2
"""Top-1 minus top-2 probability under which an answer counts as on the boundary here."""

_SENT = 32
"""Distinct inputs remembered per principal, so that its own repeats never count as hits."""

_TWIN_SHARE = 0.05
"""Reference rows with a natural near-duplicate (a *twin*) at ``min_shared``, as a share,
above which the data is dense and a hit must be closer than its twins are."""
_TWIN_QUANTILE = 0.99


class _Chains:
    """Near-duplicate hit counts per chain for one principal or one actor."""

    __slots__ = (
        "chains",
        "key",
        "last",
        "level",
        "links",
        "long",
        "members",
        "near",
        "outside",
        "peak",
        "queries",
        "recent",
        "repeats",
        "sent",
        "steps",
        "technique",
    )

    def __init__(self) -> None:
        self.key = 0
        self.queries = 0
        self.near = 0
        self.outside = 0
        self.repeats = 0
        self.peak = 0
        self.level = Severity.INFO
        self.long = 0
        self.last: tuple[int, ...] = ()
        self.technique = ""
        self.members: tuple[int, ...] = ()  # distinct exact training rows among its fresh queries
        self.chains: dict[int, list[int]] | None = None
        self.recent: deque[tuple[int, float, float]] | None = None
        self.links: dict[int, list[float]] | None = None  # peer -> [hits, last hit ts, most hits]
        self.sent: dict[int, None] | None = None
        self.steps: Spread | None = None  # the shape of its recent hits (diffusing, or not)

    def sent_before(self, exact: int) -> bool:
        """True when ``exact`` is one of the last distinct inputs sent; remembers it otherwise.

        The index keeps one entry per table slot, so a record whose near-duplicate was stored
        after it may no longer be found as an exact copy there; this memory still knows it.
        """
        if self.sent is None:
            self.sent = {}
        if exact in self.sent:
            return True
        self.sent[exact] = None
        if len(self.sent) > _SENT:
            del self.sent[next(iter(self.sent))]
        return False

    def hit(self, chain: int, idle: int, long: int, add: int = 1) -> int:
        """Count ``add`` hits into ``chain``; returns the chain's count. A chain reaching
        ``long`` hits for the first time counts once in ``self.long``."""
        if self.chains is None:
            self.chains = {}
        chains = self.chains
        entry = chains.get(chain)
        if entry is None:
            if len(chains) >= _MAX_CHAINS:
                del chains[min(chains, key=lambda c: chains[c][1])]
            entry = chains[chain] = [0, self.queries, 0]
        elif self.queries - entry[1] > idle:
            entry[0] = 0
        entry[0] += add
        entry[1] = self.queries
        self.last = (*self.last[-(_LAST_HITS - 1) :], chain)
        if entry[0] >= long and not entry[2]:
            entry[2] = 1
            self.long += 1
        self.near += add
        if entry[0] > self.peak:
            self.peak = entry[0]
        return entry[0]


class NearDuplicateDetector(Detector):
    name = "neardup"
    technique = ADVERSARIAL
    description = "chains of near-duplicate inputs, looked up in one fingerprint index shared by all principals"
    needs = frozenset({"features"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        salt: str = "querywarden-neardup",
        levels: int = 8,
        window: int = 6,
        top_s: int = 32,
        min_shared: int = 12,
        max_queries: int = 100_000,
        table_factor: float = 2.0,
        hits_window: int = 256,
        min_hits: int = 32,
        high_hits: int = 128,
        high_chains: int = 3,
        link_weight: float = 1.5,
        link_shared: int = 24,
        link_horizon: float = 900.0,
        max_link_emits: int = 8,
        max_principals: int = 100_000,
        scale_warmup: int = 256,
        member_records: int = MEMBER_RECORDS,
    ) -> None:
        super().__init__(profile=profile)
        if not 1 <= min_shared <= top_s or not 1 <= link_shared <= top_s:
            raise ValueError("neardup: 1 <= min_shared <= top_s and 1 <= link_shared <= top_s are required")
        if not 1 <= min_hits <= high_hits:
            raise ValueError("neardup: 1 <= min_hits <= high_hits is required")
        if levels < 1 or window < 1 or max_queries < 1 or table_factor <= 0 or hits_window < 1 or link_weight < 0:
            raise ValueError("neardup: levels, window, max_queries, table_factor and hits_window must be positive")
        if member_records < 1:
            raise ValueError("neardup: member_records >= 1 is required")
        self.salt = salt
        self.levels = levels
        self.window = window
        self.top_s = top_s
        self.min_shared = min_shared
        self.max_queries = max_queries
        self.table_factor = table_factor
        self.hits_window = hits_window
        self.min_hits = min_hits
        self.high_hits = high_hits
        self.high_chains = high_chains
        self.link_weight = link_weight
        self.link_shared = link_shared
        self.link_horizon = link_horizon
        self.max_link_emits = max_link_emits
        self.max_principals = max_principals
        self.scale_warmup = scale_warmup
        self.member_records = member_records
        self._dim = profile.expected_dim()
        self._warm: list[Vector] = []
        self._box: tuple[Vector, Vector] | None = None
        self._twins = 0  # hashes natural twins share at most (their 99th percentile); 0 on sparse data
        self._fp: Fingerprinter | None = (
            self._fingerprinter(self._dim) if self._dim and self._has_scale(self._dim) else None
        )
        self._index = FingerprintIndex(capacity=max_queries, top_s=top_s, table_factor=table_factor)
        self._principals: PrincipalStates[_Chains] = PrincipalStates(_Chains, max_principals)
        self._actors: PrincipalStates[_Chains] = PrincipalStates(_Chains, max(1, max_principals // 10))
        self._names: dict[int, str] = {}

    # -- set-up -------------------------------------------------------------------------
    def _has_scale(self, dim: int) -> bool:
        bounds = self.profile.bounds()
        ref = self.profile.reference
        return (bounds is not None and bounds[0].shape[0] == dim) or (
            ref is not None and ref.ndim == 2 and ref.shape[1] == dim and ref.shape[0] > 0
        )

    def _learn_scale(self, x: Vector) -> Fingerprinter | None:
        """A model with neither ranges nor reference: take the scale from the first queries.

        Guessing a scale is worse than waiting: with [0, 1] assumed, pixel values of 0-16
        all clip into one bin and every image looks like every other. The first
        ``scale_warmup`` queries (all principals together) set each feature's range from
        its 1st to 99th percentile; they are not fingerprinted. A principal that floods the
        warm-up can only widen the bins, which makes near-duplicates easier to see.
        """
        self._warm.append(np.array(x, dtype=np.float64))
        if len(self._warm) < self.scale_warmup:
            return None
        rows = np.vstack(self._warm)
        self._warm = []
        lo, hi = np.quantile(rows, 0.01, axis=0), np.quantile(rows, 0.99, axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-9)
        return self._build_fingerprinter(self._dim or rows.shape[1], lo - pad, hi + pad)

    def _fingerprinter(self, dim: int) -> Fingerprinter:
        """Quantisation steps from the profile's ranges, else its reference sample."""
        bounds = self.profile.bounds()
        ref = self.profile.reference
        if bounds is not None and bounds[0].shape[0] == dim:
            lo, hi = bounds
            fp = self._build_fingerprinter(dim, lo, hi, sampled=False)
            if ref is not None and ref.ndim == 2 and ref.shape[1] == dim:
                self._twins = self._natural_twins(fp, ref)
            return fp
        if ref is not None and ref.ndim == 2 and ref.shape[1] == dim and ref.shape[0] > 0:
            lo, hi = ref.min(axis=0).astype(np.float64), ref.max(axis=0).astype(np.float64)
            fp = self._build_fingerprinter(dim, lo, hi)
            self._twins = self._natural_twins(fp, ref)
            return fp
        raise DetectorError("neardup: no feature scale; _learn_scale should have been used")

    def _natural_twins(self, fp: Fingerprinter, ref: np.ndarray) -> int:
        """How many hashes a natural record shares with its closest natural twin, at most
        (the 99th percentile), when the data is dense; 0 when twins are rare.

        On dense tabular data (one-hot encoded, few continuous columns: two thirds of Adult's
        reference rows have a twin at ``min_shared``) a customer's records near-duplicate
        each other and everyone's all the time, and chains of them grow as fast as a walk's.
        There a hit must share more hashes than natural twins do, as Blacklight sets its match
        threshold above what benign pairs reach. Images, and tabular data with several
        continuous columns, have no twins in their reference sample and keep ``min_shared``."""
        rows = np.asarray(ref, dtype=np.float64)
        index = FingerprintIndex(capacity=max(1, rows.shape[0]), top_s=self.top_s, table_factor=self.table_factor)
        closest: list[int] = []
        for x in rows:
            probe = index.probe(fp.fingerprint(x))
            bar = max(1, math.ceil(self.min_shared * probe.n / self.top_s)) if probe.n < self.top_s else self.min_shared
            exact = fp.exact(x)
            found = index.lookup(probe, bar)
            shared = [s for s, e in zip(found.shared().tolist(), found.exact.tolist(), strict=True) if e != exact]
            if shared:
                closest.append(max(shared))
            index.insert(probe, exact=exact, principal=0, actor=0, chain=0, ts=0.0)
        if not rows.shape[0] or len(closest) < _TWIN_SHARE * rows.shape[0]:
            return 0
        return math.ceil(float(np.quantile(closest, _TWIN_QUANTILE)))

    def _build_fingerprinter(self, dim: int, lo: Vector, hi: Vector, *, sampled: bool = True) -> Fingerprinter:
        """The fingerprinter for the feature ranges ``lo``-``hi``; also sets the valid input
        box, one quantisation bin past them, and ``_SAMPLE_PAD`` wider when they are a sample's span."""
        width = hi - lo
        step = np.where(width > 0, width, 1.0) / self.levels
        pad = step + (_SAMPLE_PAD * width if sampled else 0.0)
        self._box = (np.asarray(lo - pad, dtype=np.float64), np.asarray(hi + pad, dtype=np.float64))
        window = self.window
        shape = self.profile.shape
        if self.profile.input_kind is InputKind.IMAGE and shape and len(shape) >= 2:
            window = min(window, int(math.prod(shape[1:])))  # a window never spans more than one row
        return Fingerprinter(lo=lo, step=step, levels=self.levels, window=window, top_s=self.top_s, salt=self.salt)

    # -- the contract -------------------------------------------------------------------
    def update(self, interaction: Interaction) -> list[Signal]:
        x = interaction.features
        if x is None or x.ndim != 1 or x.shape[0] == 0:
            return []
        if self._fp is None:
            if self._dim is None:
                self._dim = int(x.shape[0])
            if x.shape[0] != self._dim:
                return []
            self._fp = self._fingerprinter(self._dim) if self._has_scale(self._dim) else self._learn_scale(x)
            if self._fp is None:
                return []  # still learning the feature scale from the first queries
        fp = self._fp
        if x.shape[0] != self._dim:
            return []
        exact = fp.exact(x)
        probe = self._index.probe(fp.fingerprint(x))
        st = self._principals.get(interaction.principal)
        if st.key == 0:
            st.key = stable_hash(interaction.principal.encode())
            self._remember(st.key, interaction.principal)
        ast = self._actor_state(interaction, st)
        actor_key = ast.key if ast is not None else 0
        min_shared, link_shared = self.min_shared, self.link_shared
        if probe.n < self.top_s:  # short vectors have fewer windows: scale the bars with them
            min_shared = max(1, math.ceil(min_shared * probe.n / self.top_s))
            link_shared = max(1, math.ceil(link_shared * probe.n / self.top_s))
        if self._twins:  # dense data: closer than natural twins are
            min_shared = max(min_shared, min(self._twins + 1, probe.n))
            link_shared = max(link_shared, min_shared)
        found = self._index.lookup(probe, min_shared)
        since = interaction.ts - self.link_horizon
        chain, hit, repeat, peers = _classify(found, exact, st.key, actor_key, since, link_shared)
        if st.sent_before(exact):  # e.g. two monitoring probes of near-identical records, alternating
            hit, repeat, peers = False, True, []
        self._index.insert(probe, exact=exact, principal=st.key, actor=actor_key, chain=chain, ts=interaction.ts)

        st.queries += 1
        if repeat:
            st.repeats += 1
        renamed = None
        if not hit and not repeat:
            renamed = self._fresh_record(interaction, st, ast)
        n = st.hit(chain, self.hits_window, self.min_hits) if hit else 0
        off_box = hit and self._outside(x) >= _OFF_BOX_FEATURES
        binned = x * fp.inv_step if hit else x  # in bins: every feature on its own range's scale
        if hit:
            st.outside += off_box
            _remember_output(st, interaction)
            _remember_step(st, binned)
        sig = self._crossing(interaction, st, n, "principal") if hit else None
        if ast is not None:
            ast.queries += 1
            ast.repeats += repeat
            if hit:
                ast.outside += off_box
                an = ast.hit(chain, self.hits_window, self.min_hits)
                _remember_output(ast, interaction)
                _remember_step(ast, binned)
                if sig is None:
                    sig = self._crossing(interaction, ast, an, "actor")
        related = self._links(st, peers, chain, interaction.ts) if peers and _dominant(st, chain) else ()
        if sig is None:
            sig = renamed
        if sig is None and not related:
            return []
        if sig is None:
            evidence: Evidence = {"near_duplicate_peers": len(related), "near_duplicate_hits_total": st.near}
            return [
                self.signal(
                    interaction,
                    score=0.05,
                    severity=Severity.INFO,
                    evidence=evidence,
                    related=related,
                    link_weight=self.link_weight,
                )
            ]
        level, score, evidence, technique = sig
        return [
            self.signal(
                interaction,
                score=score,
                severity=level,
                evidence=evidence,
                technique=technique,
                related=related,
                link_weight=self.link_weight if related else 0.0,
            )
        ]

    def state_size(self) -> int:
        return len(self._principals)

    def calibration(self) -> dict[str, Calibration]:
        peaks = tuple(float(st.peak) for _, st in self._principals.items())
        # never below two photos' worth of mild edits: a small calibration set may hold no
        # customer who edits a lot, and a threshold at its maximum would flag the next one
        return {"min_hits": Calibration(values=peaks, alarm_above=True, floor=24.0)}

    @property
    def twin_shared(self) -> int:
        """Hashes natural twins share at most on dense data (a hit must share more); 0 when
        the reference sample has too few twins to matter."""
        return self._twins

    def stored_queries(self) -> int:
        """How many fingerprints the global index holds."""
        return len(self._index)

    def index_bytes(self) -> int:
        return self._index.nbytes()

    # -- internals ----------------------------------------------------------------------
    def _actor_state(self, interaction: Interaction, st: _Chains) -> _Chains | None:
        """The counts of the principal's actor, None when it is in none."""
        if not interaction.actor:
            return None
        ast = self._actors.get(interaction.actor)
        if ast.key == 0:
            ast.key = stable_hash(interaction.actor.encode())
        return ast

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Bring each part's chain counts to the actor: a principal's own (which it keeps,
        for its link evidence), or a former actor's (which is gone)."""
        into: _Chains | None = None
        for part in parts:
            other = self._actors.pop(part) or self._principals.peek(part)
            if other is None:
                continue
            if into is None:
                into = self._actors.get(actor)
                if into.key == 0:
                    into.key = stable_hash(actor.encode())
            for chain, (count, _, _) in (other.chains or {}).items():
                if count:
                    into.hit(chain, self.hits_window, self.min_hits, count)
            into.queries += other.queries
            into.repeats += other.repeats
            into.outside += other.outside
            into.level = max(into.level, other.level)
            for key in other.members:
                into.members = remember(into.members, key)

    def _remember(self, key: int, principal: str) -> None:
        names = self._names
        names[key] = principal
        if len(names) > 2 * self.max_principals:
            for old in list(names)[: self.max_principals]:
                del names[old]

    def _links(self, st: _Chains, peers: list[int], chain: int, ts: float) -> tuple[str, ...]:
        """Peers owed link evidence: each time the pair's hit count reaches a power of two it
        never reached before (the first hit once per pair, whichever way). The count restarts
        after ``link_horizon`` seconds without a hit on that peer: the keys of a split walk
        hit each other's steps minutes apart, while two heavy customers of a dense table
        near-duplicate each other's natural records now and then over days, and must not add
        that up to a merge.

        Only a peer that walks the chain itself (has near-duplicate hits in it) is owed any:
        the keys of a split walk each step along it, while a monitoring probe re-sending one
        record every minute keeps a popular record fresh in the index without a single hit,
        and customers whose natural records near-duplicate that record are not its walk."""
        if self.link_weight <= 0 or self.max_link_emits <= 0:
            return ()
        if st.links is None:
            st.links = {}
        links = st.links
        out: list[str] = []
        for p in peers:
            name = self._names.get(p)
            peer = self._principals.peek(name) if name is not None else None
            walked = peer.chains.get(chain) if peer is not None and peer.chains is not None else None
            if not walked or walked[0] <= 0:
                continue
            entry = links.get(p)
            if entry is None:
                if len(links) >= _MAX_LINK_PEERS:
                    continue
                entry = links[p] = [0, ts, 0]
            elif isinstance(entry, int):  # a snapshot from before counts restarted
                entry = links[p] = [entry, ts, entry]
            if ts - entry[1] > self.link_horizon:
                entry[0] = 0
            entry[0] += 1
            entry[1] = ts
            count = int(entry[0])
            if count <= entry[2]:
                continue
            entry[2] = count
            emit = count & (count - 1) == 0 and count.bit_length() <= self.max_link_emits
            if count == 1 and peer is not None and peer.links is not None and st.key in peer.links:
                # a first cross hit counts once per pair: two busy customers of a dense table
                # give each other one by chance, in each direction
                emit = False
            if emit and name is not None:
                out.append(name)
        return tuple(out)

    def _crossing(
        self, interaction: Interaction, st: _Chains, n: int, scope: str
    ) -> tuple[Severity, float, Evidence, str] | None:
        if n < self.min_hits:
            return None
        level = Severity.HIGH if n >= self.high_hits or st.long >= self.high_chains else Severity.MEDIUM
        technique = _technique(st.recent, st.outside / max(1, st.near))
        drift = technique != EXTRACTION and _drifting(st)  # off the box is no feed's reading
        if drift:
            level = Severity.LOW  # a drifting feed: no walk an attacker would take (see _drifting)
        if level <= st.level:
            return None
        st.level = level
        st.technique = technique
        runner_up = ""
        if st.technique == ADVERSARIAL:
            st.technique, runner_up = self._walk_technique(st)
        return self._report(st, level, n, scope, runner_up)

    def _outside(self, x: Vector) -> float:
        """Share of the features outside the valid input box (NaN counts as outside)."""
        if self._box is None:
            return 0.0
        lo, hi = self._box
        inside = int(np.count_nonzero((x >= lo) & (x <= hi)))
        return 1.0 - inside / max(1, int(x.shape[0]))

    def _walk_technique(self, st: _Chains) -> tuple[str, str]:
        digests = training_digests(self.profile) is not None
        return walk_technique(len(st.members), digests=digests, many_sites=False, member_records=self.member_records)

    def _fresh_record(
        self, interaction: Interaction, st: _Chains, ast: _Chains | None
    ) -> tuple[Severity, float, Evidence, str] | None:
        """Note a fresh query that is an exact training row; a walker named AML.T0043 whose
        candidate list this completes is reported again, as membership inference."""
        digests = training_digests(self.profile)
        if digests is None:
            return None
        key = row_digest_of(interaction)
        if not is_training_row(digests, key):
            return None
        out = None
        for scope, state in (("principal", st), ("actor", ast)):
            if state is None:
                continue
            state.members = remember(state.members, key)
            if out is None and state.level >= Severity.MEDIUM and state.technique == ADVERSARIAL:
                technique, runner_up = self._walk_technique(state)
                if technique == MEMBERSHIP:
                    state.technique = technique
                    out = self._report(state, state.level, state.peak, scope, runner_up)
        return out

    def _report(
        self, st: _Chains, level: Severity, n: int, scope: str, runner_up: str
    ) -> tuple[Severity, float, Evidence, str]:
        recent = st.recent or ()
        low_margin = sum(1 for _, _, m in recent if m < _LOW_MARGIN)
        evidence: Evidence = {
            "scope": scope,
            "chain_hits": n,
            "long_chains": st.long,
            "threshold": self.min_hits,
            "near_duplicate_hits_total": st.near,
            "exact_repeats": st.repeats,
            "off_box_share": round(st.outside / max(1, st.near), 3),
            "queries": st.queries,
            "low_margin_share": round(low_margin / len(recent), 3) if recent else None,
        }
        steps = getattr(st, "steps", None)  # a snapshot from before the slot existed has none
        if steps is not None and steps.ratios:
            evidence["spread_ratio"] = round(steps.median(), 2)
            if level == Severity.LOW:
                evidence["drifting"] = True
        if runner_up:
            evidence["runner_up"] = runner_up
            if training_digests(self.profile) is not None:
                evidence["training_records"] = len(st.members)
        score = min(1.0, 0.5 + 0.5 * (n - self.min_hits) / max(1, self.high_hits - self.min_hits))
        return level, score, evidence, st.technique


def _classify(
    found: Matches, exact: int, me: int, actor: int, since: float, link_shared: int
) -> tuple[int, bool, bool, list[int]]:
    """(chain joined, near-duplicate hit?, exact repeat of own query?, other principals matched
    at or after ``since`` with at least ``link_shared`` hashes, outside the principal's actor,
    most recent first).

    The chain is the oldest among the near-duplicates' chains, so a walk that bridges two
    fragments keeps counting into the first; else an exact copy's (a retry stays in its
    chain without counting); else 0 (a new chain). Matches are few, so plain lists are
    faster here than numpy."""
    if not len(found):
        return 0, False, False, []
    exacts = found.exact.tolist()
    principals = found.principal.tolist()
    chains = found.chain.tolist()
    repeat = copied = False
    chain = 0
    near: list[int] = []
    for i, e in enumerate(exacts):
        if e == exact:
            copied = True
            repeat = repeat or principals[i] == me
        else:
            near.append(i)
            if chain == 0 or chains[i] < chain:
                chain = chains[i]
    if not near or copied:  # a copy of a stored query asks nothing new, whoever stored it
        return chain or chains[0], False, repeat, []
    times = found.ts.tolist()
    candidates = [i for i in near if principals[i] != me and times[i] >= since]
    if not candidates:
        return chain, True, repeat, []
    shared = found.shared().tolist()
    actors = found.actor.tolist() if actor else None
    peers: list[int] = []
    for i in reversed(candidates):
        p = principals[i]
        if shared[i] < link_shared or p in peers or (actors is not None and actors[i] == actor):
            continue
        peers.append(p)
        if len(peers) >= _MAX_RELATED:
            break
    return chain, True, repeat, peers


def _dominant(st: _Chains, chain: int) -> bool:
    """True when most of the principal's last few hits joined this chain: a split attack's
    keys keep feeding the walk's current chain, while a customer on dense data (where many
    natural records near-duplicate each other) lands each hit in a different one."""
    return len(st.last) >= _LAST_HITS and st.last.count(chain) >= _LAST_HITS - 1


def _remember_step(st: _Chains, x: Vector) -> None:
    steps = getattr(st, "steps", None)  # a snapshot from before the slot existed has none
    if steps is None:
        steps = st.steps = Spread()
    steps.add(x)


def _drifting(st: _Chains) -> bool:
    """True when the principal's recent hits diffuse like a random walk, most of them answered
    off the decision boundary: a machine's readings drifting for hours, not an attack.

    An evasion or membership walk either circles one point (the Boundary attack's candidates
    around its current point, HopSkipJump's gradient probes: a spread ratio near 1) or heads
    somewhere (a bisection, an optimiser: far above the random walk's 2.24), and what it
    learns shows in its answers. A walk that wanders without converging or advancing teaches an
    attacker nothing it wants; one that stays on the boundary is judged as a walk."""
    steps: Spread | None = getattr(st, "steps", None)
    recent = st.recent
    if steps is None or not recent:
        return False
    if 2 * sum(1 for _, _, m in recent if m < _LOW_MARGIN) >= len(recent):
        return False  # a walk that lives on the boundary is probing it, whatever its shape
    return steps.diffusing()


def _remember_output(st: _Chains, interaction: Interaction) -> None:
    out = interaction.output
    if out is None or out.probabilities is None or not 2 <= out.probabilities.shape[0] <= 1024:
        return
    probs = out.probabilities.tolist()
    top_p = max(probs)
    if not math.isfinite(top_p):
        return
    top = probs.index(top_p)
    probs[top] = -math.inf
    margin = top_p - max(probs)
    if st.recent is None:
        st.recent = deque(maxlen=_RECENT)
    st.recent.append((top, top_p, margin if math.isfinite(margin) else 0.0))


def _technique(recent: deque[tuple[int, float, float]] | None, off_box_share: float) -> str:
    """A chain whose hits mostly lie off the valid input box is extraction (functionally-
    equivalent extraction walks wherever the network's kinks are, far off the data; evasion
    and inversion must end in a valid input, so their walks stay in the box); one whose
    recent outputs settled on one class (a boundary walk keeps crossing between two) with
    its confidence climbing and its margin widening is inversion; anything else is boundary
    probing. Exact repeats name nothing: a line search re-asks points, but so does an
    optimiser that estimates gradients by finite differences around its current point."""
    if off_box_share >= _EXTRACTION_OFF_BOX:
        return EXTRACTION
    return INVERSION if _inverting(recent) else ADVERSARIAL


def _inverting(recent: deque[tuple[int, float, float]] | None) -> bool:
    if not recent or len(recent) < 16:
        return False
    rows = list(recent)
    main = rows[-1][0]
    classes = [c for c, _, _ in rows]
    flips = sum(1 for a, b in itertools.pairwise(classes) if a != b)
    if flips > 0.1 * len(rows) or classes[len(rows) // 2 :].count(main) < 0.9 * (len(rows) - len(rows) // 2):
        return False
    kept = [(p, m) for c, p, m in rows if c == main]
    if len(kept) < 8:
        return False
    conf = np.array([p for p, _ in kept])
    margin = np.array([m for _, m in kept])
    quarter = len(kept) // 4
    climbed = float(conf[-quarter:].mean() - conf[:quarter].mean())
    widened = float(margin[-quarter:].mean() - margin[:quarter].mean())
    # a boundary walk that stays on the adversarial side keeps one class too, but its
    # margin shrinks towards the boundary; an inversion pulls away from every other class
    return climbed > 0.05 and widened > 0.05
