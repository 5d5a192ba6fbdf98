"""Gateway latency: what the gateway adds in front of a real model server on loopback.

Processes: a model server (Starlette/uvicorn serving 64-feature generic predict calls,
either a near-free 4-class softmax regression or a scikit-learn MLP's ``predict_proba``),
the gateway as ``querywarden serve`` builds it (every registered detector, no config, so
profiles are drafted live) in process mode (the default: the engine in a child process)
and in thread mode (the engine in a worker thread of the proxy), and a load generator in
its own process. For each model server the paths alternate (direct, process mode, thread
mode) with the same arrival schedule; medians over runs are reported.

    .venv/bin/python benchmarks/gateway_latency.py                   # print the tables
    .venv/bin/python benchmarks/gateway_latency.py --write docs/performance.md

Targets: p99 added by the gateway <= 2 ms, throughput >= 70% of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from perfdoc import write_section

N_FEATURES = 64
N_CLASSES = 4
HERE = Path(__file__).resolve()


def bench_rows() -> list[list[float]]:
    """One row per API key: points of the MLP's own training set, which it classifies with
    confidence (a fixed row near a class boundary, sent thousands of times, is what the
    boundary-probing detector exists to catch, and its answers would be blocks, not model calls)."""
    from sklearn.datasets import make_classification

    x, _ = make_classification(
        n_samples=2000, n_features=N_FEATURES, n_informative=16, n_classes=N_CLASSES, random_state=0
    )
    return [[round(float(v), 4) for v in row] for row in x[:8]]


# -- the processes ---------------------------------------------------------------------------
MODELS = {
    "softmax": "a 4-class softmax regression (a 64x4 matrix product: nearly free)",
    "mlp": "a scikit-learn `MLPClassifier` (64-256-128-4) `predict_proba`",
}
MODES = ("process", "thread")


def serve_upstream(port: int, model: str) -> None:
    import numpy as np
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(N_FEATURES, N_CLASSES))

    def softmax(rows: Any) -> Any:
        z = rows @ weights
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    predict_proba = softmax
    if model == "mlp":
        from sklearn.datasets import make_classification
        from sklearn.neural_network import MLPClassifier

        x, y = make_classification(
            n_samples=2000, n_features=N_FEATURES, n_informative=16, n_classes=N_CLASSES, random_state=0
        )
        predict_proba = (
            MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=50, random_state=0).fit(x, y).predict_proba
        )

    async def predict(request: Request) -> Response:
        rows = np.asarray(json.loads(await request.body())["instances"], dtype=np.float64)
        p = predict_proba(rows)
        return Response(json.dumps({"predictions": p.tolist()}), media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_gateway(port: int, upstream: str, mode: str) -> None:
    from querywarden.gateway.server import build_process_server, build_server, load_gateway_settings, run

    settings = load_gateway_settings(None, upstream=upstream, default_model="bench", engine_mode=mode)
    server = build_process_server(settings, admin=False) if mode == "process" else build_server(settings)
    run(server, "127.0.0.1", port, "127.0.0.1", None)


async def _load(url: str, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    import httpx

    rows = bench_rows()
    latencies: list[float] = []
    errors = 0
    served = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker(n: int) -> None:
            nonlocal errors, served
            headers = {"x-api-key": f"bench-key-{n}", "content-type": "application/json"}
            body = json.dumps({"instances": [rows[n % len(rows)]]}).encode()
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                r = await client.post(url, content=body, headers=headers)
                t1 = time.perf_counter()
                served += 1
                if r.status_code != 200:
                    errors += 1
                elif t0 >= measure_from:
                    latencies.append(t1 - t0)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "rps": n / duration,
        "p50_ms": 1000 * latencies[n // 2],
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))],
        "served": served,
        "tool": "httpx",
    }


def run_load(url: str, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    """The load generator, in its own process: wrk when installed, else async httpx."""
    if shutil.which("wrk"):
        return run_wrk(url, concurrency, warmup, duration)
    cmd = [sys.executable, str(HERE), "--role", "load", "--url", url]
    cmd += ["--concurrency", str(concurrency), "--warmup", str(warmup), "--duration", str(duration)]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True, timeout=warmup + duration + 60)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


_WRK_SCRIPT = """local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  local i = n %% #bodies
  local headers = {["Content-Type"] = "application/json", ["X-Api-Key"] = "bench-key-" .. i}
  return wrk.format("POST", nil, headers, bodies[i + 1])
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    bodies = ", ".join("'" + json.dumps({"instances": [row]}) + "'" for row in bench_rows())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_SCRIPT % bodies)
    try:
        base = ["wrk", "-t1", f"-c{concurrency}", "-s", f.name, "--latency"]
        warm = subprocess.run(
            [*base, f"-d{max(1, round(warmup))}s", url], capture_output=True, check=True, text=True, timeout=60
        )
        out = subprocess.run(
            [*base, f"-d{round(duration)}s", url], capture_output=True, check=True, text=True, timeout=120
        )
    finally:
        Path(f.name).unlink()
    text = out.stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m is None:
            raise RuntimeError(f"cannot read the {pct}% latency from wrk:\n{text}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "served": _wrk_requests(warm.stdout) + _wrk_requests(text),
        "tool": "wrk",
    }


def _wrk_requests(text: str) -> int:
    m = re.search(r"(\d+) requests in", text)
    return int(m.group(1)) if m else 0


# -- open loop: a fixed request rate, latency from the scheduled send time -------------------
def _request_bytes(url: str, key: str, row: list[float]) -> tuple[str, int, bytes]:
    """One pre-built HTTP/1.1 request: the generator spends its CPU on timing, not on encoding."""
    parts = urlsplit(url)
    body = json.dumps({"instances": [row]}).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
        f"x-api-key: {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a kept-alive connection and read the whole answer; the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    if length is None:
        raise RuntimeError(f"answer without content-length: {head[:200]!r}")
    await reader.readexactly(int(length.group(1)))
    return int(head.split(b" ", 2)[1])


async def _open_loop(url: str, rate: float, warmup: float, duration: float, seed: int) -> dict[str, Any]:
    """Poisson arrivals at ``rate`` per second, each sent on a free keep-alive connection.

    The schedule is fixed in advance and never waits for answers (open loop): when the
    server stalls, requests keep arriving, and each one's latency runs from the time it
    was *scheduled*, so a stall shows in every request it delayed (no coordinated omission).
    The generator's own lateness (timer granularity, its share of the CPU) is reported as
    ``lag``; it is the same for both paths, so it cancels in the difference.
    """
    rng = random.Random(seed)
    rows = bench_rows()
    host, port, _ = _request_bytes(url, "", rows[0])
    requests = [_request_bytes(url, f"bench-key-{n}", row)[2] for n, row in enumerate(rows)]
    idle: list[tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], float]] = []
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    served = 0
    loop = asyncio.get_running_loop()

    async def one(scheduled: float, n: int, measured: bool) -> None:
        nonlocal errors, served
        lag = loop.time() - scheduled
        conn = None
        while idle and conn is None:
            conn, since = idle.pop()
            if lag + scheduled - since > 3.0:  # uvicorn closes connections idle for 5 s: do not race it
                conn[1].close()
                conn = None
        if conn is None:
            conn = await asyncio.open_connection(host, port)
        try:
            status = await _exchange(*conn, requests[n % len(requests)])
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            conn[1].close()
            errors += 1
            return
        done = loop.time()
        idle.append((conn, done))
        served += 1
        if status != 200:
            errors += 1
        elif measured:
            latencies.append(done - scheduled)
            lags.append(lag)

    for _ in range(16):
        idle.append((await asyncio.open_connection(host, port), loop.time()))
    pending: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.01
    measure_from, stop_at = start + warmup, start + warmup + duration
    scheduled, n = start, 0
    while scheduled < stop_at:
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled, n, scheduled >= measure_from))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        scheduled += rng.expovariate(rate)
    await asyncio.gather(*pending)
    for (_, writer), _ in idle:
        writer.close()
    latencies.sort()
    lags.sort()
    k = len(latencies)
    return {
        "requests": k,
        "errors": errors,
        "rate": k / duration,
        "p50_ms": 1000 * latencies[k // 2],
        "p99_ms": 1000 * latencies[min(k - 1, int(k * 0.99))],
        "lag_p50_ms": 1000 * lags[k // 2],
        "lag_p99_ms": 1000 * lags[min(k - 1, int(k * 0.99))],
        "served": served,
    }


def run_open(url: str, rate: float, warmup: float, duration: float, seed: int) -> dict[str, Any]:
    """The open-loop generator, in its own process (on uvloop when installed, as the servers are)."""
    cmd = [sys.executable, str(HERE), "--role", "open", "--url", url, "--rate", str(rate), "--seed", str(seed)]
    cmd += ["--warmup", str(warmup), "--duration", str(duration)]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True, timeout=warmup + duration + 60)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _asyncio_run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The child processes of a process (the gateway's engine process), from /proc."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


# -- orchestration ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.DEVNULL, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=["bench", "upstream", "gateway", "load", "open"], default="bench")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upstream", default="")
    ap.add_argument("--url", default="")
    ap.add_argument("--model", choices=sorted(MODELS), default="softmax", help="(upstream role) the model served")
    ap.add_argument("--mode", choices=MODES, default="process", help="(gateway role) where the engine runs")
    ap.add_argument("--models", default="softmax,mlp", help="Model servers to measure behind, comma-separated.")
    ap.add_argument("--rates", default="100,300,1000", help="Open-loop request rates (req/s), comma-separated.")
    ap.add_argument("--rate", type=float, default=100.0, help="(open role) the request rate")
    ap.add_argument("--seed", type=int, default=0, help="(open role) seed of the arrival schedule")
    ap.add_argument("--open-duration", type=float, default=6.0, help="Seconds per open-loop run.")
    ap.add_argument("--concurrency", type=int, default=8, help="Connections of the saturation runs (0: skip them).")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=5.0, help="Seconds per saturation run.")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write", type=Path, help="Write the 'Gateway latency' section into this Markdown file.")
    ap.add_argument("--save", type=Path, help="Also save the raw runs as JSON here.")
    ap.add_argument("--load", type=Path, help="Report the raw runs saved by --save instead of measuring.")
    args = ap.parse_args()
    if args.role == "upstream":
        serve_upstream(args.port, args.model)
    elif args.role == "gateway":
        serve_gateway(args.port, args.upstream, args.mode)
    elif args.role == "load":
        print(json.dumps(asyncio.run(_load(args.url, args.concurrency, args.warmup, args.duration))))
    elif args.role == "open":
        print(json.dumps(_asyncio_run(_open_loop(args.url, args.rate, args.warmup, args.duration, args.seed))))
    else:
        bench(args)


Runs = dict[str, list[dict[str, Any]]]
PATHS = ("direct", *MODES)


def bench(args: argparse.Namespace) -> None:
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    results: dict[str, tuple[dict[float, Runs], Runs]] = {}
    if args.load:
        saved = json.loads(args.load.read_text())
        vars(args).update(saved["args"])
        for model, (opened, saturated) in saved["results"].items():
            results[model] = ({float(rate): runs for rate, runs in opened.items()}, saturated)
    else:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            results[model] = bench_behind(model, rates, args)
    if not args.load:
        args.measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.load_average = list(os.getloadavg())
    if args.save:
        kept = ("open_duration", "concurrency", "duration", "runs", "warmup", "measured_at", "load_average")
        args.save.write_text(json.dumps({"args": {k: vars(args)[k] for k in kept}, "results": results}))
    text = report(results, args)
    print(text)
    if args.write:
        write_section("## Gateway latency", text, args.write)


def bench_behind(model: str, rates: list[float], args: argparse.Namespace) -> tuple[dict[float, Runs], Runs]:
    """Direct, process-mode and thread-mode runs, alternating, in front of one model server."""
    ports = {name: free_port() for name in PATHS}
    upstream_url = f"http://127.0.0.1:{ports['direct']}"
    procs = {"direct": spawn("--role", "upstream", "--port", str(ports["direct"]), "--model", model)}
    for mode in MODES:
        procs[mode] = spawn("--role", "gateway", "--port", str(ports[mode]), "--upstream", upstream_url, "--mode", mode)
    targets = {name: f"http://127.0.0.1:{port}/predict" for name, port in ports.items()}
    opened: dict[float, Runs] = {rate: {name: [] for name in PATHS} for rate in rates}
    saturated: Runs = {name: [] for name in PATHS}
    upstream = procs["direct"]
    try:
        for name in PATHS:
            wait_port(ports[name], procs[name])
        for rate in rates:
            for run in range(args.runs):
                for name, url in targets.items():  # the same arrival schedule for each path of a run
                    r = run_open(url, rate, args.warmup, args.open_duration, seed=run)
                    opened[rate][name].append(r)
                    print(
                        f"{model} open {rate:6.0f}/s run {run + 1} {name:8s} p50 {r['p50_ms']:.2f} ms  "
                        f"p99 {r['p99_ms']:.2f} ms  lag p99 {r['lag_p99_ms']:.2f} ms  errors {r['errors']}"
                    )
        for run in range(args.runs if args.concurrency > 0 else 0):
            for name, url in targets.items():
                front = procs[name]
                engines = children(front.pid) if front is not upstream else []
                watched = [upstream.pid, front.pid, *engines]
                before = {pid: cpu_seconds(pid) for pid in watched}
                r = run_load(url, args.concurrency, args.warmup, args.duration)
                used = {pid: cpu_seconds(pid) - before[pid] for pid in watched}
                served = max(1, r["served"])  # warm-up requests included: CPU was spent on them too
                r["upstream_cpu_us"] = 1e6 * used[upstream.pid] / served
                r["gateway_cpu_us"] = 1e6 * used[front.pid] / served if front is not upstream else 0.0
                r["engine_cpu_us"] = 1e6 * sum(used[pid] for pid in engines) / served
                saturated[name].append(r)
                print(
                    f"{model} saturation run {run + 1} {name:8s} {r['rps']:8.0f} req/s  "
                    f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  proxy CPU {r['gateway_cpu_us']:.0f} us  "
                    f"engine process CPU {r['engine_cpu_us']:.0f} us  model CPU {r['upstream_cpu_us']:.0f} us"
                )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(60)
    return opened, saturated


def _paired(runs: Runs, name: str, key: str) -> float:
    """Median over runs of (path - direct) in the same run: each difference has its own baseline."""
    return float(statistics.median(r[key] - d[key] for r, d in zip(runs[name], runs["direct"], strict=True)))


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def open_table(opened: dict[float, Runs]) -> list[str]:
    lines = [
        "| offered load | direct p50 / p99 (ms) | process mode p50 / p99 (ms) | added, process mode p50 / p99 (ms) "
        "| thread mode p50 / p99 (ms) | added, thread mode p50 / p99 (ms) | generator lag p99 (ms) | non-200 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate, runs in opened.items():
        d, p, t = runs["direct"], runs["process"], runs["thread"]
        errors = sum(r["errors"] for rs in runs.values() for r in rs)
        lag = max(_median(rs, "lag_p99_ms") for rs in runs.values())
        lines.append(
            f"| {rate:,.0f} req/s | {_median(d, 'p50_ms'):.2f} / {_median(d, 'p99_ms'):.2f} "
            f"| {_median(p, 'p50_ms'):.2f} / {_median(p, 'p99_ms'):.2f} "
            f"| {_paired(runs, 'process', 'p50_ms'):+.2f} / **{_paired(runs, 'process', 'p99_ms'):+.2f}** "
            f"| {_median(t, 'p50_ms'):.2f} / {_median(t, 'p99_ms'):.2f} "
            f"| {_paired(runs, 'thread', 'p50_ms'):+.2f} / **{_paired(runs, 'thread', 'p99_ms'):+.2f}** "
            f"| {lag:.2f} | {errors} |"
        )
    return lines


def report(results: dict[str, tuple[dict[float, Runs], Runs]], args: argparse.Namespace) -> str:
    load, when = args.load_average, args.measured_at
    first = next(iter(results.values()))[0]
    rates = ",".join(f"{r:g}" for r in first)
    cmd = (
        f".venv/bin/python benchmarks/gateway_latency.py --models {','.join(results)} --rates {rates} "
        f"--open-duration {args.open_duration:g} --concurrency {args.concurrency} --duration {args.duration:g} "
        f"--runs {args.runs}"
    )
    lines = [
        "## Gateway latency",
        "",
        f"Measured {when} with `{cmd}` (Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared by the model server, the gateway, the load generator and other work on the "
        f"machine; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end).",
        "",
        'Every request is one 64-feature generic predict call (`{"instances": [[...64 numbers]]}`) from one of 8 '
        "API keys, each sending its own row (a point of the MLP's training set, which it classifies with "
        "confidence), to a model behind Starlette/uvicorn on loopback, single-threaded: "
        + "; ".join(f"**{m}**, {MODELS[m]}" for m in results)
        + ". The gateway is what `querywarden serve` runs without a config: every registered detector on a "
        "profile drafted from the traffic, store off, in **process mode** (the default: the engine in its own "
        'process, see docs/gateway.md) and in **thread mode** (`engine_mode = "thread"`, the engine in a '
        "worker thread of the proxy, the default before). Both gateways and the direct path are measured in the "
        "same run, alternating, so thread mode is the before and process mode the after.",
        "",
        "### What the gateway adds at a normal load (open loop)",
        "",
        "Requests arrive at a fixed average rate with Poisson (exponential) gaps, whatever the server does: the "
        "schedule never waits for an answer. Latency runs from each request's *scheduled* send time to the last "
        "byte of its answer, so a stall counts in every request it delays (no coordinated omission). Each run "
        f"sends {args.warmup:g} s of warm-up then {args.open_duration:g} s measured from a raw asyncio HTTP/1.1 "
        "client in its own process over keep-alive connections, 8 API keys in turn. The three paths alternate "
        f"with the same arrival schedule; {args.runs} runs per rate. p50/p99 are medians over the runs; the added "
        "latency is the median over runs of (gateway - direct) within the same run. Generator lag is how late the "
        "generator itself sent (the worst path's median); it is in every path's numbers and cancels in the "
        "difference.",
        "",
    ]
    for model, (opened, _) in results.items():
        lines += [f"Behind the **{model}** model server:", "", *open_table(opened), ""]
    if any(sat["direct"] for _, sat in results.values()):
        lines += saturation_lines(results, args)
    lines += ["**Targets.**", ""]
    for model, (opened, saturated) in results.items():
        for mode in MODES:
            verdicts = ", ".join(
                f"{'met' if (a := _paired(runs, mode, 'p99_ms')) <= 2 else 'not met'} at {rate:,.0f} req/s "
                f"({a:+.2f} ms)"
                for rate, runs in opened.items()
            )
            line = f"- {model}, {mode} mode: p99 added <= 2 ms {verdicts}"
            if saturated["direct"]:
                ratio = _ratio(saturated, mode)
                line += f"; throughput >= 70% of direct {'met' if ratio >= 0.7 else 'not met'} ({ratio:.0%})"
            lines.append(line + ".")
    lines += ["", *notes(results), ""]
    return "\n".join(lines)


def notes(results: dict[str, tuple[dict[float, Runs], Runs]]) -> list[str]:
    """What the tables mean, with the figures taken from this run."""
    out: list[str] = []
    cpu = {
        model: {
            name: {k: _median(runs, k) for k in ("gateway_cpu_us", "engine_cpu_us", "upstream_cpu_us")}
            for name, runs in sat.items()
        }
        for model, (_, sat) in results.items()
        if sat["direct"]
    }
    if cpu:
        split = "; ".join(
            f"behind {m}: {c['process']['gateway_cpu_us']:,.0f} µs in the proxy and "
            f"{c['process']['engine_cpu_us']:,.0f} µs in the engine process, against "
            f"{c['thread']['gateway_cpu_us']:,.0f} µs in the one process of thread mode"
            for m, c in cpu.items()
        )
        out += [
            f"**What the split buys.** CPU per request ({split}). The proxy's event loop no longer runs "
            "detection or waits for the GIL behind it, and detection runs on the other core when there is one. "
            "The two processes together cost about what thread mode cost, or less: the split moves the work, and the "
            "hand-off (an exchange appended to a batch, 1-2 µs, plus one write per 5 ms batch) adds little.",
            "",
        ]
        softmax = cpu.get("softmax", next(iter(cpu.values())))
        proxy = softmax["process"]["gateway_cpu_us"]
        out += [
            "**Throughput at saturation is CPU arithmetic.** When the machine's CPU is the limit, the share of "
            "direct throughput left is about (model + client) / (model + client + proxy + engine). A near-free "
            "model (the softmax, about 0.1 ms per request for uvicorn and JSON) cannot reach 70%: the proxy alone "
            f"costs {proxy:,.0f} µs per request, more than the model server. Behind a model that costs more, "
            "the gateway's share shrinks; >= 70% needs the model (and client) to cost about "
            f"{(0.7 / 0.3) * proxy / 1000:.1f} ms of CPU per request with the engine on a core of its own, or "
            f"{(0.7 / 0.3) * (proxy + softmax['process']['engine_cpu_us']) / 1000:.1f} ms when everything shares "
            "the same cores (arithmetic from the CPU columns, not measured). On these 2 shared cores the model "
            "server, the generator and other work compete with both gateway processes, so the measured ratios are "
            "lower than that arithmetic.",
            "",
        ]
    out += [
        "**Where the proxy's time goes** (cProfile with a CPU clock on the proxy of process mode at saturation "
        "behind wrk; /proc for user and system time). About 85% of the proxy's CPU is Python in user space, 15% "
        "the kernel. Building an httpx `Request` for each upstream call (header normalization) was the largest "
        "single item, about a fifth of the proxy's CPU: the gateway now hands its pool the method, URL, headers "
        "and body directly (the upstream receives the same bytes), which took the proxy from 267 to 208-216 µs "
        "per request in back-to-back 5 s wrk runs behind the softmax. What remains is spread thinly: uvicorn's "
        "parsing and its two writes per answer (head, then body), the upstream pool's write and read with their "
        "timers, parsing the body into feature rows, header copies, the metrics, and the hand-off to the engine "
        "process.",
        "",
    ]
    lags = [r["lag_p99_ms"] for op, _ in results.values() for runs in op.values() for rs in runs.values() for r in rs]
    failed = [
        f"{sum(r['errors'] for r in rs):,} in {name} mode behind {model} at {rate:,.0f} req/s"
        for model, (opened, _) in results.items()
        for rate, runs in opened.items()
        for name, rs in runs.items()
        if any(r["errors"] for r in rs)
    ]
    busy = max(lags) > 10.0
    if busy:
        reading = (
            "**Reading.** The load average (above) shows how busy the machine was: other work ran beside the "
            "benchmark, so the gateway paths queued for CPU and the p99 columns measure that queueing as much as "
            f"the gateway. The generator's own lateness reached {max(lags):,.0f} ms at p99 in the worst run: the "
            "whole machine stalled, and such a stall lands in whichever path was running, so a paired difference "
            "can even be negative. Compare the two modes within one table, not across runs."
        )
    else:
        reading = (
            "**Reading.** The machine was otherwise quiet (the generator was never more than "
            f"{max(lags):,.1f} ms late at p99), so the p99 columns are the gateway's own tail, not queueing behind "
            "other work. Medians over runs hide a single bad run; the worst single-run p99 of each path was: "
            + "; ".join(f"{name} {worst:,.1f} ms" for name, worst in _worst_p99(results).items())
            + "."
        )
    worse = [
        f"behind {model} at {rate:,.0f} req/s ({_paired(runs, 'process', 'p99_ms'):+,.2f} against "
        f"{_paired(runs, 'thread', 'p99_ms'):+,.2f} ms)"
        for model, (opened, _) in results.items()
        for rate, runs in opened.items()
        if _paired(runs, "process", "p99_ms") > max(2.0, _paired(runs, "thread", "p99_ms"))
    ]
    if worse:
        reading += (
            " Process mode's added p99 was worse than thread mode's "
            + "; ".join(worse)
            + ". These runs do not establish why: the proxy's CPU per request is lower in process mode, so it "
            "is not the proxy's own cost; queueing for a CPU shared with other work is the likely cause, and only a "
            "run on an otherwise idle machine would separate it from the gateway."
        )
    if failed:
        reading += (
            " Failed requests (the generator counts refused or dropped connections and non-200 answers together): "
            + "; ".join(failed)
            + ", in runs where the generator itself was late by hundreds of milliseconds and thousands of "
            "requests were in flight."
        )
    out.append(reading)
    return out


def _worst_p99(results: dict[str, tuple[dict[float, Runs], Runs]]) -> dict[str, float]:
    """The highest p99 of any single open-loop run, per path (direct, process, thread)."""
    worst: dict[str, float] = {}
    for opened, _ in results.values():
        for runs in opened.values():
            for name, rs in runs.items():
                for r in rs:
                    worst[name] = max(worst.get(name, 0.0), r["p99_ms"])
    return worst


def _ratio(saturated: Runs, mode: str) -> float:
    return _median(saturated[mode], "rps") / _median(saturated["direct"], "rps")


def saturation_lines(results: dict[str, tuple[dict[float, Runs], Runs]], args: argparse.Namespace) -> list[str]:
    keys = ("rps", "p50_ms", "p99_ms", "upstream_cpu_us", "gateway_cpu_us", "engine_cpu_us")
    some = next(sat for _, sat in results.values() if sat["direct"])
    generator = "wrk (one thread)" if some["direct"][0]["tool"] == "wrk" else "async httpx"
    lines = [
        "### Saturation throughput and CPU per request (closed loop)",
        "",
        f"{args.concurrency} keep-alive connections ({generator} in its own process) send back to back for "
        f"{args.duration:g} s after {args.warmup:g} s of warm-up; the paths alternate; medians of {args.runs} runs. "
        "On 2 shared cores this measures how much CPU each request costs, not latency at a normal load: latency "
        "here is mostly queueing behind a saturated CPU. CPU per request is each process's user+system time over "
        "the run divided by the requests served, so it does not depend on how busy the machine is. In process mode "
        "the proxy's and the engine process's CPU are counted apart; in thread mode the proxy's column holds both.",
        "",
        "| model server | path | requests/s | vs direct | p50 (ms) | p99 (ms) | proxy CPU/request (µs) "
        "| engine process CPU/request (µs) | model server CPU/request (µs) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, (_, saturated) in results.items():
        if not saturated["direct"]:
            continue
        med = {name: {k: _median(runs, k) for k in keys} for name, runs in saturated.items()}
        d = med["direct"]
        for name, label in (("direct", "direct"), ("process", "process mode"), ("thread", "thread mode")):
            m = med[name]
            proxy = "-" if name == "direct" else f"{m['gateway_cpu_us']:,.0f}"
            engine = f"{m['engine_cpu_us']:,.0f}" if name == "process" else "-"
            lines.append(
                f"| {model} | {label} | {m['rps']:,.0f} | {m['rps'] / d['rps']:.0%} | {m['p50_ms']:.2f} "
                f"| {m['p99_ms']:.2f} | {proxy} | {engine} | {m['upstream_cpu_us']:,.0f} |"
            )
    lines.append("")
    for model, (_, saturated) in results.items():
        if saturated["direct"]:
            per_run = "; ".join(
                f"{x['rps']:,.0f} / {y['rps']:,.0f} / {z['rps']:,.0f}"
                for x, y, z in zip(saturated["direct"], saturated["process"], saturated["thread"], strict=True)
            )
            errors = sum(r["errors"] for runs in saturated.values() for r in runs)
            lines.append(
                f"Requests/s per run behind {model} (direct / process / thread): {per_run}; non-200: {errors}."
            )
    lines.append("")
    return lines


if __name__ == "__main__":
    main()
