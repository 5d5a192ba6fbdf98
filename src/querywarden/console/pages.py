"""The console's pages: overview, findings, principals, actors, models, audit, intel.

Each view reads the store (and the live engine when mounted on ``serve``) and renders one
template. Charts are inline SVG from ``charts``; nothing here writes (see ``actions``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from querywarden.console import charts, intel, series
from querywarden.console.auth import Identity
from querywarden.console.context import OPERATOR_ACTIONS, intel_installed
from querywarden.console.exposure import inventory
from querywarden.console.web import Pages, secure
from querywarden.core.atlas import API_ACCESS, TECHNIQUES
from querywarden.core.records import Severity
from querywarden.store import OPERATOR_EVENTS

PAGE_SIZE = 50
SEVERITIES = [s.label for s in Severity]
TIMELINE = 30
"""Most recent interactions and signals shown in a principal's timeline."""
PLOT_ROWS = 5000
"""Most recent interactions the principal's plots are drawn from."""


def _page(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() else 1


def _arg(request: Request, name: str, allowed: list[str] | None = None) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and allowed is not None and value not in allowed:
        return None
    return value


class Views:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.ctx = pages.ctx
        self.store = pages.ctx.store

    async def overview(self, request: Request, who: Identity) -> Response:
        store = self.store
        stats = store.stats()
        active_by_sev: list[tuple[str, float, str]] = []
        for sev in reversed(Severity):
            n = store.count_findings(status="active", severity_at_least=sev) - sum(v for _, v, _ in active_by_sev)
            active_by_sev.append((sev.label, float(n), f"sev-{sev.label}"))
        active_by_tech = []
        for tid in sorted(stats.findings_per_technique):
            n = store.count_findings(status="active", technique=tid)
            if n:
                name = TECHNIQUES[tid].name if tid in TECHNIQUES else tid
                active_by_tech.append((f"{tid} {name}"[:24], float(n), "s1"))
        actors = sorted(store.actors(), key=lambda a: (-(a.max_severity or -1), -a.open_findings, a.actor))[:8]
        enforced: dict[str, int] = {}
        for d in store.load_decisions():
            if not d.shadow:
                enforced[d.action.value] = enforced.get(d.action.value, 0) + 1
        return self.pages.render(
            request,
            "overview.html",
            who,
            stats=stats,
            enforced=enforced,
            active=store.count_findings(status="active"),
            over_time=charts.column_chart(
                stats.findings_per_hour, title="Findings per hour", bucket=3600.0, width=1200, min_buckets=24
            ),
            by_severity=charts.bars(active_by_sev, title="Active findings by severity"),
            by_technique=charts.bars(active_by_tech, title="Active findings by technique"),
            principals=store.principals(order_by="risk", limit=10),
            actors=actors,
            models=inventory(store, self.ctx.profiles, self.ctx.policy),
            gauge=charts.gauge,
            recent=store.findings(status="active", limit=8),
        )

    async def findings(self, request: Request, who: Identity) -> Response:
        page = _page(request)
        filters: dict[str, Any] = {
            "status": _arg(request, "status", ["open", "updated", "closed", "active"]),
            "severity_at_least": _arg(request, "severity", SEVERITIES),
            "technique": _arg(request, "technique", sorted(TECHNIQUES)),
            "model": _arg(request, "model"),
            "principal": _arg(request, "principal"),
        }
        rows = self.store.findings(**filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        total = self.store.count_findings(**filters)
        return self.pages.render(
            request,
            "findings.html",
            who,
            rows=rows,
            triage=self.store.triage([f.finding_id for f in rows]),
            total=total,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            filters=filters,
            severities=SEVERITIES,
            techniques=TECHNIQUES,
            models=sorted(self.store.stats().interactions_per_model),
        )

    async def finding(self, request: Request, who: Identity) -> Response:
        fid = request.path_params["finding_id"]
        detail = self.store.finding(fid)
        if detail is None:
            return self.pages.render(request, "error.html", who, 404, message=f"No finding {fid}.")
        f = detail.finding
        triggering = []
        for p in f.principals[:20]:
            # the interactions leading up to the detection, the trigger last among them
            triggering += self.store.interactions(p, until=f.detected_ts + 1e-6, limit=25)
        triggering.sort(key=lambda i: (i.id != f.trigger_id, -i.ts))
        principals = [self.store.principal(p) for p in f.principals[:50]]
        return self.pages.render(
            request,
            "finding.html",
            who,
            f=f,
            events=detail.events,
            triage=detail.triage,
            changed=_arg(request, "changed", ["acknowledge", "close"]),
            signals=self.store.signals(finding_id=fid, limit=100),
            triggering=triggering[:60],
            principals=[p for p in principals if p is not None],
            technique=TECHNIQUES.get(f.technique["id"]),
        )

    async def principals(self, request: Request, who: Identity) -> Response:
        page = _page(request)
        order = _arg(request, "order", ["risk", "queries", "last_seen"]) or "risk"
        rows = self.store.principals(order_by=order, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return self.pages.render(
            request, "principals.html", who, rows=rows, page=page, order=order, more=len(rows) == PAGE_SIZE
        )

    async def principal(self, request: Request, who: Identity) -> Response:
        name = request.path_params["principal"]
        summary = self.store.principal(name)
        if summary is None:
            return self.pages.render(request, "error.html", who, 404, message=f"No principal {name}.")
        rows = self.store.interactions(name, limit=PLOT_ROWS)
        sigs = self.store.signals(name, limit=PLOT_ROWS)
        s = series.build(rows, sigs)
        timeline: list[tuple[float, str, Any]] = [(i.ts, "interaction", i) for i in rows[:TIMELINE]]
        timeline += [(g.ts, "signal", g) for g in sigs[:TIMELINE]]
        timeline.sort(key=lambda t: -t[0])
        plots = {
            "volume": charts.line_chart(
                [charts.Series(f"queries per {_width(s.bucket_seconds)}", s.volume, "s0")],
                title="Query volume",
            ),
            "outputs": charts.line_chart(
                [
                    charts.Series("target-class confidence", s.confidence, "s1", dots=True),
                    charts.Series("margin", s.margin, "s2", dots=True),
                ],
                title="Output margin and target-class confidence",
                y_range=(0.0, 1.0),
            ),
            "neardup": charts.line_chart(
                [charts.Series("exact-repeat share", s.repeat_rate, "s3")]
                + (
                    [charts.Series("near-dup hits (signals)", _scaled(s.neardup_hits), "s4", dots=True)]
                    if s.neardup_hits
                    else []
                ),
                title="Near-duplicate rate",
                y_range=(0.0, 1.0),
            ),
            "budget": charts.line_chart(
                [charts.Series("bits disclosed", s.budget_bits, "s5")]
                if s.budget_bits
                else [charts.Series("distinct answers received", s.answers, "s5")],
                title="Extraction budget progress",
                threshold=s.budget_threshold,
                y_label="bits" if s.budget_bits else "answers",
            ),
            "coverage": charts.line_chart(
                [charts.Series("input-space coverage", s.coverage, "s1")],
                title="Coverage of the reference input space",
                y_range=(0.0, 1.0),
            ),
        }
        return self.pages.render(
            request,
            "principal.html",
            who,
            p=summary,
            live_decision=self.ctx.enforced(name),
            findings=self.store.findings(principal=name, limit=50),
            audit=self.store.audit(limit=50, principal=name),
            timeline=timeline[:TIMELINE],
            plots=plots,
            actions=OPERATOR_ACTIONS,
            has_neardup=bool(s.neardup_hits),
            has_budget_signals=bool(s.budget_bits),
            has_coverage=bool(s.coverage),
            ledgers=self._ledgers(name, summary.models),
            intel_matches=intel.matches(self.store, principal=name, limit=20),
        )

    def _ledgers(self, principal: str, models: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The budget ledger's current numbers for the principal, per model, from the live engine."""
        found: dict[str, dict[str, Any]] = {}
        if self.ctx.engine is None:
            return found
        for model in models:
            for det in self.ctx.engine.detectors(model):
                ledger = getattr(det, "ledger", None)
                if det.name == "budget" and callable(ledger):
                    now = ledger(principal)
                    if now:
                        found[model] = now
        return found

    async def actors(self, request: Request, who: Identity) -> Response:
        rows = sorted(self.store.actors(), key=lambda a: (-(a.max_severity or -1), -len(a.members), a.actor))
        return self.pages.render(request, "actors.html", who, rows=rows)

    async def actor(self, request: Request, who: Identity) -> Response:
        name = request.path_params["actor"]
        found = self.store.actor(name)
        if found is None:
            return self.pages.render(request, "error.html", who, 404, message=f"No actor {name}.")
        members = [self.store.principal(m) for m in found.members[:200]]
        return self.pages.render(
            request,
            "actor.html",
            who,
            a=found,
            members=[m for m in members if m is not None],
            findings=self.store.findings(actor=name, limit=50),
            actions=OPERATOR_ACTIONS,
        )

    async def models(self, request: Request, who: Identity) -> Response:
        return self.pages.render(
            request,
            "models.html",
            who,
            models=inventory(self.store, self.ctx.profiles, self.ctx.policy),
            gauge=charts.gauge,
        )

    async def audit(self, request: Request, who: Identity) -> Response:
        """Decision changes, or (``log=operator``) finding triage and console logins."""
        page = _page(request)
        log = _arg(request, "log", ["decisions", "operator"]) or "decisions"
        principal = _arg(request, "principal")
        offset = (page - 1) * PAGE_SIZE
        if log == "operator":
            event = _arg(request, "event", list(OPERATOR_EVENTS))
            events = self.store.operator_audit(PAGE_SIZE, offset, event=event)
            more = len(events) == PAGE_SIZE
            return self.pages.render(
                request, "audit.html", who, log=log, rows=events, page=page, principal=None, event=event, more=more
            )
        rows = self.store.audit(limit=PAGE_SIZE, offset=offset, principal=principal)
        return self.pages.render(
            request, "audit.html", who, log=log, rows=rows, page=page, principal=principal, more=len(rows) == PAGE_SIZE
        )

    async def search(self, request: Request, who: Identity) -> Response:
        """Jump to what the analyst typed: a finding id, a principal or an actor."""
        q = (request.query_params.get("q") or "").strip()
        base = request.scope.get("root_path", "")
        if q and self.store.finding(q) is not None:
            return secure(RedirectResponse(f"{base}/findings/{quote(q, safe='')}", status_code=303))
        if q and self.store.principal(q) is not None:
            return secure(RedirectResponse(f"{base}/principals/{quote(q, safe='')}", status_code=303))
        if q and self.store.actor(q) is not None:
            return secure(RedirectResponse(f"{base}/actors/{quote(q, safe='')}", status_code=303))
        return self.pages.render(
            request,
            "error.html",
            who,
            404,
            message=f"Nothing is called {q!r}: try a finding id, a principal or an actor.",
        )

    async def intel(self, request: Request, who: Identity) -> Response:
        page = _page(request)
        found = intel.matches(self.store, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return self.pages.render(
            request,
            "intel.html",
            who,
            installed=intel_installed(),
            feeds=intel.feeds(self.ctx.intel),
            matches=found,
            per_feed=intel.per_feed(found),
            findings=self.store.findings(technique=API_ACCESS, limit=20),
            page=page,
            more=len(found) == PAGE_SIZE,
        )


def _width(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _scaled(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Near-duplicate hit counts scaled into 0-1 so they share the rate's axis."""
    top = max((y for _, y in points), default=0.0) or 1.0
    return [(x, y / top) for x, y in points]
