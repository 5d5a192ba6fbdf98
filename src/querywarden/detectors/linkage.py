"""Linkage: evidence that several principals are one actor, from their clients and behaviour.

The engine's actor graph merges two principals once the link evidence between them reaches
its ``link_threshold`` (3.0 by default). This detector supplies two kinds of it, as ``info``
signals that name the other principals in ``related``; it never raises a finding itself.

*Client linkage* (weak). Principals that send from the same IP prefix (IPv4 /24, IPv6 /48)
with the same user agent are linked once per pair with ``client_weight``. Many customers sit
behind one corporate NAT with one browser build, so this must never merge anyone alone:
keep ``client_weight`` well below the graph's threshold.

*Behaviour linkage* (stronger). A split attack's keys share what the attack cannot hide:
their queries are synthetic in the same way, and they run at the same time. Each principal
carries a running signature of its queries: the share far from the profile's reference
sample (mean squared z-score above the reference's own ``off_quantile``), the share with
fractional values on features the reference only ever holds as whole numbers (a quantised
grid), and the mean and spread of its inputs scaled to the feature ranges. A principal
whose signature is synthetic (either share at least ``synthetic_share``) after
``min_queries`` queries is compared with the other synthetic principals active within
``horizon`` seconds; those within ``tolerance`` on every component are linked with
``behaviour_weight``, and again at ``2 * min_queries`` queries if they still match. Two such
links merge a pair, so keys that each send uniformly random or Jacobian-augmented queries in
the same campaign become one actor, while customers sending natural inputs never qualify.

Blind spots: natural-data extraction split over keys with unrelated clients (nothing
synthetic to share); keys of one campaign run days apart (outside ``horizon``); an
attacker who gives each key a different synthetic style. Near-duplicate chains shared by
keys are the ``neardup`` detector's link evidence.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

import numpy as np

from querywarden.core.atlas import API_ACCESS
from querywarden.core.detector import Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal

_MAX_PEERS = 64
_FULL_RATE_QUERIES = 64
_SAMPLE_EVERY = 8


class _Principal:
    __slots__ = (
        "checkpoints",
        "client",
        "client_raw",
        "first_ts",
        "grid_off",
        "last_ts",
        "linked_client",
        "mean_u",
        "n",
        "off",
        "queries",
        "sq_u",
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
        self.client_raw: tuple[str, str] | None = None
        self.client: str | None = None
        self.linked_client: set[str] | None = None

    def signature(self) -> np.ndarray:
        n = max(1, self.n)
        mean = self.mean_u / n
        spread = max(0.0, self.sq_u / n - mean * mean) ** 0.5
        return np.array([self.off / n, self.grid_off / n, mean, spread])


class LinkageDetector(Detector):
    name = "linkage"
    technique = API_ACCESS
    description = "links principals that share a client prefix and agent, or the same synthetic query style at once"
    needs = frozenset({"features"})

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
        self.client_weight = client_weight
        self.behaviour_weight = behaviour_weight
        self.min_queries = min_queries
        self.synthetic_share = synthetic_share
        self.tolerance = tolerance
        self.horizon = horizon
        self.off_quantile = off_quantile
        self.group_size = group_size
        self.max_groups = max_groups
        self.pool_size = pool_size
        self.max_principals = max_principals
        self._states: PrincipalStates[_Principal] = PrincipalStates(_Principal, max_principals)
        self._groups: OrderedDict[str, list[str]] = OrderedDict()
        self._pool: OrderedDict[str, tuple[np.ndarray, float, float]] = OrderedDict()
        self._reference = self._reference_stats(profile)
        self._ones = np.ones(self._reference[0].shape[0]) if self._reference is not None else np.ones(0)

    # -- set-up -------------------------------------------------------------------------
    def _reference_stats(
        self, profile: ModelProfile
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray | None] | None:
        """Range scaling, the reference's mean and 1/sd in scaled units, its off-manifold cut,
        and the features it only ever holds as whole numbers."""
        ref = profile.reference
        if ref is None or ref.ndim != 2 or ref.shape[0] < 20:
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
        integral = np.all(ref == np.round(ref), axis=0)
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
        self._fold(st, x)
        due = self.min_queries * (2**st.checkpoints)
        if st.checkpoints < 2 and st.n >= due:
            st.checkpoints += 1
            peers = self._behaviour_peers(interaction.principal, st)
            if peers:
                signals.append(self._link(interaction, peers, self.behaviour_weight, "behaviour"))
        return signals

    def state_size(self) -> int:
        return len(self._states)

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
    def _fold(self, st: _Principal, x: np.ndarray) -> None:
        """Fold one query into the principal's signature.

        Everything is computed on the input scaled to its ranges and clipped to [-1, 2], so
        huge values cannot overflow and NaN lands at the low edge."""
        ref = self._reference
        assert ref is not None
        lo, inv_width, mean, inv_sd, cut, integral = ref
        u = x * inv_width
        u -= lo
        np.fmax(u, -1.0, out=u)
        np.fmin(u, 2.0, out=u)
        d = u.shape[0]
        st.n += 1
        st.mean_u += float(u @ self._ones) / d
        st.sq_u += float(u @ u) / d
        z = (u - mean) * inv_sd
        st.off += float(z @ z) / d > cut
        if integral is not None:
            xi = x[integral]
            st.grid_off += np.count_nonzero(xi != np.round(xi)) > 0.25 * xi.shape[0]

    def _behaviour_peers(self, principal: str, st: _Principal) -> tuple[str, ...]:
        sig = st.signature()
        if max(sig[0], sig[1]) < self.synthetic_share:
            self._pool.pop(principal, None)
            return ()
        pool = self._pool
        peers: list[str] = []
        recent = st.first_ts - self.horizon
        for other, (osig, _first, last) in pool.items():
            if other == principal or last < recent:
                continue
            if float(np.max(np.abs(osig - sig))) <= self.tolerance:
                peers.append(other)
        pool[principal] = (sig, st.first_ts, st.last_ts)
        pool.move_to_end(principal)
        if len(pool) > self.pool_size:
            pool.popitem(last=False)
        # refresh the peers' activity so a long campaign stays within the horizon
        for other in peers:
            ost = self._states.peek(other)
            if ost is not None:
                pool[other] = (pool[other][0], ost.first_ts, ost.last_ts)
        return tuple(peers[:_MAX_PEERS])

    def _link(self, interaction: Interaction, peers: tuple[str, ...], weight: float, kind: str) -> Signal:
        return self.signal(
            interaction,
            score=0.05,
            severity=Severity.INFO,
            evidence={"link": kind, "peers": len(peers)},
            related=peers,
            link_weight=weight,
        )


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
