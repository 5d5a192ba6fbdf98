"""The neardup detector against a real victim: boundary walks, inversion chains and Sybil
splits are caught; natural traffic, edited photos, what-if users and retries are not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.core.atlas import ADVERSARIAL, EXTRACTION, INVERSION
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output, Severity, Signal
from querywarden.detectors.neardup import NearDuplicateDetector
from querywarden.plugins import load_detectors

T0 = 1_764_320_000.0


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray, LogisticRegression]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    profile = ModelProfile(
        id="digits",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        classes=tuple(str(c) for c in range(10)),
    )
    return profile, x[1000:], model


@pytest.fixture(scope="module")
def cancer() -> tuple[ModelProfile, np.ndarray, object]:
    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x[:400], y[:400])
    lo, hi = x.min(axis=0), x.max(axis=0)
    profile = ModelProfile(id="cancer", n_features=30, ranges=tuple(zip(lo.tolist(), hi.tolist(), strict=True)))
    return profile, x, model


def walk(model: object, target: np.ndarray, n: int, seed: int, lo: object = 0.0, hi: object = 16.0) -> np.ndarray:
    """A HopSkipJump-shaped boundary walk: binary search, gradient probes, a step, repeat."""
    rng = np.random.default_rng(seed)
    d = target.shape[0]
    label = model.predict(target[None])[0]  # type: ignore[attr-defined]
    rows: list[np.ndarray] = []

    def ask(x: np.ndarray) -> bool:
        rows.append(x)
        return bool(model.predict(x[None])[0] != label)  # type: ignore[attr-defined]

    adv = rng.uniform(lo, hi, d)
    while not ask(adv):
        adv = rng.uniform(lo, hi, d)
    step = 0
    while len(rows) < n:
        step += 1
        a, b = 0.0, 1.0
        while b - a > 0.01:
            mid = (a + b) / 2
            if ask((1 - mid) * target + mid * adv):
                b = mid
            else:
                a = mid
        edge = (1 - b) * target + b * adv
        dist = float(np.linalg.norm(edge - target))
        delta = max(dist / d, 1e-3 * float(np.mean(np.subtract(hi, lo))))
        grad = np.zeros(d)
        for _ in range(int(20 * np.sqrt(step))):
            u = rng.normal(size=d)
            u /= np.linalg.norm(u)
            grad += u if ask(np.clip(edge + delta * u, lo, hi)) else -u
        grad /= max(float(np.linalg.norm(grad)), 1e-12)
        size = dist / np.sqrt(step)
        while size > 1e-4 and not ask(np.clip(edge + size * grad, lo, hi)):
            size /= 2
        adv = np.clip(edge + size * grad, lo, hi)
    return np.array(rows[:n])


class Scaled:
    """The victim seen through range-scaled inputs in [0, 1]."""

    def __init__(self, model: object, lo: np.ndarray, hi: np.ndarray) -> None:
        self.model, self.lo, self.hi = model, lo, hi

    def predict(self, z: np.ndarray) -> np.ndarray:
        return self.model.predict(self.lo + z * (self.hi - self.lo))  # type: ignore[attr-defined,no-any-return]


def edited(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = photo.reshape(8, 8).copy()
    kind = int(rng.integers(3))
    if kind == 0:
        img = np.roll(img, int(rng.choice([-1, 1])), axis=int(rng.integers(2)))
    elif kind == 1:
        img[0 if rng.random() < 0.5 else -1, :] = 0.0
    else:
        img = img * float(rng.uniform(0.8, 1.2))
    return np.clip(np.round(img), 0, 16).ravel()


def interactions(rows: np.ndarray, principals: list[str], model: object, start: int = 0) -> list[Interaction]:
    probs = model.predict_proba(rows)  # type: ignore[attr-defined]
    return [
        Interaction(
            id=f"r{start + i}",
            ts=T0 + (start + i) * 0.5,
            principal=principals[i % len(principals)],
            model="m",
            client=Client(ip=f"203.0.{i % len(principals)}.{7 + i % 3}", user_agent=f"agent/{i % len(principals)}"),
            features=rows[i],
            output=Output(probabilities=probs[i]),
        )
        for i in range(len(rows))
    ]


def first_at(det: NearDuplicateDetector, stream: list[Interaction], principal: str, floor: Severity) -> int | None:
    """The principal's query count when its first signal at ``floor`` or above was raised."""
    n = 0
    found = None
    for it in stream:
        if it.principal == principal:
            n += 1
        for s in det.update(it):
            if found is None and s.principal == principal and s.severity >= floor:
                found = n
    return found


def loud(signals: list[Signal]) -> list[tuple[str, str]]:
    return [(s.principal, s.severity.label) for s in signals if s.severity >= Severity.MEDIUM]


def run(det: NearDuplicateDetector, stream: list[Interaction]) -> list[Signal]:
    out: list[Signal] = []
    for it in stream:
        out.extend(det.update(it))
    return out


def test_registered_under_its_name() -> None:
    assert load_detectors()["neardup"] is NearDuplicateDetector


def test_boundary_walk_is_caught_within_one_percent_of_its_budget(digits: tuple) -> None:
    profile, pool, model = digits
    det = NearDuplicateDetector(profile=profile)
    rows = walk(model, pool[5], 600, seed=1)
    stream = interactions(rows, ["prober"], model)
    at = first_at(det, stream, "prober", Severity.MEDIUM)
    assert at is not None and at <= 120, at  # HopSkipJump spends ~6,400 queries per digit
    st = det._principals.peek("prober")
    assert st is not None and st.level == Severity.HIGH  # sustained: far past the threshold


def test_technique_tells_boundary_probing_from_confidence_ascent(digits: tuple) -> None:
    profile, pool, model = digits
    det = NearDuplicateDetector(profile=profile)
    probe_signals = run(det, interactions(walk(model, pool[9], 200, seed=2), ["prober"], model))
    assert {s.technique for s in probe_signals if s.severity >= Severity.MEDIUM} == {ADVERSARIAL}

    # MI-Face-like: random-search hill climbing on one class's confidence from a blank image
    rng = np.random.default_rng(3)
    x = np.zeros(64)
    target = int(model.predict(x[None])[0])
    best = float(model.predict_proba(x[None])[0, target])
    rows = []
    for _ in range(200):
        cand = x.copy()
        idx = rng.choice(64, size=3, replace=False)
        cand[idx] = np.clip(cand[idx] + rng.normal(0, 1.0, 3), 0, 16)
        rows.append(cand)
        p = float(model.predict_proba(cand[None])[0, target])
        if p > best:
            x, best = cand, p
    signals = run(det, interactions(np.array(rows), ["inverter"], model, start=10_000))
    strong = [s for s in signals if s.principal == "inverter" and s.severity >= Severity.MEDIUM]
    # the climb's first steps still flip between classes; once settled it reads as inversion
    assert strong and strong[-1].technique == INVERSION


def test_repeats_alone_name_no_technique(cancer: tuple) -> None:
    """Line searches inside the box that re-ask points (functionally-equivalent extraction
    confined to valid inputs, a documented blind spot) read as boundary probing: a
    finite-difference optimiser re-asks its centre point as often."""
    profile, x, model = cancer
    det = NearDuplicateDetector(profile=profile)
    rng = np.random.default_rng(11)
    lo, hi = x.min(axis=0), x.max(axis=0)
    rows = []
    for _ in range(6):
        start, direction = rng.uniform(lo, hi), rng.normal(size=30) * (hi - lo) / 200
        for k in range(60):
            point = start + k * direction
            rows.append(point)
            if k % 4 == 0:
                rows.append(point.copy())  # re-asked
    signals = run(det, interactions(np.array(rows), ["fee"], model))
    strong = [s for s in signals if s.severity >= Severity.MEDIUM]
    assert strong and {s.technique for s in strong} == {ADVERSARIAL}
    assert strong[0].evidence["exact_repeats"] > 0 and strong[0].evidence["off_box_share"] == 0.0


def test_line_walks_far_off_the_input_box_read_as_extraction_without_repeats(cancer: tuple) -> None:
    """Functionally-equivalent extraction walks wherever the network's kinks are, far off the
    data; a boundary walk must end in a valid input, so the same walk inside the box does not."""
    profile, x, model = cancer
    lo, hi = x.min(axis=0), x.max(axis=0)
    rng = np.random.default_rng(12)
    for centre, expected in ((hi + 10 * (hi - lo), EXTRACTION), ((lo + hi) / 2, ADVERSARIAL)):
        det = NearDuplicateDetector(profile=profile)
        rows = []
        for _ in range(4):
            start, direction = centre + rng.normal(size=30) * (hi - lo) / 50, rng.normal(size=30) * (hi - lo) / 400
            rows.extend(start + k * direction for k in range(40))
        signals = run(det, interactions(np.array(rows), ["walker"], model))
        strong = [s for s in signals if s.severity >= Severity.MEDIUM]
        assert strong and {s.technique for s in strong} == {expected}
        assert strong[0].evidence["exact_repeats"] == 0
        assert strong[0].evidence["off_box_share"] == (1.0 if expected == EXTRACTION else 0.0)


def test_a_small_reference_sample_does_not_make_walks_in_the_valid_range_extraction() -> None:
    """Without declared ranges the box is a reference sample's span, which falls short of the
    valid range, the more so the smaller the sample. An evasion walk starts from a uniform
    draw over the valid range: boundary probing, not extraction (with the sample's bare span
    nearly all its hits were off the box). Line walks a width or more beyond the range are
    extraction, on raw features of very different scales (wine: 0.13 to 1,680)."""
    x, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    small = ModelProfile(id="wine", n_features=13, reference=x[::10][:18])
    lo, hi = x.min(axis=0), x.max(axis=0)
    rng = np.random.default_rng(13)
    for where, expected in (("in range", ADVERSARIAL), ("far", EXTRACTION)):
        det = NearDuplicateDetector(profile=small)
        rows = []
        for _ in range(4):
            start = rng.uniform(lo, hi) if where == "in range" else hi + (1 + rng.random(13)) * (hi - lo)
            direction = rng.normal(size=13) * (hi - lo) / 400
            rows.extend(start + k * direction for k in range(40))
        signals = run(det, interactions(np.array(rows), ["walker"], model))
        strong = [s for s in signals if s.severity >= Severity.MEDIUM]
        assert strong and {s.technique for s in strong} == {expected}, (where, strong[0].evidence)
        assert type(strong[0].evidence["off_box_share"]) is float  # plain numbers: findings are written as JSON


def test_tabular_walk_is_caught_and_what_if_users_are_not(cancer: tuple) -> None:
    profile, x, model = cancer
    det = NearDuplicateDetector(profile=profile)
    rng = np.random.default_rng(4)
    benign: list[Interaction] = []
    for u in range(40):  # what-if users: one application, one or two fields edited a few times
        app = x[int(rng.integers(len(x)))].copy()
        rows = [app.copy()]
        for _ in range(int(rng.integers(3, 9))):
            donor = x[int(rng.integers(len(x)))]
            cols = rng.choice(30, size=int(rng.integers(1, 3)), replace=False)
            app[cols] = donor[cols]
            rows.append(app.copy())
        benign += interactions(np.array(rows), [f"whatif-{u}"], model, start=u * 100)
    benign += interactions(x, ["batch"], model, start=10_000)  # every natural record, once
    assert loud(run(det, benign)) == []
    lo, hi = x.min(axis=0), x.max(axis=0)
    # the attacker walks in range-scaled coordinates, as HopSkipJump with per-feature clip values does
    scaled = Scaled(model, lo, hi)
    rows = lo + walk(scaled, (x[450] - lo) / (hi - lo), 500, seed=5, lo=0.0, hi=1.0) * (hi - lo)
    stream = interactions(rows, ["tab-prober"], model, start=20_000)
    at = first_at(det, stream, "tab-prober", Severity.MEDIUM)
    assert at is not None and at <= 150, at


def test_benign_image_traffic_stays_below_medium(digits: tuple) -> None:
    profile, pool, model = digits
    det = NearDuplicateDetector(profile=profile)
    rng = np.random.default_rng(6)
    stream: list[Interaction] = []
    for u in range(30):  # photo apps: a few photos, each with up to 12 mild edits, each retried
        rows = []
        for _ in range(int(rng.integers(1, 4))):
            photo = pool[int(rng.integers(len(pool)))]
            rows.append(photo)
            for _ in range(12):
                img = edited(photo, rng)
                rows += [img, img]
        stream += interactions(np.array(rows), [f"photo-{u}"], model, start=u * 1000)
    stream += interactions(pool, ["batch"], model, start=100_000)
    stream += interactions(pool[:300], ["batch"], model, start=200_000)  # nightly re-scoring
    signals = run(det, stream)
    assert loud(signals) == []
    batch = det._principals.peek("batch")
    assert batch is not None and batch.near <= 0.02 * len(pool)
    repeats = sum(st.repeats for _, st in det._principals.items() if st.key)
    assert repeats > 0  # retries are seen, and counted apart from hits
    calibration = det.calibration()["min_hits"]
    assert max(calibration.values) < det.min_hits


def test_exact_repeats_never_count_as_hits(digits: tuple) -> None:
    profile, pool, model = digits
    det = NearDuplicateDetector(profile=profile)
    run(det, interactions(np.repeat(pool[:5], 60, axis=0), ["retrier"], model))
    st = det._principals.peek("retrier")
    assert st is not None
    assert st.near == 0 and st.repeats >= 290


def art_hopskipjump(model: LogisticRegression, targets: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The queries IBM ART's HopSkipJump sends through a black box (labels and scores only).

    ``starts`` are adversarial starting points (digits of another class): ART would otherwise
    draw them from an unseeded generator, and the test must replay identically."""
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    sent: list[np.ndarray] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        rows = np.asarray(batch, dtype=np.float64).reshape(-1, 64)
        sent.extend(rows)
        return model.predict_proba(rows)  # type: ignore[no-any-return]

    clf = BlackBoxClassifier(predict, input_shape=(64,), nb_classes=10, clip_values=(0.0, 16.0))
    attack = HopSkipJump(clf, targeted=False, max_iter=10, max_eval=200, init_eval=20, verbose=False)
    np.random.seed(0)  # ART's gradient probes draw from numpy's global generator
    attack.generate(targets.astype(np.float32), x_adv_init=starts.astype(np.float32))
    return np.array(sent)


def test_sybil_split_over_twenty_keys_becomes_one_actor_with_a_finding(digits: tuple) -> None:
    profile, pool, model = digits
    load_detectors()
    engine = Engine({"m": profile}, detectors=[DetectorSpec("neardup")])
    keys = [f"sybil-{k:02d}" for k in range(20)]
    target = pool[11:12]
    start = next(x for x in pool if model.predict(x[None])[0] != model.predict(target)[0])
    rows = art_hopskipjump(model, target, start[None])
    assert len(rows) > 400
    stream = interactions(rows, keys, model)  # round-robin, each key from its own IP and agent
    medium_at = None
    for i, it in enumerate(stream):
        step = engine.process(it)
        if medium_at is None and any(f.severity >= Severity.MEDIUM and f.actor for f in step.findings):
            medium_at = i + 1
    actors = {engine.actors.actor_of(k) for k in keys}
    assert len(actors) == 1 and None not in actors
    assert set(engine.actors.members(keys[0])) == set(keys)
    assert medium_at is not None and medium_at <= 400, medium_at
    # no key alone sent enough near-duplicates to cross the threshold: the actor did
    det = engine.detectors("m")[0]
    assert isinstance(det, NearDuplicateDetector)
    assert all(det._principals.peek(k).peak < det.min_hits for k in keys)  # type: ignore[union-attr]


def test_customers_sharing_a_photo_are_not_merged_into_a_loud_actor(digits: tuple) -> None:
    """Two to three customers editing the same popular photo share a few near-duplicates."""
    profile, pool, model = digits
    load_detectors()
    engine = Engine({"m": profile}, detectors=[DetectorSpec("neardup")])
    rng = np.random.default_rng(8)
    photo = pool[21]
    findings = []
    for u in range(3):
        rows = np.array([photo] + [edited(photo, rng) for _ in range(10)])
        for it in interactions(rows, [f"fan-{u}"], model, start=u * 100):
            findings += engine.process(it).findings
    assert [f for f in findings if f.severity >= Severity.MEDIUM] == []


def test_link_evidence_is_not_emitted_on_every_query(digits: tuple) -> None:
    profile, pool, model = digits
    det = NearDuplicateDetector(profile=profile)
    keys = [f"k{i}" for i in range(4)]
    signals = run(det, interactions(walk(model, pool[2], 600, seed=9), keys, model))
    linking = [s for s in signals if s.related]
    assert linking and len(linking) < 60
    assert all(s.link_weight == det.link_weight for s in linking)
    assert all(len(s.related) <= 8 and s.principal not in s.related for s in linking)


def test_salt_changes_every_fingerprint(digits: tuple) -> None:
    profile, pool, _ = digits
    a = NearDuplicateDetector(profile=profile, salt="one")
    b = NearDuplicateDetector(profile=profile, salt="two")
    assert a._fp is not None and b._fp is not None
    fa, fb = a._fp.fingerprint(pool[0]), b._fp.fingerprint(pool[0])
    assert len(np.intersect1d(fa, fb)) == 0
    assert np.array_equal(fa, NearDuplicateDetector(profile=profile, salt="one")._fp.fingerprint(pool[0]))  # type: ignore[union-attr]


def test_snapshot_carries_the_index(digits: tuple) -> None:
    profile, pool, model = digits
    stream = interactions(walk(model, pool[4], 300, seed=10), ["prober"], model)
    det = NearDuplicateDetector(profile=profile, max_queries=1000)
    head = run(det, stream[:150])
    assert loud(head)
    twin = det.clone()
    twin.restore(det.snapshot())
    assert twin.stored_queries() == det.stored_queries() == 150
    tail_a, tail_b = run(det, stream[150:]), run(twin, stream[150:])
    assert [(s.interaction_id, s.severity) for s in tail_a] == [(s.interaction_id, s.severity) for s in tail_b]


def test_odd_inputs_are_skipped(digits: tuple) -> None:
    profile, _, _ = digits
    det = NearDuplicateDetector(profile=profile)
    bad = [np.zeros(3), np.zeros((8, 8)), np.zeros(0)]
    for i, x in enumerate(bad):
        assert det.update(Interaction(id=str(i), ts=T0, principal="odd", model="m", features=x)) == []
    assert det.stored_queries() == 0  # wrong shapes are skipped
    odd = [np.full(64, np.nan), np.full(64, np.inf), np.full(64, -np.inf), np.full(64, 1e300)]
    for i, x in enumerate(odd):  # odd values quantise to the edge bins, without a warning
        assert det.update(Interaction(id=f"v{i}", ts=T0, principal="odd", model="m", features=x)) == []
    assert det.stored_queries() == 4


def test_profile_without_ranges_falls_back_to_reference_then_learns_the_scale(digits: tuple) -> None:
    _, pool, _ = digits
    with_ref = NearDuplicateDetector(profile=ModelProfile(id="r", n_features=64, reference=pool[:200]))
    bare = NearDuplicateDetector(profile=ModelProfile(id="b"), scale_warmup=3)
    assert with_ref._fp is not None and bare._fp is None
    for i in range(3):
        bare.update(Interaction(id=f"{i}", ts=T0 + i, principal="p", model="b", features=np.linspace(0, 1 + i, 10)))
    assert bare._fp is not None and bare._fp.dim == 10


def test_scale_learned_from_traffic_keeps_natural_images_quiet_and_still_catches_a_walk(digits: tuple) -> None:
    """A model watched with no profile at all (the SDK's or gateway's zero-config path)."""
    _, pool, model = digits
    bare = ModelProfile(id="m", n_features=64)
    det = NearDuplicateDetector(profile=bare)
    natural = interactions(pool[:600], ["browser"], model)
    assert loud(run(det, natural)) == []
    rows = walk(model, pool[5], 600, seed=1)
    at = first_at(det, interactions(rows, ["prober"], model, start=600), "prober", Severity.MEDIUM)
    assert at is not None and at <= 120, at


def test_parameters_are_checked(digits: tuple) -> None:
    profile, _, _ = digits
    with pytest.raises(ValueError, match="min_shared"):
        NearDuplicateDetector(profile=profile, min_shared=40, top_s=32)
    with pytest.raises(ValueError, match="min_hits"):
        NearDuplicateDetector(profile=profile, min_hits=50, high_hits=10)


def test_two_probes_of_near_identical_records_do_not_chain(cancer: tuple) -> None:
    """Two monitoring probes, each sending its own fixed record every minute, the records one
    feature apart: each query is a repeat of the sender's own, not a step of a walk."""
    profile, x, model = cancer
    det = NearDuplicateDetector(profile=profile)
    a = x[450].copy()
    b = a.copy()
    b[3] = x[451][3]
    rows = np.stack([a, b] * 600)
    signals = run(det, interactions(rows, ["probe-a", "probe-b"], model))
    assert not loud(signals)
    for who in ("probe-a", "probe-b"):
        st = det._principals.peek(who)
        assert st is not None and st.near <= 1 and st.repeats >= 598


class _Victim:
    """A benchmark victim seen as a scikit-learn classifier."""

    def __init__(self, victim: object) -> None:
        self.victim = victim

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.victim.predict_proba(x)  # type: ignore[attr-defined,no-any-return]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.victim.labels(x)  # type: ignore[attr-defined,no-any-return]


def test_dense_tabular_data_raises_the_bar_above_natural_twins(digits: tuple) -> None:
    """On one-hot Adult most natural records near-duplicate another: an app forwarding
    thousands of its users' records chains as fast as a walk. A hit there must be closer than
    natural twins are; a boundary walk's small steps still are."""
    from querywarden.bench.victims import load_victim

    assert NearDuplicateDetector(profile=digits[0]).twin_shared == 0, "images have no natural twins"
    adult = load_victim("adult")
    model = _Victim(adult)
    rows = np.vstack([adult.benign_pool, adult.x_test, adult.attacker_pool])
    forwarded = interactions(rows, ["app-forward"], model)

    def peak(det: NearDuplicateDetector) -> float:
        """The forwarder's longest chain: the statistic ``min_hits`` is calibrated on."""
        run(det, forwarded)
        return max(det.calibration()["min_hits"].values)

    blind = NearDuplicateDetector(profile=adult.profile)
    assert blind.twin_shared > 0
    blind._twins = 0  # what the detector did before it knew about twins
    assert peak(blind) >= 16, "natural twins chain at min_shared"
    det = NearDuplicateDetector(profile=adult.profile)
    assert peak(det) <= 4
    lo, hi = adult.x_train.min(axis=0), adult.x_train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    walked = lo + walk(Scaled(model, lo, hi), (adult.x_test[7] - lo) / span, 600, seed=3, lo=0.0, hi=1.0) * span
    at = first_at(det, interactions(walked, ["prober"], model, start=5000), "prober", Severity.MEDIUM)
    assert at is not None and at <= 300, at


def test_a_drifting_feed_is_not_a_walk_but_circling_one_point_is(cancer: tuple) -> None:
    """A machine's readings drifting for hours diffuse like a random walk (five steps on, about
    2.2 steps away) and keep one answer: reported at low. An attack's walk circles one point
    (the Boundary attack's candidates around its current point: about one step away) and is
    caught as before, with the same answers throughout."""
    profile, x, model = cancer
    spread = x.std(axis=0)
    lo, hi = x.min(axis=0), x.max(axis=0)
    proba = model.predict_proba(x)  # type: ignore[attr-defined]
    start = x[int(np.argmax(proba.max(axis=1)))]  # a record far from the boundary
    rng = np.random.default_rng(8)
    feed = [start.copy()]
    for _ in range(400):
        feed.append(np.clip(feed[-1] + 0.01 * spread * rng.normal(size=30), lo, hi))
    det = NearDuplicateDetector(profile=profile, min_hits=24)
    signals = run(det, interactions(np.array(feed), ["sensor"], model))
    assert signals and max(s.severity for s in signals) == Severity.LOW
    assert all(s.evidence.get("drifting") for s in signals if "drifting" in s.evidence)
    point, walk = start.copy(), []
    for i in range(200):
        candidate = np.clip(point + 0.01 * spread * rng.normal(size=30), lo, hi)
        walk.append(candidate)
        if i % 10 == 9:
            point = candidate
    at = first_at(
        NearDuplicateDetector(profile=profile, min_hits=24),
        interactions(np.array(walk), ["walker"], model),
        "walker",
        Severity.MEDIUM,
    )
    assert at is not None and at <= 40, at
