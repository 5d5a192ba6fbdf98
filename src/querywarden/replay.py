"""Replay: stream a traffic file through the engine, as ``fail2ban-regex`` does for a log.

The file is read line by line (plain or gzip), so memory stays bounded whatever its size:
only the engine's own bounded state grows. Every bad line becomes a located reject,
reported and written to a rejects file with its raw text, and the run goes on. Findings
are written as they happen; the engine's end-of-stream sweep closes stale ones.

This module is the loop and its accounting; the command line (progress bar, summary
table, exit codes) lives in ``querywarden.commands.replay``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import IO, Any, Protocol

import msgspec

from querywarden.core.engine import Engine
from querywarden.core.records import Decision, Finding, Interaction, Signal
from querywarden.core.traffic import TrafficParser
from querywarden.errors import TrafficError
from querywarden.findings_out import FindingsWriter
from querywarden.reference import open_text_or_gzip

STORE_BATCH = 2_000
"""Interactions handed to the store per write when ``--db`` is set."""

PROGRESS_EVERY = 20_000
"""Lines between progress callbacks."""


class Recorder(Protocol):
    """Where a replay keeps what it saw when a store is attached (``Store`` has this shape)."""

    def record(
        self,
        interactions: Iterable[Interaction] = (),
        signals: Iterable[Signal] = (),
        findings: Iterable[Finding] = (),
        decisions: Iterable[Decision] = (),
        *,
        wait: bool = True,
    ) -> None: ...

    def flush(self) -> None: ...


@dataclass(slots=True)
class Reject:
    source: str
    line: int
    reason: str
    raw: str

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class ReplayStats:
    lines: int = 0
    interactions: int = 0
    rejects: int = 0
    signals: int = 0
    finding_events: int = 0
    seconds: float = 0.0
    findings: dict[str, tuple[str, str, str, tuple[str, ...]]] = field(default_factory=dict)
    """Per finding id, its latest technique id and name, severity label and principals
    (not the whole finding: a long replay may raise many, and evidence is bulky)."""
    rejects_path: Path | None = None

    @property
    def rate(self) -> float:
        return self.interactions / self.seconds if self.seconds > 0 else 0.0

    def by_technique_severity(self) -> Counter[tuple[str, str, str]]:
        """Distinct findings per (technique id, technique name, severity label), at their latest state."""
        return Counter((tid, name, severity) for tid, name, severity, _ in self.findings.values())

    def principals_flagged(self) -> set[str]:
        return {p for *_, principals in self.findings.values() for p in principals}


class RejectsFile:
    """Opened on the first reject only, so a clean run leaves no empty file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self._encoder = msgspec.json.Encoder()

    def write(self, reject: Reject) -> None:
        if self._fh is None:
            self._fh = self.path.open("wb")
        rec = {"location": reject.location, "line": reject.line, "reason": reject.reason, "raw": reject.raw}
        self._fh.write(self._encoder.encode(rec) + b"\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def default_rejects_path(traffic: Path, findings_dir: Path) -> Path:
    """``<traffic stem>.rejects.jsonl`` next to the findings output."""
    name = traffic.name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json"):
        name = name.removesuffix(suffix)
    return findings_dir / f"{name}.rejects.jsonl"


def replay(
    path: Path,
    engine: Engine,
    findings: FindingsWriter,
    *,
    rejects: RejectsFile | None = None,
    on_reject: Callable[[Reject], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    recorder: Recorder | None = None,
) -> ReplayStats:
    """Run every line of ``path`` through ``engine``; write findings; report rejects.

    ``on_progress(lines, bytes_read)`` is called every ``PROGRESS_EVERY`` lines with the
    position in the (compressed) file, for a progress bar.
    """
    stats = ReplayStats(rejects_path=rejects.path if rejects else None)
    parser = TrafficParser(engine.profiles, str(path))
    process = engine.process
    parse = parser.parse
    latest = stats.findings
    write = findings.write
    pending: list[Any] = [[], [], [], []]
    started = perf_counter()

    def reject(lineno: int, reason: str, line: bytes) -> None:
        stats.rejects += 1
        r = Reject(str(path), lineno, reason, line.rstrip(b"\r\n").decode("utf-8", "backslashreplace"))
        if rejects is not None:
            rejects.write(r)
        if on_reject is not None:
            on_reject(r)

    def emit(found: list[Finding]) -> None:
        for f in found:
            write(f)
            latest[f.finding_id] = (f.technique["id"], f.technique["name"], f.severity.label, f.principals)
        stats.finding_events += len(found)

    with open_text_or_gzip(path) as fh:
        raw = getattr(fh, "fileobj", None) or fh
        lineno = 0
        for lineno, line in enumerate(fh, start=1):
            if on_progress is not None and lineno % PROGRESS_EVERY == 0:
                on_progress(lineno, raw.tell())
            try:
                interactions = parse(line, lineno)
            except TrafficError as exc:
                if not line.strip():
                    continue  # blank lines (a trailing newline, spacing) are not records
                reject(lineno, exc.reason, line)
                continue
            for interaction in interactions:
                step = process(interaction)
                if step.findings:
                    emit(step.findings)
                if recorder is not None:
                    pending[0].append(interaction)
                    if step.signals or step.findings:
                        pending[1].extend(step.signals)
                        pending[2].extend(step.findings)
                        pending[3].extend(step.decisions)
                    if len(pending[0]) >= STORE_BATCH:
                        recorder.record(*pending, wait=False)
                        pending = [[], [], [], []]
                if step.signals:
                    stats.signals += len(step.signals)
            stats.interactions += len(interactions)
        stats.lines = lineno
    closed = engine.flush()
    emit(closed)
    if recorder is not None:
        pending[2].extend(closed)
        recorder.record(*pending, wait=False)
        recorder.flush()
    findings.flush()
    if on_progress is not None:
        on_progress(stats.lines, path.stat().st_size)
    stats.seconds = perf_counter() - started
    return stats


def read_interactions(path: Path, parser: TrafficParser, on_reject: Callable[[Reject], None]) -> Iterator[Interaction]:
    """Every interaction in a traffic file, in order; bad lines go to ``on_reject`` and are skipped.

    The general-purpose reader (``calibrate`` uses it); ``replay`` inlines the same loop
    for speed.
    """
    with open_text_or_gzip(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                yield from parser.parse(line, lineno)
            except TrafficError as exc:
                if line.strip():
                    on_reject(
                        Reject(str(path), lineno, exc.reason, line.rstrip(b"\r\n").decode("utf-8", "backslashreplace"))
                    )


__all__ = ["Recorder", "Reject", "RejectsFile", "ReplayStats", "default_rejects_path", "read_interactions", "replay"]
