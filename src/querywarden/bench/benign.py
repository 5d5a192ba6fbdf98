"""Benign workloads: how real customers of a classifier API behave.

A detector that only ever sees attacks learns nothing about its false alarms. These
workloads are the traffic that must never raise a finding at ``medium`` or above, and they
are built to be hard in the ways real customers are hard:

- ``browsing``: a customer scoring a few to a few hundred natural records at human pace,
  in sessions spread over days;
- ``nat``: the same, but many customers share one corporate NAT IP and user agent;
- ``what-if`` (tabular models): one application edited in one or two fields a handful of
  times, each edit taking a value real records hold;
- ``image-edits`` (image models): an app sending mildly edited copies of the same photo
  (one-pixel shifts, a cropped border, brightness);
- ``retries``: a flaky client that re-sends requests seconds later and re-scores records
  it sent days before (exact duplicates);
- ``batch``: a service account scoring its portfolio every night in batches of hundreds,
  tens of thousands of rows in total.

Every row is drawn from the victim's held-out ``benign_pool``, never from what attacks or
detectors are given. Profiles may add held-out habits (:mod:`querywarden.bench.habits`),
which are only scored. Principals are split into a calibration half and a scored half,
stratified by workload so both halves hold every kind of customer.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from querywarden.bench.scenario import BenchError, Matrix, Victim
from querywarden.bench.traffic import Request
from querywarden.core.records import InputKind

START_TS = 1_793_577_600.0
"""2026-11-02T00:00:00Z, a Monday: day 0 of every benchmark timeline."""
DAY = 86_400.0

WORKLOADS = ("browsing", "nat", "what-if", "image-edits", "retries", "batch")

CLIENT_AGENTS = (
    "python-requests/2.32.3",
    "python-httpx/0.28.1",
    "okhttp/4.12.0",
    "Java-http-client/21.0.5",
    "axios/1.7.9",
    "Go-http-client/2.0",
    "node-fetch/3.3.2",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
BATCH_AGENTS = ("python-requests/2.32.3", "Java-http-client/21.0.5", "Apache-HttpClient/5.4.1 (Java/17.0.13)")
CORPORATE_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Edg/131.0.0.0"


@dataclass(frozen=True, slots=True)
class WorkloadSizes:
    """How many benign principals of each kind one victim gets, and how big batch jobs are."""

    principals: int
    """All non-batch principals, calibration and scored halves together."""
    batch_jobs: int
    """Batch service accounts, split between the halves (at least one each)."""
    batch_rows: int
    """Rows one batch job scores over the whole timeline."""
    batch_size: int = 200
    nat_group: int = 25
    """Customers behind one corporate NAT IP."""
    days: int = 14
    held_out_habits: int = 0
    """Customers of each held-out habit (:mod:`querywarden.bench.habits`), scored and never calibrated on."""


@dataclass(frozen=True, slots=True)
class BenignPrincipal:
    principal: str
    workload: str
    requests: list[Request]

    @property
    def rows(self) -> int:
        return sum(r.rows.shape[0] for r in self.requests)


@dataclass(frozen=True, slots=True)
class BenignTraffic:
    """One victim's benign customers: thresholds are calibrated on one half, scored on the other."""

    calibration: list[BenignPrincipal]
    scored: list[BenignPrincipal]

    def requests(self, half: str) -> list[Request]:
        group = self.calibration if half == "calibration" else self.scored
        return [r for p in group for r in p.requests]


def public_ip(rng: np.random.Generator) -> str:
    """A random routable IPv4 address (no private, loopback, CGNAT, link-local or test ranges)."""
    while True:
        a, b, c, d = (int(x) for x in rng.integers(0, 256, size=4))
        if not 1 <= a <= 223 or a in (10, 127, 0) or d in (0, 255):
            continue
        if (a == 100 and 64 <= b <= 127) or (a == 169 and b == 254) or (a == 172 and 16 <= b <= 31):
            continue
        if (a == 192 and b in (0, 168)) or (a == 198 and b in (18, 19, 51)) or (a == 203 and b == 0):
            continue
        return f"{a}.{b}.{c}.{d}"


def api_key(rng: np.random.Generator) -> str:
    """An API key id that looks like every other one, attacker or not."""
    return "key_" + "".join(f"{int(x):02x}" for x in rng.integers(0, 256, size=5))


def request_id(rng: np.random.Generator) -> str:
    """A request id that says nothing about who sent it (benign and attack ids look alike)."""
    return "req-" + "".join(f"{int(x):02x}" for x in rng.integers(0, 256, size=6))


class Builder:
    """Generates one victim's workloads from one seeded random stream."""

    def __init__(self, victim: Victim, sizes: WorkloadSizes, seed: int) -> None:
        pool = np.asarray(victim.benign_pool, dtype=np.float64)
        if pool.ndim != 2 or pool.shape[0] < 10:
            raise BenchError(f"victim {victim.name!r}: benign pool needs at least 10 rows, has {pool.shape}")
        self.victim = victim
        self.sizes = sizes
        self.pool = pool
        # one stream per victim: customers of different models are different principals
        self.rng = np.random.default_rng([seed, zlib.crc32(victim.name.encode())])
        self.lo, self.hi = victim.bounds()
        self.fields = field_groups(victim)
        self.is_image = victim.input_kind is InputKind.IMAGE
        self._keys: set[str] = set()

    # -- identities and time ------------------------------------------------------------
    def key(self) -> str:
        while True:
            k = api_key(self.rng)
            if k not in self._keys:
                self._keys.add(k)
                return k

    def request_id(self) -> str:
        return request_id(self.rng)

    def session_starts(self, n: int) -> list[float]:
        """``n`` session start times on random days, during the customer's local daytime."""
        tz = int(self.rng.integers(-8, 10))  # the customer's UTC offset in hours
        days = self.rng.integers(0, self.sizes.days, size=n)
        hours = self.rng.uniform(8.0, 20.0, size=n) - tz
        starts = START_TS + days * DAY + hours * 3600.0
        end = START_TS + self.sizes.days * DAY - 3600.0
        return sorted(float(min(max(s, START_TS), end)) for s in starts)

    def human_gaps(self, n: int) -> np.ndarray:
        """Seconds between a person's consecutive requests: a few seconds to a few minutes."""
        return np.asarray(4.0 + self.rng.exponential(35.0, size=n), dtype=np.float64)

    def records(self, n: int) -> Matrix:
        replace = n > self.pool.shape[0]
        idx = self.rng.choice(self.pool.shape[0], size=n, replace=replace)
        return self.pool[idx]

    def one(self, rid: str, ts: float, principal: str, ip: str, ua: str, row: np.ndarray) -> Request:
        return Request(rid, round(ts, 3), principal, ip, ua, row.reshape(1, -1).copy())

    # -- workloads ----------------------------------------------------------------------
    def browsing(self, principal: str, ip: str, ua: str) -> list[Request]:
        n = int(np.clip(round(self.rng.lognormal(math.log(20.0), 1.0)), 3, 300))
        sessions = int(self.rng.integers(1, min(8, n // 3 + 1) + 1))
        rows = self.records(n)
        out: list[Request] = []
        cuts = np.array_split(np.arange(n), sessions)
        for start, part in zip(self.session_starts(sessions), cuts, strict=True):
            t = start
            for gap, i in zip(self.human_gaps(len(part)), part, strict=True):
                out.append(self.one(self.request_id(), t, principal, ip, ua, rows[i]))
                t += float(gap)
        return out

    def what_if(self, principal: str, ip: str, ua: str) -> list[Request]:
        out: list[Request] = []
        for start in self.session_starts(int(self.rng.integers(1, 3))):
            app = self.records(1)[0].copy()
            t = start
            out.append(self.one(self.request_id(), t, principal, ip, ua, app))
            for _ in range(int(self.rng.integers(3, 9))):
                donor = self.records(1)[0]
                for g in self.rng.choice(len(self.fields), size=int(self.rng.integers(1, 3)), replace=False):
                    cols = self.fields[int(g)]
                    app[cols] = donor[cols]
                t += float(20.0 + self.rng.exponential(60.0))
                out.append(self.one(self.request_id(), t, principal, ip, ua, app))
        return out

    def image_edits(self, principal: str, ip: str, ua: str) -> list[Request]:
        shape = self.victim.shape
        out: list[Request] = []
        for start in self.session_starts(int(self.rng.integers(1, 5))):
            photo = self.records(1)[0]
            t = start
            out.append(self.one(self.request_id(), t, principal, ip, ua, photo))
            for _ in range(int(self.rng.integers(3, 13))):
                edited = self.edit_photo(photo.reshape(shape))
                t += float(8.0 + self.rng.exponential(25.0))
                out.append(self.one(self.request_id(), t, principal, ip, ua, edited.reshape(-1)))
        return out

    def edit_photo(self, img: np.ndarray) -> np.ndarray:
        """One or two mild edits: a one-pixel shift, a cropped border, a brightness change."""
        out = img.astype(np.float64, copy=True)
        for edit in self.rng.choice(3, size=int(self.rng.integers(1, 3)), replace=False):
            if edit == 0:
                axis = int(self.rng.integers(0, 2))
                step = int(self.rng.choice([-1, 1]))
                out = np.roll(out, step, axis=axis)
                edge = 0 if step == 1 else -1
                if axis == 0:
                    out[edge, :] = 0.0
                else:
                    out[:, edge] = 0.0
            elif edit == 1:
                side = int(self.rng.integers(0, 4))
                if side == 0:
                    out[0, :] = 0.0
                elif side == 1:
                    out[-1, :] = 0.0
                elif side == 2:
                    out[:, 0] = 0.0
                else:
                    out[:, -1] = 0.0
            else:
                out = out * float(self.rng.uniform(0.8, 1.2))
        lo, hi = self.lo.reshape(img.shape), self.hi.reshape(img.shape)
        return np.asarray(np.clip(np.round(out), lo, hi), dtype=np.float64)

    def retries(self, principal: str, ip: str, ua: str) -> list[Request]:
        base = self.browsing(principal, ip, ua)
        out: list[Request] = []
        for r in base:
            out.append(r)
            if self.rng.random() < 0.25:
                t = r.ts
                for _ in range(int(self.rng.integers(1, 4))):
                    t += float(self.rng.uniform(1.0, 10.0))
                    out.append(Request(self.request_id(), round(t, 3), principal, ip, ua, r.rows.copy()))
            if self.rng.random() < 0.15:
                later = min(r.ts + float(self.rng.uniform(1.0, 5.0)) * DAY, START_TS + self.sizes.days * DAY)
                out.append(Request(self.request_id(), round(later, 3), principal, ip, ua, r.rows.copy()))
        return out

    def batch(self, principal: str) -> list[Request]:
        ip = public_ip(self.rng)
        ua = str(self.rng.choice(BATCH_AGENTS))
        size = self.sizes.batch_size
        # a portfolio re-scored every night; a small pool means a portfolio with repeats
        nights = min(self.sizes.days, max(1, math.ceil(self.sizes.batch_rows / min(self.pool.shape[0], 5000))))
        portfolio = self.records(math.ceil(self.sizes.batch_rows / nights))
        first = int(self.rng.integers(0, self.sizes.days - nights + 1))
        out: list[Request] = []
        left = self.sizes.batch_rows
        for night in range(first, first + nights):
            t = START_TS + night * DAY + 2 * 3600.0 + float(self.rng.uniform(0.0, 1800.0))
            n = min(left, portfolio.shape[0])
            for lo in range(0, n, size):
                rows = portfolio[lo : min(n, lo + size)]
                out.append(Request(self.request_id(), round(t, 3), principal, ip, ua, rows.copy()))
                t += float(self.rng.uniform(0.5, 3.0))
            left -= n
        return out


def field_groups(victim: Victim) -> list[np.ndarray]:
    """The input's editable fields as column groups.

    A one-hot encoded field (columns named ``prefix_value``) is one group, so a what-if
    edit switches the hot column instead of producing a record with two. The sensitive
    attribute's columns are one group too. Other columns are fields on their own.
    """
    d = victim.n_features
    names = victim.profile.feature_names
    owner = list(range(d))
    if names and len(names) == d:
        prefixes: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            if "_" in name:
                prefixes.setdefault(name.split("_", 1)[0], []).append(i)
        for cols in prefixes.values():
            if len(cols) > 1:
                for c in cols:
                    owner[c] = cols[0]
    if victim.sensitive:
        for c in victim.sensitive:
            owner[c] = victim.sensitive[0]
    groups: dict[int, list[int]] = {}
    for col, root in enumerate(owner):
        groups.setdefault(root, []).append(col)
    return [np.asarray(cols, dtype=np.int64) for cols in groups.values()]


def generate(victim: Victim, sizes: WorkloadSizes, seed: int) -> BenignTraffic:
    """All benign customers of one victim, split into calibration and scored halves."""
    b = Builder(victim, sizes, seed)
    kinds = _mix(sizes.principals, b.is_image)
    made: dict[str, list[BenignPrincipal]] = {k: [] for k in WORKLOADS}
    makers: dict[str, Callable[[str, str, str], list[Request]]] = {
        "browsing": b.browsing,
        "retries": b.retries,
        "what-if": b.what_if,
        "image-edits": b.image_edits,
    }
    nat_ip, nat_left = "", 0
    for kind in kinds:
        principal = b.key()
        if kind == "nat":
            if nat_left == 0:
                nat_ip, nat_left = public_ip(b.rng), sizes.nat_group
            nat_left -= 1
            reqs = b.browsing(principal, nat_ip, CORPORATE_AGENT)
        else:
            reqs = makers[kind](principal, public_ip(b.rng), str(b.rng.choice(CLIENT_AGENTS)))
        made[kind].append(BenignPrincipal(principal, kind, reqs))
    for _ in range(max(2, sizes.batch_jobs)):
        principal = b.key()
        made["batch"].append(BenignPrincipal(principal, "batch", b.batch(principal)))
    calibration: list[BenignPrincipal] = []
    scored: list[BenignPrincipal] = []
    for kind in WORKLOADS:
        group = made[kind]
        order = b.rng.permutation(len(group))
        half = (len(group) + 1) // 2
        calibration.extend(group[i] for i in order[:half])
        scored.extend(group[i] for i in order[half:])
    if sizes.held_out_habits:
        from querywarden.bench import habits

        scored.extend(habits.generate(b, sizes.held_out_habits))
    return BenignTraffic(calibration, scored)


def _mix(n: int, is_image: bool) -> list[str]:
    """The workload of each of ``n`` principals, in a fixed order."""
    edits = "image-edits" if is_image else "what-if"
    shares = (("nat", 0.15), (edits, 0.15), ("retries", 0.12))
    kinds: list[str] = []
    for kind, share in shares:
        kinds.extend([kind] * max(2, round(n * share)))
    kinds.extend(["browsing"] * max(2, n - len(kinds)))
    return kinds
