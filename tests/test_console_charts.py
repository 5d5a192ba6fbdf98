"""Charts, time series and the exposure score, on real stored rows and plain numbers."""

from __future__ import annotations

import re
from pathlib import Path

from e2e.traffic import copied_store, profiles
from querywarden.console import charts, series
from querywarden.console.exposure import assess, decimals_of, inventory
from querywarden.core.policy import DEFAULT_POLICY, Policy
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Severity, Signal
from querywarden.store import StoredInteraction


def row(
    ts: float, h: str | None, top: float | None = 0.9, params: dict[str, object] | None = None
) -> StoredInteraction:
    return StoredInteraction(
        seq=int(ts),
        id=f"r{ts}",
        ts=ts,
        principal="p",
        model="m",
        actor=None,
        client_ip=None,
        user_agent=None,
        input_hash=h,
        n_features=3,
        l2_norm=1.0,
        predicted_class="1",
        top_probability=top,
        margin=None if top is None else 2 * top - 1,
        prompt_length=None,
        input=None,
        output=None,
        params=params,
    )


def test_series_count_volume_repeats_and_budget() -> None:
    rows = [row(0, "a"), row(1, "a"), row(2, "b"), row(70, "b"), row(71, "c")]
    budget = Signal(
        detector="budget",
        technique="AML.T0024.002",
        principal="p",
        model="m",
        interaction_id="r71",
        ts=71.0,
        score=0.3,
        severity=Severity.LOW,
        evidence={"bits_disclosed": 120.0, "daily_threshold_bits": 100.0, "coverage_share": 0.4},
    )
    s = series.build(rows, [budget])
    assert s.bucket_seconds == 5.0
    assert sum(n for _, n in s.volume) == 5 and s.volume[0] == (2.5, 3.0) and s.volume[1][1] == 0.0, "gaps are zeros"
    assert s.repeat_rate[0] == (2.5, 1 / 3) and s.repeat_rate[-1] == (72.5, 0.5)
    assert [n for _, n in s.answers] == [1.0, 2.0, 3.0], "distinct inputs answered"
    assert s.budget_bits == [(71.0, 120.0)] and s.budget_threshold == 100.0 and s.coverage == [(71.0, 0.4)]
    assert series.build([], []).volume == []
    assert series.bucket_size(10 * 86_400) == 6 * 3600


def test_line_chart_scales_escapes_and_draws_empty_frames() -> None:
    svg = str(charts.line_chart([charts.Series("<b>x</b>", [(0, 0.0), (10, 1.0)])], title="a<script>", threshold=0.5))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg
    pts = re.search(r'points="([^"]+)"', svg)
    assert pts is not None
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in pts.group(1).split())
    assert x0 < x1 and y0 > y1, "time runs right, values run up"
    assert 'class="threshold"' in svg
    assert "no data" in str(charts.line_chart([charts.Series("x", [])], title="t"))
    bars = str(charts.bars([("high", 3.0, "sev-high"), ("low", 1.0, "sev-low")], title="b"))
    widths = [float(w) for w in re.findall(r'class="bar [^"]+" x="150" y="[^"]+" width="([^"]+)"', bars)]
    assert abs(widths[0] - 3 * widths[1]) < 0.5
    cols = str(charts.column_chart([(3600.0, 2)], title="c", bucket=3600.0, min_buckets=24))
    width = float(re.findall(r'class="bar s0" x="[^"]+" y="[^"]+" width="([^"]+)"', cols)[0])
    assert width < 40, "one busy hour is one column among 24, not the whole axis"


def test_decimals_of() -> None:
    assert [decimals_of(v) for v in (0.5, 0.25, 0.123456, 1 / 3)] == [1, 2, 6, 16]


def test_exposure_ranks_full_probabilities_over_rounded_labels() -> None:
    full = ModelProfile(id="m", classes=tuple("abcd"), output_kind="probabilities")
    label = ModelProfile(id="m", output_kind="label")
    wide = assess(
        full,
        [row(0, "a", 1 / 3)],
        interactions=10,
        span_seconds=0,
        principals=[],
        open_findings=0,
        policy=DEFAULT_POLICY,
    )
    narrow = assess(
        label,
        [row(0, "a", None)],
        interactions=10,
        span_seconds=0,
        principals=[],
        open_findings=0,
        policy=DEFAULT_POLICY,
    )
    assert wide.precision_decimals == 16 and wide.probabilities and not narrow.probabilities
    assert wide.score > narrow.score and wide.score == sum(p for p, _ in wide.reasons)
    llm = assess(
        label,
        [row(0, "a", None, {"logprobs": True})],
        interactions=10,
        span_seconds=0,
        principals=[],
        open_findings=0,
        policy=Policy(rules=()),
    )
    reasons = dict((r, p) for p, r in llm.reasons)
    assert (
        reasons["callers receive logprobs"] == 20 and reasons["the policy neither hardens nor blocks on findings"] == 15
    )
    assert llm.hardening == () and wide.hardening[0].startswith("high and up -> block")


def test_inventory_over_the_replayed_store(tmp_path: Path) -> None:
    store = copied_store(tmp_path)
    try:
        models = {e.model: e for e in inventory(store, profiles(), DEFAULT_POLICY)}
    finally:
        store.close()
    digits, credit = models["digits"], models["credit"]
    assert digits.precision_decimals == 6 and credit.precision_decimals == 4, "read from the answers the store kept"
    assert digits.open_findings >= 1 and digits.score > credit.score
    assert digits.interactions == 822 and digits.calls_per_day == 822.0, "less than a day of traffic counts as one day"
    assert digits.decisions == {"block": 1}
