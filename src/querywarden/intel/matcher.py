"""The feed snapshot the ``intel`` detector reads: every indicator, indexed for fast lookups.

Lookups cost no more than a handful of dict probes whatever the feed's size:

- principals and fingerprints: one dict probe each;
- addresses: networks are bucketed by prefix length, each bucket a dict from the
  network's integer to its indicators. An address is masked once per prefix length
  present in the feed, longest first: at most 33 probes for IPv4 (129 for IPv6), in
  practice the few lengths a feed uses (/32, /24, /16 ...). Results are cached per
  address, since clients repeat. Every matching network is returned, not only the most
  specific, since overlapping feeds can say different things.

A matcher's indicators are fixed once built and it is pure (no I/O, no clock: validity is checked against
the interaction's ``ts``), so one instance is shared by every detector clone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from querywarden.core.records import Interaction
from querywarden.intel.fingerprint import fingerprint
from querywarden.intel.indicators import Indicator

CACHE_SIZE = 65_536
"""Addresses whose lookup result is remembered."""


def _parse(address: str) -> tuple[int, int] | None:
    """(IP version, integer) of an address; dotted IPv4 is parsed by hand (the common case,
    several times faster than ``ipaddress``). An IPv4-mapped IPv6 address counts as IPv4."""
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        a, b, c, d = (int(p) for p in parts)
        if a < 256 and b < 256 and c < 256 and d < 256:
            return 4, (a << 24) | (b << 16) | (c << 8) | d
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return 4, int(ip.ipv4_mapped)  # ::ffff:203.0.113.7 is 203.0.113.7
    return ip.version, int(ip)


class IntelMatcher:
    def __init__(self, indicators: Iterable[Indicator] = ()) -> None:
        self._principals: dict[str, list[Indicator]] = {}
        self._fingerprints: dict[str, list[Indicator]] = {}
        # per IP version: prefix length -> network integer -> indicators
        self._nets: dict[int, dict[int, dict[int, list[Indicator]]]] = {4: {}, 6: {}}
        self._lengths: dict[int, tuple[int, ...]] = {4: (), 6: ()}
        self._count = 0
        self._cache: dict[str, list[Indicator]] = {}
        for ind in indicators:
            self._add(ind)
        self._lengths = {v: tuple(sorted(self._nets[v], reverse=True)) for v in (4, 6)}

    def _add(self, ind: Indicator) -> None:
        self._count += 1
        if ind.kind == "principal":
            self._principals.setdefault(ind.value, []).append(ind)
        elif ind.kind == "fingerprint":
            self._fingerprints.setdefault(ind.value, []).append(ind)
        elif ind.kind == "network":
            net = ipaddress.ip_network(ind.value)
            bucket = self._nets[net.version].setdefault(net.prefixlen, {})
            bucket.setdefault(int(net.network_address), []).append(ind)
        else:
            raise ValueError(f"unknown indicator kind {ind.kind!r}")

    def __len__(self) -> int:
        return self._count

    @property
    def watches_fingerprints(self) -> bool:
        return bool(self._fingerprints)

    def by_address(self, address: str) -> list[Indicator]:
        """Every network indicator containing ``address`` (empty for a malformed address).

        Results are cached per address (clients repeat), in a dict that is emptied when it
        reaches ``CACHE_SIZE``, so memory stays bounded.
        """
        cache = self._cache
        found = cache.get(address)
        if found is None:
            found = self._lookup(address)
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[address] = found
        return found

    def _lookup(self, address: str) -> list[Indicator]:
        parsed = _parse(address)
        if parsed is None:
            return []
        version, value = parsed
        bits = 32 if version == 4 else 128
        found: list[Indicator] = []
        nets = self._nets[version]
        for length in self._lengths[version]:
            hits = nets[length].get(value >> (bits - length) << (bits - length))
            if hits:
                found.extend(hits)
        return found

    def by_principal(self, principal: str) -> list[Indicator]:
        return list(self._principals.get(principal, ()))

    def by_fingerprint(self, algorithm: str, value: str) -> list[Indicator]:
        return [i for i in self._fingerprints.get(value, ()) if i.algorithm in (None, algorithm)]

    def match(self, interaction: Interaction) -> list[tuple[str, str, Indicator]]:
        """``(on, value, indicator)`` for every indicator valid at ``interaction.ts`` that it matches."""
        out: list[tuple[str, str, Indicator]] = []
        ts = interaction.ts
        if self._principals:
            out.extend(("principal", interaction.principal, i) for i in self.by_principal(interaction.principal))
        ip = interaction.client.ip
        if ip and (self._lengths[4] or self._lengths[6]):
            out.extend(("client.ip", ip, i) for i in self.by_address(ip))
        if self._fingerprints:
            fp = fingerprint(interaction)
            if fp is not None:
                out.extend(("fingerprint", fp[1], i) for i in self.by_fingerprint(*fp))
        return [m for m in out if m[2].valid_at(ts)]

    def indicators(self) -> list[Indicator]:
        """Every indicator, for listing (principals, then fingerprints, then networks)."""
        out = [i for group in self._principals.values() for i in group]
        out += [i for group in self._fingerprints.values() for i in group]
        out += [i for v in (4, 6) for bucket in self._nets[v].values() for group in bucket.values() for i in group]
        return out


__all__ = ["IntelMatcher"]
