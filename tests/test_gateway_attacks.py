"""End to end: real ART attacks run through the gateway against a real model server.

The attacker reaches the victim only through the gateway with its own API key; a benign
customer queries the same gateway in the same run. We measure what the attacker ends
with (stolen-model agreement for KnockoffNets, identification and reconstruction
similarity for MI-Face) with and without QueryWarden in front of the model.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway_upstream import LoopbackServer
from querywarden.bench import AttackRun, Victim, run_attack
from querywarden.bench.victims import load_victim
from querywarden.core.engine import Engine
from querywarden.defaults import default_detectors
from querywarden.gateway import EnginePipeline, Gateway, GatewaySettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def victim() -> Victim:
    return load_victim("digits")


@pytest.fixture(scope="module")
def model_server(victim: Victim) -> Iterator[str]:
    async def predict(request: Request) -> JSONResponse:
        rows = np.asarray((await request.json())["instances"], dtype=np.float64)
        return JSONResponse({"predictions": victim.predict_proba(rows).tolist()})

    with LoopbackServer(Starlette(routes=[Route("/predict", predict, methods=["POST"])])) as server:
        yield server.url


class Customer:
    """A benign principal querying held-out records between the attacker's requests."""

    def __init__(self, client: httpx.Client, victim: Victim) -> None:
        self.client, self.victim = client, victim
        self.sent = 0
        self.unmodified = 0
        self.statuses: Counter[int] = Counter()

    def query(self) -> None:
        row = self.victim.benign_pool[self.sent % len(self.victim.benign_pool)][None, :]
        self.sent += 1
        r = self.client.post("/predict", json={"instances": row.tolist()}, headers={"x-api-key": "customer"})
        self.statuses[r.status_code] += 1
        if r.status_code == 200 and np.array_equal(r.json()["predictions"], self.victim.predict_proba(row)):
            self.unmodified += 1


def through(
    client: httpx.Client,
    victim: Victim,
    statuses: Counter[int],
    customer: Customer | None,
    settle: Callable[[], None],
) -> Callable[[Any], Any]:
    """The victim's predict_proba as the attacker sees it through ``client``'s base URL.

    A refused request tells the attacker nothing: it gets a uniform answer and goes on.
    """

    def predict_proba(x: Any) -> np.ndarray:
        r = client.post("/predict", json={"instances": np.asarray(x).tolist()}, headers={"x-api-key": "attacker"})
        statuses[r.status_code] += 1
        if r.status_code == 200:
            statuses[0] += len(x)  # rows answered
        settle()
        if customer is not None:
            customer.query()
        if r.status_code != 200:
            return np.full((len(x), victim.n_classes), 1.0 / victim.n_classes)
        return np.asarray(r.json()["predictions"], dtype=np.float64)

    return predict_proba


def attack(
    name: str, victim: Victim, url: str, customer: Customer | None = None, settle: Callable[[], None] = lambda: None
) -> tuple[AttackRun, Counter[int]]:
    """Run the attack through ``url``. ``settle`` runs after each request: the attacker pauses
    until the engine has seen it, so when the block lands does not depend on thread timing."""
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        seen_through = dataclasses.replace(victim, predict_proba=through(client, victim, statuses, customer, settle))
        run = run_attack(name, seen_through)
    return run, statuses


@pytest.mark.parametrize(("name", "metric"), [("knockoff-ood", "agreement"), ("miface", "identified")])
def test_attack_through_the_gateway_is_blocked_and_ends_with_less(
    name: str, metric: str, victim: Victim, model_server: str
) -> None:
    unprotected, _ = attack(name, victim, model_server)

    engine = Engine({victim.profile.id: victim.profile}, detectors=default_detectors())
    settings = GatewaySettings(upstream=model_server, default_model=victim.profile.id)
    gateway = Gateway(settings, EnginePipeline.from_settings(engine, settings))
    with LoopbackServer(gateway) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
        customer = Customer(client, victim)
        protected, statuses = attack(name, victim, gw.url, customer, settle=lambda: gateway.pipeline.drain(30))

    answered = statuses.pop(0, 0)
    before = unprotected.success_at(unprotected.budget)[metric]
    after = protected.success_at(answered)[metric]  # a refused query taught the attacker nothing
    print(
        f"{name}: {metric} {before:.3f} unprotected ({unprotected.budget} queries), {after:.3f} through QueryWarden "
        f"({answered} answered); requests {dict(statuses)}; customer {dict(customer.statuses)}"
    )
    assert statuses[403] > 0, "the attacker was blocked"
    assert answered < protected.budget and after < before
    customer_key = gateway.principals.hashed("key", "customer")
    assert customer.sent == sum(statuses.values())
    assert customer.unmodified == customer.sent, (dict(customer.statuses), engine.decision_for(customer_key))
