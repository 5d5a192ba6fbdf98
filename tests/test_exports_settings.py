"""``[[exports]]`` in the config file: a working dispatcher, or an error at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from exports_receivers import UdpListener, make_finding, wait_for
from querywarden.config import load_config
from querywarden.errors import ConfigError
from querywarden.exports.ocsf_http import OcsfFileExporter
from querywarden.exports.settings import load_dispatcher
from querywarden.exports.splunk import SplunkHecExporter
from querywarden.exports.syslog import SyslogExporter
from querywarden.exports.webhook import WebhookExporter

MODELS = "[models.credit]\nn_features = 3\n\n"


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "querywarden.toml"
    p.write_text(MODELS + body)
    return p


def test_every_kind_builds_and_the_main_config_accepts_the_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[[exports]]
kind = "cef"
host = "127.0.0.1"
transport = "tcp"
min_severity = "medium"

[[exports]]
kind = "webhook"
url = "https://hooks.example.net/qw"
secret_env = "QW_HOOK"

[[exports]]
kind = "splunk"
url = "https://splunk.example.net:8088"
token = "abc"
index = "security"

[[exports]]
kind = "ocsf"
name = "lake"
path = "ocsf.jsonl"
""",
    )
    load_config(path)  # the main loader knows the section
    d = load_dispatcher(path, env={"QW_HOOK": "from-env"})
    exporters = d.exporters()
    assert set(exporters) == {"cef", "webhook", "splunk", "lake"}
    cef = exporters["cef"]
    assert isinstance(cef, SyslogExporter) and cef.sender.transport == "tcp" and cef.sender.port == 514
    tls = load_dispatcher(write(tmp_path, '[[exports]]\nkind = "cef"\nhost = "h"\ntransport = "tls"\n'))
    sender = next(iter(tls.exporters().values())).sender  # type: ignore[attr-defined]
    assert sender.port == 6514  # RFC 5425's port
    tls.close()
    hook = exporters["webhook"]
    assert isinstance(hook, WebhookExporter) and hook.secret == b"from-env"
    hec = exporters["splunk"]
    assert (
        isinstance(hec, SplunkHecExporter)
        and hec.endpoint == "https://splunk.example.net:8088/services/collector/event"
    )
    lake = exporters["lake"]
    assert isinstance(lake, OcsfFileExporter) and lake.path == tmp_path / "ocsf.jsonl"
    d.close()


def test_no_exports_is_an_empty_dispatcher(tmp_path: Path) -> None:
    assert not load_dispatcher(write(tmp_path, ""))
    assert not load_dispatcher(None)


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ('[[exports]]\nkind = "kafka"\n', 5, "'kafka' is not allowed; allowed: cef, webhook, splunk, ocsf"),
        ('[[exports]]\nkind = "cef"\nhost = "h"\nurl = "http://x"\n', 7, "unknown key for a cef export"),
        ('[[exports]]\nkind = "cef"\n', 4, "a cef export needs host"),
        (
            '[[exports]]\nkind = "cef"\nhost = "h"\nport = 70000\n',
            7,
            "exports[0].port: must be an integer from 1 to 65535",
        ),
        ('[[exports]]\nkind = "webhook"\nurl = "http://x"\n', 4, "needs secret or secret_env"),
        ('[[exports]]\nkind = "webhook"\nurl = "http://x"\nsecret_env = "NOPE_UNSET"\n', 7, "NOPE_UNSET is not set"),
        ('[[exports]]\nkind = "splunk"\nurl = "ftp://x"\ntoken = "t"\n', 6, "must be an http:// or https:// URL"),
        ('[[exports]]\nkind = "ocsf"\n', 4, "needs either url (HTTP) or path"),
        (
            '[[exports]]\nkind = "ocsf"\npath = "a"\n\n[[exports]]\nkind = "ocsf"\npath = "b"\n',
            8,
            "already named 'ocsf'",
        ),
        ('[[exports]]\nkind = "cef"\nhost = "h"\nmin_severity = "severe"\n', 7, "allowed: info, low, medium"),
        ('[[exports]]\nkind = "cef"\nhost = "h"\nca_file = "ca.pem"\n', 7, 'applies to transport = "tls" only'),
        ('[[exports]]\nkind = "cef"\nhost = "h"\ntransport = "tls"\nca_file = "ca.pem"\n', 8, "ca.pem is not a file"),
    ],
)
def test_mistakes_are_located(tmp_path: Path, body: str, line: int, fragment: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_dispatcher(path, env={})
    assert info.value.line == line, info.value.located()
    assert fragment in info.value.reason
    assert str(path) in info.value.located()


def test_configured_cef_export_reaches_a_udp_receiver(tmp_path: Path) -> None:
    udp = UdpListener()
    path = write(tmp_path, f'[[exports]]\nkind = "cef"\nhost = "127.0.0.1"\nport = {udp.port}\n')
    d = load_dispatcher(path)
    d.start()
    d.submit([make_finding()])
    assert wait_for(lambda: len(udp.datagrams) == 1)
    assert b"CEF:0|QueryWarden|QueryWarden|" in udp.datagrams[0]
    d.close()
    udp.close()
