"""docs/exports.md and docs/intel.md hold what they promise: the receiver's verification
snippet verifies our signatures, and every kind, key and metric is described."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from querywarden.config import SETTINGS
from querywarden.exports.settings import KIND_KEYS
from querywarden.exports.webhook import sign
from querywarden.intel.registry import KIND_KEYS as FEED_KINDS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_documented_verification_snippet_accepts_ours_and_refuses_forgeries() -> None:
    text = (DOCS / "exports.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)  # the reader's code, as written in the docs
    verify = scope["verify"]
    body = b'{"findings": [{"finding_id": "fnd-1"}]}'
    header = sign(b"secret", body, int(time.time()))
    assert verify(b"secret", body, header)
    assert not verify(b"secret", body + b" ", header)
    assert not verify(b"secret", body, sign(b"secret", body, int(time.time()) - 3600))


def test_every_kind_and_metric_is_documented() -> None:
    exports = (DOCS / "exports.md").read_text()
    for kind in KIND_KEYS:
        assert f"`{kind}`" in exports
    for metric in (
        "querywarden_export_findings_total",
        "querywarden_export_retries_total",
        "querywarden_export_queue_depth",
    ):
        assert metric in exports
    intel = (DOCS / "intel.md").read_text()
    for kind in FEED_KINDS:
        assert f"`{kind}`" in intel
    for s in SETTINGS:
        if s.section == "intel.feeds":
            assert f"`{s.name}`" in intel, s.key
    for term in ("x-querywarden-fingerprint", "qw-row-v1", "qw-text-v1", "ipv4-addr", "user-account", "sighting"):
        assert term in intel
