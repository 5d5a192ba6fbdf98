"""From requests to traffic: the benchmark speaks the same JSON Lines record as the gateway.

Benign workloads and attack variants both produce :class:`Request` objects: who sent
which rows, when, and from where. This module asks the victim for its answers (one
vectorized call per stream, so a batch job of 50,000 rows costs one ``predict_proba``),
turns every row into an :class:`Interaction`, and writes the stream as traffic records
with :func:`querywarden.core.traffic_encode.encode`. A request with several rows becomes one
interaction per row, with ids ``req#0``, ``req#1``, ... as DESIGN.md says for batches.

Because ``parse(encode(i))`` gives back ``i``, the interactions the benchmark scores are
exactly what ``querywarden replay`` reads from the files it leaves behind.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from querywarden.bench.scenario import Matrix, Victim
from querywarden.core.records import Client, Interaction, Output
from querywarden.core.traffic import TrafficParser
from querywarden.core.traffic_encode import encode
from querywarden.reference import open_text_or_gzip


@dataclass(frozen=True, slots=True)
class Request:
    """One API call: ``rows`` is ``(n, d)``; ``n > 1`` is a batch."""

    id: str
    ts: float
    principal: str
    ip: str
    user_agent: str
    rows: Matrix
    probabilities: Matrix | None = None
    """Answers already known (an attack's recorded outputs); else the victim is asked."""
    scores: Matrix | None = None


def interactions(requests: Sequence[Request], victim: Victim) -> list[Interaction]:
    """Every row of every request as an interaction, with the victim's output attached.

    Rows whose answers are not recorded are scored in one call. The output carries
    probabilities, plus logits when the victim's API returns them (the FEE victim), so the
    recorded traffic shows what the caller really received.
    """
    pending = [r for r in requests if r.probabilities is None]
    asked: dict[str, tuple[Matrix, Matrix | None]] = {}
    if pending:
        stacked = np.concatenate([r.rows for r in pending], axis=0)
        probs = np.asarray(victim.predict_proba(stacked), dtype=np.float64)
        scores = None
        if victim.predict_scores is not None:
            scores = np.asarray(victim.predict_scores(stacked), dtype=np.float64)
        at = 0
        for r in pending:
            n = r.rows.shape[0]
            asked[r.id] = (probs[at : at + n], None if scores is None else scores[at : at + n])
            at += n
    model = victim.profile.id
    labels_only = victim.profile.output_kind == "label"
    out: list[Interaction] = []
    for r in requests:
        probs_r, scores_r = (r.probabilities, r.scores) if r.probabilities is not None else asked[r.id]
        client = Client(ip=r.ip, user_agent=r.user_agent)
        n = r.rows.shape[0]
        for i in range(n):
            p = np.asarray(probs_r[i], dtype=np.float64)
            if labels_only:
                output = Output(label=int(np.argmax(p)))
            else:
                s = None if scores_r is None else np.asarray(scores_r[i], dtype=np.float64)
                output = Output(probabilities=p, scores=s)
            out.append(
                Interaction(
                    id=r.id if n == 1 else f"{r.id}#{i}",
                    ts=r.ts,
                    principal=r.principal,
                    model=model,
                    client=client,
                    features=np.asarray(r.rows[i], dtype=np.float64),
                    output=output,
                )
            )
    return out


def merge(*streams: Iterable[Interaction]) -> list[Interaction]:
    """Interleave time-ordered streams by ``ts``; ties keep the order the streams were given.

    Each stream must already be ordered by time (what the generators produce).
    """
    return list(heapq.merge(*streams, key=lambda i: i.ts))


def sort_requests(requests: Iterable[Request]) -> list[Request]:
    """Requests in time order, ties broken by id so the order never depends on generation order."""
    return sorted(requests, key=lambda r: (r.ts, r.id))


def write_jsonl(path: Path, stream: Iterable[Interaction]) -> int:
    """Write the stream as traffic records, one per line. Returns the number of lines.

    A name ending in ``.gz`` is gzip-compressed (fast level): scenario files repeat the
    benign background, and ``replay`` reads gzip directly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb", compresslevel=1) as gz:
            return _write_lines(gz.write, stream)
    with path.open("wb") as fh:
        return _write_lines(fh.write, stream)


def _write_lines(write: Callable[[bytes], object], stream: Iterable[Interaction]) -> int:
    n = 0
    for interaction in stream:
        write(encode(interaction) + b"\n")
        n += 1
    return n


def read_jsonl(path: Path, victims: Sequence[Victim]) -> Iterator[Interaction]:
    """Read a traffic file the benchmark wrote, as ``replay`` would. A bad line raises ``TrafficError``."""
    parser = TrafficParser({v.profile.id: v.profile for v in victims}, str(path))
    with open_text_or_gzip(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            yield from parser.parse(line, lineno)
