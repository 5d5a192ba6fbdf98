"""The command center as a person uses it, in headless Chromium.

A real digits classifier serves on loopback; ``querywarden serve`` runs in front of it as
a subprocess with a store and a password login; the inversion sample's traffic (customers
and an MI-Face attacker, each with their own API key) goes through the gateway. Then,
in the browser: log in, see the finding, open the principal, block it; and the gateway
answers the attacker's key with 403 while customers still get answers.

The policy is shadow-only, so nothing blocks the attacker before the analyst does.
Screenshots of each page go to ``$QW_SCREENSHOTS`` (docs/screenshots/ refreshes the docs).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from e2e.traffic import SAMPLES
from gateway_upstream import LoopbackServer, free_port
from querywarden.console.settings import hash_password
from querywarden.gateway.principal import PrincipalResolver
from querywarden.gateway.settings import GatewaySettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QW = str(Path(sys.executable).with_name("querywarden"))
PASSWORD = "correct-horse-battery"

pytestmark = pytest.mark.slow


def digits_server() -> Starlette:
    """The model the inversion sample was made against: logistic regression on sklearn's digits."""
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])

    async def predict(request: Request) -> JSONResponse:
        rows = np.asarray((await request.json())["instances"], dtype=np.float64)
        return JSONResponse({"predictions": np.round(model.predict_proba(rows), 6).tolist()})

    return Starlette(routes=[Route("/v1/models/{name}:predict", predict, methods=["POST"])])


def has_intel() -> bool:
    return importlib.util.find_spec("querywarden.intel.registry") is not None


def write_config(tmp: Path) -> Path:
    """The digits model, a shadow-only policy, a password login and (with the intel module)
    an abuse-desk list naming the attacker's principal."""
    profile = tomllib.loads((SAMPLES / "inversion" / "expect.toml").read_text())["profile"]
    lines = ["[models.digits]"]
    for key in ("input_kind", "n_features", "shape", "ranges", "classes"):
        lines.append(f"{key} = {json.dumps(profile[key])}")
    lines.append(f"reference = {json.dumps(str(SAMPLES / 'inversion' / 'reference.npy'))}")
    lines += [
        "",
        "[[policy.rules]]",
        'min_severity = "medium"',
        'action = "block"',
        "shadow = true",
        "",
        "[console]",
        f'users = {{ analyst = "{hash_password(PASSWORD)}" }}',
    ]
    if has_intel():
        (tmp / "abuse-desk.txt").write_text(f"# keys seen scraping elsewhere\n{attacker_principal()}\n")
        lines += ["", "[[intel.feeds]]", 'kind = "key"', 'path = "abuse-desk.txt"', 'name = "abuse-desk"']
    path = tmp / "querywarden.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def attacker_principal() -> str:
    """The principal the gateway derives from the attacker's API key (a keyed hash)."""
    return PrincipalResolver(GatewaySettings()).hashed("key", "inverter")


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve exited")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    port, admin = free_port(), free_port()
    with LoopbackServer(digits_server()) as upstream:
        proc = subprocess.Popen(
            [
                QW,
                "serve",
                "--upstream",
                upstream.url,
                "--port",
                str(port),
                "--admin-port",
                str(admin),
                "--config",
                str(write_config(tmp_path)),
                "--db",
                f"sqlite:///{tmp_path / 'qw.db'}",
            ],
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            wait_up(f"http://127.0.0.1:{admin}/healthz", proc)
            yield {"gateway": f"http://127.0.0.1:{port}", "admin": f"http://127.0.0.1:{admin}"}
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
            assert b"Traceback" not in stderr, stderr.decode()


def predict(gateway: str, key: str, row: list[float]) -> httpx.Response:
    return httpx.post(f"{gateway}/v1/models/digits:predict", json={"instances": [row]}, headers={"x-api-key": key})


def replay_attack(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        for line in (SAMPLES / "inversion" / "positive.jsonl").read_text().splitlines():
            rec = json.loads(line)
            r = client.post(
                "/v1/models/digits:predict",
                json={"instances": [rec["input"]["features"]]},
                headers={"x-api-key": rec["principal"]},
            )
            assert r.status_code == 200, r.text


def test_log_in_see_the_finding_block_the_principal_and_the_gateway_refuses_it(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("QW_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    gateway, console = stack["gateway"], stack["admin"] + "/console"
    attacker_row = json.loads((SAMPLES / "inversion" / "positive.jsonl").read_text().splitlines()[0])["input"][
        "features"
    ]
    replay_attack(gateway)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("dialog", lambda dialog: dialog.accept())
            problems: list[str] = []  # script errors, CSP violations, missing assets
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            # 1. log in (an unauthenticated visit lands on the login form)
            page.goto(console + "/")
            expect(page.locator("input[name=password]")).to_be_visible()
            page.screenshot(path=str(shots / "login.png"))
            page.fill("input[name=user]", "analyst")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Overview")

            # 2. the replayed attack shows up as a finding (the engine works behind the gateway)
            deadline = time.monotonic() + 30
            while page.locator("text=Invert AI Model").count() == 0:
                assert time.monotonic() < deadline, "no inversion finding reached the console"
                time.sleep(0.5)
                page.reload()
            page.screenshot(path=str(shots / "overview.png"), full_page=True)
            page.click("a[href='/console/findings']")
            page.screenshot(path=str(shots / "findings.png"), full_page=True)
            page.locator("tr", has_text="Invert AI Model").locator("a[href^='/console/findings/fnd-']").first.click()
            expect(page.locator("h1")).to_contain_text("Invert AI Model")
            expect(page.locator("text=AML.T0024.001").first).to_be_visible()
            expect(page.locator("text=ML03:2023").first).to_be_visible()
            page.screenshot(path=str(shots / "finding.png"), full_page=True)
            finding_url = page.url

            # 3. open the principal and block it
            page.locator("section", has_text="Affected principals").locator(
                "a[href^='/console/principals/']"
            ).first.click()
            principal = page.locator("h1 .mono").inner_text()
            assert principal == attacker_principal(), "the gateway hashes API keys into principals"
            assert predict(gateway, "inverter", attacker_row).status_code == 200, "shadow policy: not blocked yet"
            expect(page.locator("#live-decision")).to_have_text("allow")
            expect(page.locator("#decision .act")).to_have_text("shadow:block")
            page.fill("input[name=note]", "MI-Face against digits, confirmed")
            page.click("button[value=block]")
            expect(page.locator("#decision .act")).to_have_text("block")
            expect(page.locator("#live-decision")).to_have_text("block")
            expect(page.locator("#audit")).to_contain_text("MI-Face against digits, confirmed")
            expect(page.locator("#audit")).to_contain_text("analyst")

            # 4. the gateway enforces it: 403 for the attacker's key, answers for a customer
            blocked = predict(gateway, "inverter", attacker_row)
            assert blocked.status_code == 403, blocked.text
            assert predict(gateway, "cust-25", attacker_row).status_code == 200
            page.screenshot(path=str(shots / "principal.png"), full_page=True)

            # 5. acknowledge the finding, then close it: both audited under the analyst's name
            page.goto(finding_url)
            fid = finding_url.rsplit("/", 1)[-1]
            page.locator("#triage input[name=note]").fill("attacker blocked, SOC-77")
            page.click("#triage button[value=acknowledge]")
            expect(page.locator(".flash")).to_contain_text("Finding acknowledged")
            expect(page.locator("#triage")).to_contain_text("by analyst")
            expect(page.locator("#triage")).to_contain_text("attacker blocked, SOC-77")
            page.locator("#triage input[name=note]").fill("done: key revoked")
            page.click("#triage button[value=close]")
            expect(page.locator(".flash")).to_contain_text("Finding closed")
            expect(page.locator("#triage button")).to_have_count(0)
            page.goto(console + "/findings?status=active")
            expect(page.locator(f"a[href='/console/findings/{fid}']")).to_have_count(0)
            page.goto(console + "/audit?log=operator")
            expect(page.locator("tr.event-close")).to_contain_text("done: key revoked")
            expect(page.locator("tr.event-acknowledge")).to_contain_text("analyst")
            expect(page.locator("tr.event-login").first).to_contain_text("127.0.0.1")
            assert predict(gateway, "inverter", attacker_row).status_code == 403, "closing a finding lifts no block"

            if has_intel():
                page.goto(console + "/principals/" + principal)
                expect(page.locator("#intel")).to_contain_text("abuse-desk")
            for name, path in (("models", "/models"), ("actors", "/actors"), ("audit", "/audit"), ("intel", "/intel")):
                page.goto(console + path)
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            if has_intel():
                expect(page.locator("#feeds")).to_contain_text("abuse-desk")
                expect(page.locator("#matches")).to_contain_text(principal)
            assert problems == [], problems
        finally:
            browser.close()
