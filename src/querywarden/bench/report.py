"""Benchmark reports: results.json for machines, results.md for people, a plot for both.

The Markdown leads with the two numbers a security team asks for first (what share of
attacks was caught at ``medium`` or above, and what share of benign customers was
flagged) and then gives one row per attack and variant, so every headline number can be
traced to the scenario it came from and to the traffic file that replays it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from querywarden.bench.runner import BenchResults
from querywarden.bench.score import Rate, ScenarioResult, VictimResult, median, pooled, wilson
from querywarden.bench.variants import VARIANTS


def write_all(results: BenchResults, out: Path, *, json_too: bool = True) -> dict[str, Path]:
    """Write results.json, results.md and detection-delay.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "results.json",
        "markdown": out / "results.md",
        "plot": out / "detection-delay.png",
    }
    if json_too:
        paths["json"].write_text(json.dumps(results.to_dict(), indent=2, default=_plain) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(results), encoding="utf-8")
    plot(results.scenarios, paths["plot"])
    return paths


def load_results(path: Path) -> BenchResults:
    """Read a results.json back, so reports can be redrawn without running the benchmark again."""
    data = json.loads(path.read_text(encoding="utf-8"))
    results = BenchResults(data["profile"], data["seed"], data["target_fpr"], list(data["detectors"]))
    results.seconds = float(data.get("seconds", 0.0))
    results.cpu_seconds = float(data.get("cpu_seconds", 0.0))
    results.failures = list(data.get("failures", []))
    for s in data["scenarios"]:
        fields = {k: v for k, v in s.items() if k in ScenarioResult.__slots__}
        fields["detection_detectors"] = tuple(fields["detection_detectors"])
        fields.setdefault("caught_before_end", False)
        results.scenarios.append(ScenarioResult(**fields))
    for v in data["victims"]:
        rates = {key: {sev: _rate_from(r) for sev, r in v[key].items()} for key in ("fpr", "fpr_with_attacks")}
        results.victims.append(
            VictimResult(
                victim=v["victim"],
                description=v["description"],
                calibration_principals=v["calibration_principals"],
                scored_principals=v["scored_principals"],
                scored_interactions=v["scored_interactions"],
                workloads=dict(v["workloads"]),
                fpr=rates["fpr"],
                fpr_with_attacks=rates["fpr_with_attacks"],
                flagged=dict(v["flagged"]),
                calibrated=v["calibrated"],
                thresholds=list(v["thresholds"]),
                engine_seconds=v["engine_seconds"],
                finding_events=v.get("finding_events", 0),
                findings_digest=v.get("findings_digest", ""),
                by_workload={k: dict(row) for k, row in v.get("by_workload", {}).items()},
            )
        )
    return results


def _rate_from(raw: dict[str, Any]) -> Rate:
    low, high = raw["ci95"]
    return Rate(int(raw["hits"]), int(raw["total"]), float(low), float(high))


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON values results may carry (numpy scalars, tuples)."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


# -- summaries ----------------------------------------------------------------------------
def detection_rate(scenarios: Sequence[ScenarioResult], variant: str | None = None) -> Rate:
    chosen = [s for s in scenarios if variant is None or s.variant == variant]
    return wilson(sum(s.detected for s in chosen), len(chosen))


def median_share(scenarios: Sequence[ScenarioResult], variant: str | None = None) -> float | None:
    return median(
        s.share_of_budget
        for s in scenarios
        if s.share_of_budget is not None and (variant is None or s.variant == variant)
    )


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _rate(r: Rate) -> str:
    return f"{r.hits}/{r.total} = {_pct(r.value, 2)} (95% CI {_pct(r.low, 2)} to {_pct(r.high, 2)})"


def markdown(results: BenchResults) -> str:
    scen = results.scenarios
    lines = [
        f"# QueryWarden red-team benchmark: profile `{results.profile}`",
        "",
        f"Seed {results.seed}; detectors: {', '.join(results.detectors) or 'none'}; thresholds calibrated on a "
        f"separate benign split at target FPR {results.target_fpr}; run time {results.seconds:.0f} s "
        f"({results.cpu_seconds:.0f} s of CPU).",
        "",
        "## Headline",
        "",
        "| measure | value |",
        "|---|---|",
        f"| attack scenarios detected at medium or above | {_rate(detection_rate(scen))} |",
    ]
    for variant in VARIANTS:
        chosen = [s for s in scen if s.variant == variant]
        if chosen:
            lines.append(
                f"| … {variant} | {_rate(detection_rate(scen, variant))}; median queries to detection "
                f"{_pct(median_share(scen, variant), 2)} of budget |"
            )
    matched = sum(s.technique_match for s in scen if s.detected)
    lines.append(f"| … detected as the attack's own technique | {matched}/{sum(s.detected for s in scen)} |")
    sybil = [s for s in scen if s.variant == "sybil"]
    if sybil:
        lines.append(f"| Sybil attackers grouped into one actor | {sum(s.grouped for s in sybil)}/{len(sybil)} |")
    for label, rates in (
        ("benign principals flagged", pooled(results.victims, "fpr")),
        ("benign principals flagged, counting every attack scenario", pooled(results.victims, "fpr_with_attacks")),
    ):
        for sev in ("low", "medium", "high"):
            if sev in rates:
                lines.append(f"| {label} at ≥ {sev} | {_rate(rates[sev])} |")
    lines += family_table(scen)
    lines += [
        "",
        "## Benign customers",
        "",
        "| victim | scored principals | interactions | workloads | ≥ low | ≥ medium | ≥ high | calibrated thresholds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in results.victims:
        mix = ", ".join(f"{k} {n}" for k, n in sorted(v.workloads.items()))
        lines.append(
            f"| {v.victim} | {v.scored_principals} | {v.scored_interactions} | {mix} | "
            f"{_pct(v.fpr['low'].value)} | {_pct(v.fpr['medium'].value)} | {_pct(v.fpr['high'].value)} | "
            f"{len(v.thresholds)} |"
        )
    lines += workload_table(results.victims)
    flagged = [(v.victim, p, why) for v in results.victims for p, why in v.flagged.items()]
    if flagged:
        lines += ["", "Benign principals with a finding (benign traffic alone):", ""]
        lines += [f"- {victim} `{p}`: {why}" for victim, p, why in flagged]
    lines += [
        "",
        "## Attacks",
        "",
        "Queries to detection count every attack query sent (all of the attacker's principals) until the first "
        "finding at medium or above on an attacker principal or its actor. Success is the attack's own metric "
        "using only the queries sent so far.",
        "",
        "| victim | attack | technique | variant | budget | detected | queries to detection | share | "
        "detected as | success at detection → end | grouped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scen:
        as_what = "-"
        if s.detected:
            tick = "" if s.technique_match else " (other technique)"
            as_what = f"{s.detection_technique} {s.detection_severity} by {', '.join(s.detection_detectors)}{tick}"
        success = f"{s.success_metric} {_num(s.success_at_detection)} → {_num(s.success_at_end)}"
        group = "-" if s.principals == 1 else ("yes" if s.grouped else f"no ({s.largest_group}/{s.principals})")
        lines.append(
            f"| {s.victim} | {s.attack} | {s.technique} | {s.variant} | {s.budget} | {'yes' if s.detected else 'no'} "
            f"| {s.queries_to_detection if s.queries_to_detection is not None else '-'} | "
            f"{_pct(s.share_of_budget, 2)} | {as_what} | {success} | {group} |"
        )
    if results.failures:
        lines += ["", "## Attacks that failed to run", ""]
        lines += [f"- {f['victim']} / {f['attack']}: {f['error']}" for f in results.failures]
    lines += [
        "",
        "## Reproduce",
        "",
        "Every scenario's traffic is in `traffic/<victim>/<attack>--<variant>.jsonl.gz` with the victim's "
        "`config.toml`; `querywarden replay FILE --config traffic/<victim>/config.toml` gives the findings "
        "counted here.",
        "",
    ]
    return "\n".join(lines)


def workload_table(victims: Sequence[VictimResult]) -> list[str]:
    """Scored benign principals per workload, over every victim, with a finding at low and at medium or above."""
    total: dict[str, dict[str, int]] = {}
    for v in victims:
        for kind, row in v.by_workload.items():
            acc = total.setdefault(kind, {"principals": 0, "low": 0, "medium": 0})
            for key in acc:
                acc[key] += row.get(key, 0)
    if not total:
        return []
    lines = [
        "",
        "By workload, over every victim (benign traffic alone):",
        "",
        "| workload | scored principals | ≥ low | ≥ medium |",
        "|---|---|---|---|",
    ]
    for kind, row in sorted(total.items()):
        lines.append(f"| {kind} | {row['principals']} | {row['low']} | {row['medium']} |")
    return lines


def family_table(scen: Sequence[ScenarioResult]) -> list[str]:
    """Detection per attack family and variant: the view the detectors' acceptance bars use."""
    lines = [
        "",
        "## By attack family",
        "",
        "| family | variant | detected | median queries to detection | median share of budget |",
        "|---|---|---|---|---|",
    ]
    for family in sorted({s.family for s in scen}):
        for variant in VARIANTS:
            chosen = [s for s in scen if s.family == family and s.variant == variant]
            if not chosen:
                continue
            queries = median(s.queries_to_detection for s in chosen if s.queries_to_detection is not None)
            shown = "-" if queries is None else f"{queries:g}"
            lines.append(
                f"| {family} | {variant} | {sum(s.detected for s in chosen)}/{len(chosen)} | {shown} | "
                f"{_pct(median_share(chosen), 2)} |"
            )
    return lines


def _num(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3f}"


# -- the plot -----------------------------------------------------------------------------
_COLOURS = {"single": "#1f77b4", "sybil": "#d62728", "low-and-slow": "#2ca02c"}


def plot(scenarios: Sequence[ScenarioResult], path: Path) -> None:
    """Queries to detection against the attack's budget, one row per attack, log scale.

    A grey bar is the whole budget; a dot is where the attack was caught, per variant; a
    cross at the end of the bar marks a variant that was never caught.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = sorted({(s.victim, s.attack) for s in scenarios})
    height = max(2.5, 0.45 * len(attacks) + 1.2)
    fig, ax = plt.subplots(figsize=(9.0, height), dpi=110)
    offsets = {v: (i - 1) * 0.22 for i, v in enumerate(VARIANTS)}
    for row, (victim, attack) in enumerate(attacks):
        mine = [s for s in scenarios if s.victim == victim and s.attack == attack]
        budget = max(s.budget for s in mine)
        ax.barh(row, budget, height=0.7, color="#dddddd", edgecolor="#999999", left=0)
        for s in mine:
            y = row + offsets.get(s.variant, 0.0)
            if s.detected and s.queries_to_detection is not None:
                ax.plot(max(1, s.queries_to_detection), y, "o", color=_COLOURS.get(s.variant, "black"), ms=6)
            else:
                ax.plot(max(1, s.budget), y, "x", color=_COLOURS.get(s.variant, "black"), ms=7, mew=2)
    ax.set_xscale("log")
    ax.set_yticks(range(len(attacks)), [f"{a} ({v})" for v, a in attacks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("attack queries (log scale): bar = budget, dot = first medium+ finding, x = not detected")
    ax.set_title("Detection delay against attack budget")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in _COLOURS.items()]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
