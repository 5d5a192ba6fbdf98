"""Cost of the intel detector per interaction and of exporting findings, on loopback.

    .venv/bin/python benchmarks/exports_intel.py

Prints per-interaction engine time with no detector, the intel detector without a feed,
and with 65,000 indicators (50k addresses, 5k /24 networks, 10k principals) over 5,000
client addresses; then the dispatcher's submit cost and CEF-over-TCP delivery rate to a
socket listener in this process. Best of three, wall and CPU time (the machine is shared).
"""

from __future__ import annotations

import ipaddress
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from exports_receivers import TcpListener, make_finding, split_octet_counted
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction
from querywarden.exports.dispatcher import Dispatcher, Route
from querywarden.exports.syslog import SyslogExporter
from querywarden.intel.indicators import indicator_from_dict
from querywarden.intel.matcher import IntelMatcher
from querywarden.plugins import load_detectors

N = 50_000


def engine_cost() -> None:
    load_detectors()
    rng = np.random.default_rng(0)
    addrs = [str(ipaddress.IPv4Address(int(v))) for v in rng.integers(1 << 24, 1 << 31, 50_000)]
    nets = [f"{ipaddress.IPv4Address(int(v) << 8)}/24" for v in rng.integers(1 << 16, 1 << 23, 5_000)]
    raw = [{"kind": "network", "value": a} for a in addrs + nets]
    raw += [{"kind": "principal", "value": f"bad{i}"} for i in range(10_000)]
    feed = IntelMatcher([indicator_from_dict(r) for r in raw])
    profiles = {"m": ModelProfile(id="m", n_features=4)}
    ips = [str(ipaddress.IPv4Address(int(v))) for v in rng.integers(1 << 24, 1 << 31, 5_000)]
    stream = [
        Interaction(
            id=f"r{i}",
            ts=1e9 + i,
            principal=f"p{i % 2000}",
            model="m",
            client=Client(ip=ips[i % 5000]),
            features=np.zeros(4),
        )
        for i in range(N)
    ]

    def run(specs: list[DetectorSpec]) -> tuple[float, float]:
        engine = Engine(profiles, detectors=specs)
        wall, cpu = time.perf_counter(), time.process_time()
        for it in stream:
            engine.process(it)
        return (time.perf_counter() - wall) / N * 1e6, (time.process_time() - cpu) / N * 1e6

    for label, specs in (
        ("no detector", []),
        ("intel, no feed", [DetectorSpec("intel")]),
        ("intel, 65k indicators", [DetectorSpec("intel", {"feed": feed})]),
    ):
        wall, cpu = min(run(specs) for _ in range(3))
        print(f"engine, {label}: {wall:.2f} us wall, {cpu:.2f} us CPU per interaction")


def export_cost(n: int = 20_000) -> None:
    listener = TcpListener()
    dispatcher = Dispatcher(
        [Route(SyslogExporter("127.0.0.1", listener.port, transport="tcp"), queue_size=n, batch_size=500)]
    )
    findings = [make_finding(finding_id=f"fnd-{i}") for i in range(n)]
    start = time.perf_counter()
    for f in findings:
        dispatcher.submit((f,))
    submitted = time.perf_counter()
    dispatcher.drain(120)
    done = time.perf_counter()
    time.sleep(0.5)
    received = len(split_octet_counted(listener.data()))
    print(f"dispatcher submit: {(submitted - start) / n * 1e6:.2f} us per finding")
    print(f"CEF over TCP: {n / (done - start):,.0f} findings/s, {received:,} of {n:,} received")
    dispatcher.close()
    listener.close()


if __name__ == "__main__":
    engine_cost()
    export_cost()
