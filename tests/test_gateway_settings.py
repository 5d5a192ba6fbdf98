"""Gateway settings, routing, token buckets and principals as units; and the docs list every setting."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from querywarden.errors import ConfigError, PolicyError
from querywarden.gateway.adapters import Router
from querywarden.gateway.enforcement.throttle import ThrottleSpec, TokenBuckets
from querywarden.gateway.principal import PrincipalResolver
from querywarden.gateway.settings import HELP, GatewaySettings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gateway.md"


def test_every_setting_has_help_and_a_row_in_the_docs() -> None:
    names = [f.name for f in fields(GatewaySettings)]
    assert sorted(HELP) == sorted(names)
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), re.M))
    assert set(names) <= documented, f"undocumented: {sorted(set(names) - documented)}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"read_timout": 1}, "gateway.read_timout: unknown setting; allowed:"),
        ({"read_timeout": 0}, "expected a positive number"),
        ({"queue_size": -1}, "non-negative integer"),
        ({"hash_api_keys": "yes"}, "true or false"),
        ({"principal_sources": ["cookie"]}, "api_key, bearer, auth_header, ip"),
        ({"generic_paths": ["predict"]}, "starting with '/'"),
        ({"models": {"a": 1}}, "mapping of upstream model name"),
    ],
)
def test_bad_settings_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        GatewaySettings.from_dict(data, source="qw.toml")
    assert caught.value.source == "qw.toml"


def test_settings_are_frozen_and_lists_become_tuples() -> None:
    s = GatewaySettings.from_dict({"principal_sources": ["ip"], "read_timeout": 3})
    assert s.principal_sources == ("ip",) and s.read_timeout == 3.0
    with pytest.raises(AttributeError):
        s.read_timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("method", "path", "adapter", "model"),
    [
        ("POST", "/predict", "predict", None),
        ("POST", "/score", "predict", None),
        ("POST", "/v2/models/credit/infer", "kserve_v2", "credit"),
        ("POST", "/v2/models/credit/versions/3/infer", "kserve_v2", "credit"),
        ("POST", "/v1/models/credit:predict", "tf_v1", "credit"),
        ("POST", "/v1/models/credit/versions/2:predict", "tf_v1", "credit"),
        ("POST", "/v1/chat/completions", "openai_chat", None),
        ("POST", "/v1/completions", "openai_completions", None),
        ("GET", "/predict", None, None),
        ("POST", "/v2/models/credit/ready", None, None),
        ("POST", "/v1/models/credit:explain", None, None),
        ("POST", "/other", None, None),
    ],
)
def test_router(method: str, path: str, adapter: str | None, model: str | None) -> None:
    route = Router(("/predict", "/score")).match(method, path)
    if adapter is None:
        assert route is None
    else:
        assert route is not None and route.adapter.name == adapter and route.model == model


def test_token_bucket_refills_at_its_rate() -> None:
    buckets = TokenBuckets()
    spec = ThrottleSpec.parse({"rate": 2.0, "burst": 3})
    assert [buckets.take("p", spec, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("p", spec, 0.0) == pytest.approx(0.5)
    assert buckets.take("p", spec, 0.5) == 0.0  # one token came back
    assert buckets.take("p", spec, 0.5) == pytest.approx(0.5)
    assert buckets.take("other", spec, 0.5) == 0.0


def test_token_buckets_are_capped() -> None:
    buckets = TokenBuckets(max_keys=100)
    spec = ThrottleSpec.parse({"rate": 0.001, "burst": 1})
    for i in range(1000):
        buckets.take(f"p{i}", spec, 0.0)
    assert len(buckets) == 100


def test_throttle_params_are_checked() -> None:
    with pytest.raises(PolicyError, match="allowed: rate, burst"):
        ThrottleSpec.parse({"rps": 1})
    with pytest.raises(PolicyError, match="rate must be a positive number"):
        ThrottleSpec.parse({"rate": 0})


def test_principal_source_order_and_fallbacks() -> None:
    both = [(b"x-api-key", b"k1"), (b"authorization", b"Bearer t1")]
    api_first = PrincipalResolver(GatewaySettings(principal_sources=("api_key", "bearer")))
    bearer_first = PrincipalResolver(GatewaySettings(principal_sources=("bearer", "api_key")))
    assert api_first.resolve(both, "10.0.0.1").startswith("key_")
    assert bearer_first.resolve(both, "10.0.0.1").startswith("tok_")
    assert bearer_first.resolve([(b"authorization", b"Basic abc")], "10.0.0.1") == "ip:10.0.0.1"
    refuse = PrincipalResolver(GatewaySettings(principal_sources=("api_key",), on_missing_principal="refuse"))
    assert refuse.resolve([(b"x-api-key", b"  ")], "10.0.0.1") is None
