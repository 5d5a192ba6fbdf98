"""Attack variants: the same queries, sent the three ways an adversary would send them.

An attack is run once against its victim; the variants only change who sends each
request and when, never what is asked or answered, so the attacker's success from a
prefix of ``k`` queries is the same in every variant and the variants compare fairly.

- ``single``: one API key, one IP, at machine pace (a request every few hundred ms);
- ``sybil``: the same schedule split round-robin, request by request, over 20 keys, each
  with its own unrelated public IP and user agent;
- ``low-and-slow``: one key sending one row per request, the requests spread over the
  whole 14-day timeline and interleaved with benign customers' traffic (no bursts).

In the fast variants a call that asked for many rows at once is cut into requests of at
most ``max_batch`` rows, as an API with a batch limit would force the attacker to do.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from querywarden.bench.benign import CLIENT_AGENTS, DAY, START_TS, api_key, public_ip, request_id
from querywarden.bench.scenario import AttackRun, BenchError
from querywarden.bench.traffic import Request

VARIANTS = ("single", "sybil", "low-and-slow")

ATTACK_START = START_TS + 4 * DAY + 9.5 * 3600.0
"""When fast variants begin: Friday of the first week, 09:30 UTC, with benign traffic
before and after."""


@dataclass(frozen=True, slots=True)
class AttackTraffic:
    """One attack variant as requests, and the principals the attacker used."""

    attack: str
    variant: str
    principals: tuple[str, ...]
    requests: list[Request]

    @property
    def start_ts(self) -> float:
        return self.requests[0].ts if self.requests else ATTACK_START


def calls(run: AttackRun, max_batch: int) -> list[tuple[int, int]]:
    """``(first, stop)`` query index ranges of the attack's requests, in order.

    Queries that shared one ``predict_proba`` call stay together up to ``max_batch`` rows.
    """
    if max_batch < 1:
        raise BenchError("max_batch must be at least 1")
    out: list[tuple[int, int]] = []
    start = 0
    queries = run.queries
    for i in range(1, len(queries) + 1):
        if i == len(queries) or queries[i].batch != queries[start].batch or i - start == max_batch:
            out.append((start, i))
            start = i
    return out


def build(
    run: AttackRun,
    variant: str,
    seed: int,
    *,
    sybil_principals: int = 20,
    days: int = 14,
    max_batch: int = 100,
) -> AttackTraffic:
    """The requests of ``run`` sent as ``variant``. The same arguments give the same traffic."""
    if variant not in VARIANTS:
        raise BenchError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    rng = np.random.default_rng([seed, zlib.crc32(f"{run.victim}/{run.name}/{variant}".encode())])
    spans = calls(run, 1 if variant == "low-and-slow" else max_batch)
    n_keys = sybil_principals if variant == "sybil" else 1
    keys = tuple(api_key(rng) for _ in range(n_keys))
    ips = tuple(public_ip(rng) for _ in range(n_keys))
    agents = tuple(str(rng.choice(CLIENT_AGENTS)) for _ in range(n_keys))
    times = _schedule(rng, spans, variant, days)
    features = run.features()
    probs = np.stack([q.probabilities for q in run.queries]) if run.queries else np.zeros((0, 0))
    logits = None
    if run.queries and all(q.scores is not None for q in run.queries):
        logits = np.stack([q.scores for q in run.queries if q.scores is not None])
    requests = []
    for k, ((lo, hi), ts) in enumerate(zip(spans, times, strict=True)):
        who = k % n_keys
        requests.append(
            Request(
                request_id(rng),
                ts,
                keys[who],
                ips[who],
                agents[who],
                features[lo:hi],
                probabilities=probs[lo:hi],
                scores=None if logits is None else logits[lo:hi],
            )
        )
    # keys past the number of requests never sent anything: they are not the attacker's
    return AttackTraffic(run.name, variant, keys[: min(n_keys, len(requests))], requests)


def _schedule(rng: np.random.Generator, spans: list[tuple[int, int]], variant: str, days: int) -> list[float]:
    """Send times, strictly increasing so the attack's query order is kept in the traffic."""
    n = len(spans)
    if n == 0:
        return []
    if variant == "low-and-slow":
        raw = np.sort(rng.uniform(START_TS, START_TS + days * DAY, size=n))
    else:
        rows = np.array([hi - lo for lo, hi in spans], dtype=np.float64)
        # network round trip plus model time; parallel Sybil workers keep the same pace
        gaps = 0.05 + rng.exponential(0.15, size=n) + 0.001 * rows
        raw = ATTACK_START + np.cumsum(gaps)
    out: list[float] = []
    last = -1.0
    for t in raw:
        ms = round(float(t), 3)
        if ms <= last:
            ms = round(last + 0.001, 3)
        out.append(ms)
        last = ms
    return out
