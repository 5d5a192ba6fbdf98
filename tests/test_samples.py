"""Every detector ships annotated sample traffic, and the samples hold.

Like a log filter's sample files, each detector has ``samples/<name>/`` with a positive and
a negative traffic file and ``expect.toml``: the ``[profile]`` of the sample's model, and
what the detector must say. A detector without samples fails here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import querywarden.detectors
from querywarden.config import load_profile
from querywarden.core.records import Severity, Signal
from querywarden.core.traffic import TrafficParser
from querywarden.plugins import load_detectors

SAMPLES = Path(querywarden.detectors.__file__).parent / "samples"
DETECTORS = load_detectors()
BUILTIN = sorted(n for n, cls in DETECTORS.items() if cls.__module__.startswith("querywarden."))


def _run(name: str, kind: str) -> tuple[dict, list[tuple[int, Signal]]]:
    folder = SAMPLES / name
    expect_path = folder / "expect.toml"
    assert expect_path.is_file(), f"detector {name!r} ships no samples/{name}/expect.toml"
    expect = tomllib.loads(expect_path.read_text())
    profile = load_profile(expect["profile"], path=expect_path)
    params = expect.get("params", {})
    det = DETECTORS[name](profile=profile, **params)
    parser = TrafficParser({profile.id: profile}, source=str(folder / f"{kind}.jsonl"))
    counts: dict[str, int] = {}
    out: list[tuple[int, Signal]] = []
    with (folder / f"{kind}.jsonl").open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            for it in parser.parse(line, lineno):
                counts[it.principal] = counts.get(it.principal, 0) + 1
                out.extend((counts[it.principal], s) for s in det.update(it))
    return expect, out


@pytest.mark.parametrize("name", BUILTIN)
def test_positive_sample_is_detected(name: str) -> None:
    expect, signals = _run(name, "positive")
    want = expect["positive"]
    floor = Severity.parse(want.get("min_severity", "medium"))
    hits = [(n, s) for n, s in signals if s.principal == want["principal"] and s.severity >= floor]
    assert hits, f"{name}: no {floor.label}+ signal on {want['principal']!r}"
    first = hits[0][0]
    assert first <= want.get("within", 10**9), f"{name}: first {floor.label}+ signal after {first} queries"


@pytest.mark.parametrize("name", BUILTIN)
def test_negative_sample_stays_quiet(name: str) -> None:
    expect, signals = _run(name, "negative")
    ceiling = Severity.parse(expect["negative"].get("max_severity", "low"))
    loud = [s for _, s in signals if s.severity > ceiling]
    assert not loud, f"{name}: negative sample raised {[(s.principal, s.severity.label) for s in loud[:3]]}"
