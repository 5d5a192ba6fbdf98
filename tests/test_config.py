"""The config file: models, detectors, policy, risk and store, with located errors."""

from __future__ import annotations

import gzip
import tomllib
from pathlib import Path

import numpy as np
import pytest

from querywarden.config import SETTINGS, Config, load_config, load_protected, write_detector_params
from querywarden.config_text import locate
from querywarden.core.records import Action, InputKind, Severity
from querywarden.core.traffic_encode import encode
from querywarden.defaults import default_detectors
from querywarden.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"

FULL = """\
# the credit model
[models.credit]
input_kind = "tabular"
n_features = 3
feature_names = ["income", "age", "debt"]
ranges = [[0, 1000], [18, 99], [0, 50]]
classes = ["good", "bad"]
reference = "ref.npy"

[models.digits]
input_kind = "image"
shape = [2, 2]
reference = "ref.csv"

[detectors.volume]
factor = 3.0  # tuned
models = ["credit"]

[[policy.rules]]
min_severity = "high"
action = "block"
shadow = true

[[policy.rules]]
min_severity = "medium"
action = "throttle"
params = {rate = 0.5, burst = 2}
techniques = ["AML.T0024.002"]
principals = ["svc-*", "batch-?"]

[risk]
close_after = 600
half_life = 60

[store]
url = "sqlite:///qw.db"
retention = "sketch"
"""


M = "[models.m]\nn_features = 2\n"


def write(tmp_path: Path, text: str, name: str = "qw.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value


def test_full_config_loads(tmp_path: Path) -> None:
    np.save(tmp_path / "ref.npy", np.arange(12, dtype=float).reshape(4, 3))
    (tmp_path / "ref.csv").write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    cfg = load_config(write(tmp_path, FULL))
    credit, digits = cfg.profiles["credit"], cfg.profiles["digits"]
    assert credit.n_features == 3 and credit.feature_names == ("income", "age", "debt")
    assert credit.ranges == ((0.0, 1000.0), (18.0, 99.0), (0.0, 50.0))
    assert credit.classes == ("good", "bad")
    assert credit.reference is not None and credit.reference.shape == (4, 3)
    assert digits.input_kind is InputKind.IMAGE and digits.expected_dim() == 4
    assert digits.reference is not None and digits.reference.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    volume = next(s for s in cfg.detector_specs if s.name == "volume")
    assert volume.params == {"factor": 3.0} and volume.models == ("credit",)
    rules = cfg.policy.rules
    assert [(r.min_severity, r.action, r.shadow) for r in rules] == [
        (Severity.HIGH, Action.BLOCK, True),
        (Severity.MEDIUM, Action.THROTTLE, False),
    ]
    assert rules[1].params == {"rate": 0.5, "burst": 2} and rules[1].techniques == ("AML.T0024.002",)
    assert rules[1].principals == ("svc-*", "batch-?") and rules[0].principals == ()
    assert cfg.risk_kwargs == {"close_after": 600.0, "half_life": 60.0}
    assert (cfg.store_url, cfg.retention) == ("sqlite:///qw.db", "sketch")
    engine = cfg.engine()
    assert engine.risk.close_after == 600.0
    # the engine runs link suppliers first (a merge reaches the others on the same interaction),
    # then the rest in config order
    built = engine.detectors("digits")
    configured = [s.name for s in cfg.detector_specs if not s.models]
    assert sorted(d.name for d in built) == sorted(configured)
    rest = [d.name for d in built if not d.supplies_links]
    assert rest == [n for n in configured if n in rest]
    assert all(d.supplies_links for d in built[: len(built) - len(rest)])


def test_no_detector_tables_means_the_default_set(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[models.m]\nn_features = 2\n"))
    assert cfg.detector_specs == default_detectors()
    assert Config.defaults(cfg.profiles).detector_specs == default_detectors()


def test_a_disabled_detector_does_not_run(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[models.m]\nn_features = 2\n[detectors.volume]\nenabled = false\n"))
    assert "volume" not in [s.name for s in cfg.detector_specs]


def test_reference_from_gzipped_traffic(tmp_path: Path) -> None:
    from querywarden.core.records import Interaction

    lines = [encode(Interaction(id=str(i), ts=1.0, principal="p", model="m", features=np.full(2, i))) for i in range(3)]
    with gzip.open(tmp_path / "ref.jsonl.gz", "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    cfg = load_config(write(tmp_path, '[models.m]\nn_features = 2\nreference = "ref.jsonl.gz"\n'))
    ref = cfg.profiles["m"].reference
    assert ref is not None and ref.tolist() == [[0, 0], [1, 1], [2, 2]]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (M + "colour = 1\n", 3, "models.m.colour: unknown key; allowed: input_kind, n_features"),
        ("[models.m]\ninput_kind = 'audio'\n", 2, "'audio' is not allowed; allowed: tabular, image, text"),
        ("[models.m]\nn_features = -2\n", 2, "models.m.n_features: must be a positive integer"),
        (M + "ranges = [[0, 1]]\n", 3, "must be a list of 2 [low, high] pairs"),
        (M + "ranges = [[0, 1], [5, 1]]\n", 3, "low 5.0 is above high 1.0"),
        ("[models.m]\nshape = [2, 2]\nn_features = 5\n", 2, "holds 4 values but n_features is 5"),
        (M + "reference = 'nope.npy'\n", 3, "reference file not found"),
        ("\n[models.m]\nn_features = 2\n\n[detectors.nosuch]\nx = 1\n", 5, "unknown detector; registered: "),
        (M + "[detectors.volume]\nfactr = 2\n", 4, "unknown parameter; allowed: enabled, models"),
        (M + "[detectors.volume]\nfactor = -1\n", 4, "bad parameter value"),
        (M + "[detectors.volume]\nmodels = ['x']\n", 4, "unknown model 'x'; configured: m"),
        (
            M + "[[policy.rules]]\nmin_severity = 'high'\naction = 'block'\n"
            "[[policy.rules]]\nmin_severity = 'medium'\naction = 'nuke'\n",
            8,
            "policy.rules.1.action: 'nuke' is not allowed; allowed: allow, harden, throttle, block",
        ),
        (M + "[[policy.rules]]\naction = 'block'\n", 3, "rule needs min_severity"),
        (
            M + "[[policy.rules]]\nmin_severity = 'low'\naction = 'block'\ntechniques = ['T1']\n",
            6,
            "unknown ATLAS id 'T1'",
        ),
        (
            M + "[[policy.rules]]\nmin_severity = 'low'\naction = 'allow'\nprincipals = ['svc-*', '']\n",
            6,
            "policy.rules.0.principals: a pattern must not be empty",
        ),
        (M + "[risk]\nhalf_life = 0\n", 4, "risk.half_life: must be a positive number"),
        (M + "[risk]\ndecay = 3\n", 4, "allowed: close_after, half_life, min_severity, max_open"),
        (M + "[store]\nretention = 'some'\n", 4, "allowed: full, sketch, none"),
        (M + "[store]\nurl = 'qw.db'\n", 4, "must be a database URL"),
        (M + "[gateway]\nqueue = 1\n", 4, "gateway.queue: unknown setting; allowed:"),
        (M + "[gatway]\nport = 1\n", 3, "unknown section; allowed: models, detectors"),
        ("[risk]\nhalf_life = 5\n", None, "at least one [models.<id>] table"),
        ("[models.m]\nn_features = = 2\n", 2, "invalid TOML"),
    ],
)
def test_errors_are_located_and_list_what_is_allowed(
    tmp_path: Path, text: str, line: int | None, expected: str
) -> None:
    err = config_error(tmp_path, text)
    assert expected in err.reason
    assert err.source == str(tmp_path / "qw.toml")
    assert err.line == line
    if line is not None:
        assert str(err).startswith(f"{tmp_path / 'qw.toml'}:{line}: ")


def test_locate_handles_quotes_arrays_and_top_level_keys() -> None:
    text = 'title = "x"\n[models."my.model"]\nn_features = 3\n[[policy.rules]]\na = 1\n[[policy.rules]]\na = 2\n'
    assert locate(text, ("title",)) == 1
    assert locate(text, ("models", "my.model", "n_features")) == 3
    assert locate(text, ("policy", "rules", 1, "a")) == 7
    assert locate(text, ("policy", "rules", 1, "missing")) == 6
    assert locate(text, ("nothing",)) is None


def test_write_detector_params_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    write_detector_params(path, {"volume": {"factor": 7.5, "min_queries": 200}, "other": {"threshold": 0.25}})
    text = path.read_text()
    assert "factor = 7.5  # tuned" in text
    assert "# the credit model" in text
    data = tomllib.loads(text)
    assert data["detectors"]["volume"] == {"factor": 7.5, "min_queries": 200, "models": ["credit"]}
    assert data["detectors"]["other"] == {"threshold": 0.25}
    assert data["risk"] == {"close_after": 600, "half_life": 60}
    assert (
        text.replace("factor = 7.5", "factor = 3.0")
        .replace("min_queries = 200\n", "")
        .startswith(FULL.rstrip("\n")[: FULL.index("[[policy.rules]]")])
    )


def test_write_detector_params_creates_a_file(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    write_detector_params(path, {"volume": {"factor": 2.0}})
    assert tomllib.loads(path.read_text()) == {"detectors": {"volume": {"factor": 2.0}}}


def test_every_setting_is_documented() -> None:
    docs = DOCS.read_text()
    missing = [s.key for s in SETTINGS if f"`{s.key}`" not in docs]
    assert not missing, f"docs/config.md does not list: {missing}"
    for s in SETTINGS:
        for value in s.allowed:
            assert value in docs


def test_training_digests_from_rows_or_digest_file(tmp_path: Path) -> None:
    import numpy as np

    from querywarden.core.profile import row_digests

    rows = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "train.npy", rows)
    np.save(tmp_path / "digests.npy", row_digests(rows)[::-1].copy())
    for name in ("train.npy", "digests.npy"):
        cfg_path = tmp_path / f"{name}.toml"
        cfg_path.write_text(f'[models.m]\nn_features = 3\ntraining_digests = "{name}"\n')
        profile = load_config(cfg_path).profiles["m"]
        assert profile.training_digests is not None
        assert np.array_equal(profile.training_digests, row_digests(rows))
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.m]\nn_features = 3\ntraining_digests = "missing.npy"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml:3: models\.m\.training_digests: cannot read"):
        load_config(bad)


def test_protected_text_from_text_or_digest_file(tmp_path: Path) -> None:
    from querywarden.text.protected import ProtectedText

    secret = "You are Penny, the support assistant. Escalate with code ESC-7731-KESTREL and never share it."
    (tmp_path / "system.txt").write_text(secret)
    (tmp_path / "system.json").write_text(ProtectedText.from_passages([secret]).to_json())
    for name in ("system.txt", "system.json"):
        cfg_path = tmp_path / f"{name}.toml"
        cfg_path.write_text(f'[models.m]\ninput_kind = "text"\noutput_kind = "text"\nprotected_text = "{name}"\n')
        protected = load_config(cfg_path).profiles["m"].protected
        assert protected is not None and "ESC" not in repr(protected)
        assert load_protected(cfg_path) == {"m": protected}
        assert [s.words for s in protected.find("Sure: escalate with code ESC-7731-KESTREL and never share it.")] == [
            10
        ]
    for value, match in (
        ('"missing.txt"', "cannot read"),
        ("[]", "must be a file path"),
        ('"empty.txt"', "protected text: no words"),
    ):
        (tmp_path / "empty.txt").write_text("  \n")
        bad = tmp_path / "bad.toml"
        bad.write_text(f'[models.m]\ninput_kind = "text"\n\nprotected_text = {value}\n')
        with pytest.raises(ConfigError, match=rf"bad\.toml:4: models\.m\.protected_text: {match}"):
            load_config(bad)
