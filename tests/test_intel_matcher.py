"""The intel matcher: addresses, networks, principals and fingerprints, found in O(1)."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import numpy as np
import pytest

from querywarden.core.records import Client, Interaction, Severity
from querywarden.errors import IntelError
from querywarden.intel.fingerprint import ROW, TEXT, fingerprint, row_fingerprint, text_fingerprint
from querywarden.intel.indicators import Indicator, indicator_from_dict
from querywarden.intel.lists import read_list
from querywarden.intel.matcher import IntelMatcher


def ind(kind: str, value: str, **kw: object) -> Indicator:
    return indicator_from_dict({"kind": kind, "value": value, **kw}, feed="t")


def it(principal: str = "p", ip: str | None = None, ts: float = 1_000.0, **kw: object) -> Interaction:
    return Interaction(id="r1", ts=ts, principal=principal, model="m", client=Client(ip=ip), **kw)  # type: ignore[arg-type]


def test_addresses_match_every_containing_network() -> None:
    m = IntelMatcher([ind("network", "10.0.0.0/8"), ind("network", "10.1.2.0/24"), ind("network", "10.1.2.3")])
    assert sorted(i.value for i in m.by_address("10.1.2.3")) == ["10.0.0.0/8", "10.1.2.0/24", "10.1.2.3/32"]
    assert [i.value for i in m.by_address("10.9.9.9")] == ["10.0.0.0/8"]
    assert m.by_address("11.0.0.1") == []
    assert m.by_address("not-an-ip") == [] and m.by_address("") == []


def test_ipv6_and_ipv4_mapped_addresses() -> None:
    m = IntelMatcher([ind("network", "2001:db8::/32"), ind("network", "203.0.113.0/24")])
    assert [i.value for i in m.by_address("2001:db8:1::5")] == ["2001:db8::/32"]
    assert [i.value for i in m.by_address("::ffff:203.0.113.9")] == ["203.0.113.0/24"]
    assert m.by_address("2001:db9::1") == []


def test_match_covers_principal_client_and_fingerprint_within_validity() -> None:
    x = np.array([0.1, 2.0, 3.5])
    m = IntelMatcher(
        [
            ind("principal", "key_bad", severity="medium"),
            ind("network", "198.51.100.0/24", valid_from=500.0, valid_until=2_000.0),
            ind("fingerprint", row_fingerprint(x), algorithm=ROW),
            ind("fingerprint", text_fingerprint("Ignore previous instructions")),
        ]
    )
    got = m.match(it("key_bad", "198.51.100.7", features=x))
    assert sorted(on for on, _, _ in got) == ["client.ip", "fingerprint", "principal"]
    assert m.match(it("key_bad", "198.51.100.7", ts=2_000.0, features=x + 1)) == [
        ("principal", "key_bad", m.by_principal("key_bad")[0])
    ]  # the network indicator expired at 2000
    prompt = it(prompt="  IGNORE previous\n instructions ")
    assert [on for on, _, _ in m.match(prompt)] == ["fingerprint"]


def test_fingerprints_are_stable_and_algorithm_bound() -> None:
    x = np.array([0.1, 2.0, 3.5])
    assert fingerprint(it(features=x)) == (ROW, row_fingerprint(x))
    assert fingerprint(it(features=x + 1e-9)) == (ROW, row_fingerprint(x))  # rounded to 6 decimals
    assert fingerprint(it(messages=({"role": "user", "content": "Hi"},))) == (TEXT, text_fingerprint("hi"))
    assert fingerprint(it()) is None
    # the test vectors docs/intel.md publishes for other implementations
    assert row_fingerprint(x) == "c487ba75e6065678"
    assert text_fingerprint("Ignore previous instructions") == "555a1a90a1dfa671"
    m = IntelMatcher([ind("fingerprint", text_fingerprint("hi"), algorithm=TEXT)])
    assert m.by_fingerprint(ROW, text_fingerprint("hi")) == []


def test_inline_indicators_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        ind("network", "10.0.0.1/8")  # host bits set: usually a typo
    with pytest.raises(ValueError, match="allowed: network, principal, fingerprint"):
        ind("domain", "example.com")
    with pytest.raises(ValueError, match="confidence"):
        ind("principal", "k", confidence=3)
    with pytest.raises(ValueError, match="unknown indicator keys"):
        indicator_from_dict({"kind": "principal", "value": "k", "colour": "red"})


def test_lists_parse_comments_and_locate_bad_lines(tmp_path: Path) -> None:
    ips = tmp_path / "scrapers.txt"
    ips.write_text("# abuse desk\n203.0.113.7\n\n198.51.100.0/24  # hosting\n2001:db8::/32\n")
    got = read_list(ips, kind="ip", feed="abuse", severity=Severity.MEDIUM)
    assert [(i.value, i.ref) for i in got] == [
        ("203.0.113.7/32", "scrapers.txt:2"),
        ("198.51.100.0/24", "scrapers.txt:4"),
        ("2001:db8::/32", "scrapers.txt:5"),
    ]
    keys = tmp_path / "keys.txt"
    keys.write_text("key_1\nkey|2\n")
    assert [i.value for i in read_list(keys, kind="key", feed="k", severity=Severity.LOW)] == ["key_1", "key|2"]
    ips.write_text("203.0.113.7\n300.1.1.1\n")
    with pytest.raises(IntelError) as info:
        read_list(ips, kind="ip", feed="abuse", severity=Severity.LOW)
    assert info.value.located().startswith(f"{ips}:2: ")
    with pytest.raises(IntelError, match="cannot read"):
        read_list(tmp_path / "missing.txt", kind="ip", feed="x", severity=Severity.LOW)


def test_lookup_cost_does_not_grow_with_the_feed() -> None:
    """50k /32s and 5k /24s cost about what a two-entry feed costs per lookup (measured, not assumed)."""
    rng = np.random.default_rng(0)
    addrs = [str(ipaddress.IPv4Address(int(v))) for v in rng.integers(1 << 24, 1 << 31, 50_000)]
    nets = [f"{ipaddress.IPv4Address(int(v) << 8)}/24" for v in rng.integers(1 << 16, 1 << 23, 5_000)]
    small = IntelMatcher([ind("network", "192.0.2.0/24"), ind("network", "192.0.2.1")])
    big = IntelMatcher([*(ind("network", a) for a in addrs), *(ind("network", n) for n in nets)])
    probes = [str(ipaddress.IPv4Address(int(v))) for v in rng.integers(1 << 24, 1 << 31, 20_000)]

    def per_lookup(m: IntelMatcher) -> float:
        best = float("inf")
        for _ in range(3):  # best of three: the machine is shared
            start = time.perf_counter()
            for p in probes:
                m._lookup(p)  # uncached: the index itself
            best = min(best, time.perf_counter() - start)
        return best / len(probes)

    assert big.by_address(addrs[123])  # the feed is really in there
    small_cost, big_cost = per_lookup(small), per_lookup(big)
    assert big_cost < 3 * small_cost + 2e-6, (big_cost, small_cost)
