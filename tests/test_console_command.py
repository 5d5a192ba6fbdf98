"""``querywarden console`` as a user runs it: a real process over a store, printing its token."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from e2e.traffic import copied_store
from gateway_upstream import free_port
from querywarden.console.settings import verify_password

QW = str(Path(sys.executable).with_name("querywarden"))


def test_console_serves_the_store_and_prints_a_one_time_token(tmp_path: Path) -> None:
    copied_store(tmp_path).close()
    port = free_port()
    proc = subprocess.Popen(
        [QW, "console", "--db", f"sqlite:///{tmp_path / 'qw.db'}", "--port", str(port)],
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stderr is not None
        token = None
        deadline = time.monotonic() + 30
        while token is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            found = re.search(r"token for this run: (\S+)", line)
            token = found.group(1) if found else None
        assert token, "the one-time token is printed"
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                r = httpx.get(f"{base}/api/stats", headers={"authorization": f"Bearer {token}"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["interactions"] == 1474
        assert httpx.get(f"{base}/api/stats").status_code == 401
        assert httpx.get(f"{base}/").headers.get("location") == "/console/"
        assert httpx.get(f"{base}/api/whoami", headers={"authorization": f"Bearer {token}"}).json()["live"] is False
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert b"Traceback" not in err, err.decode()


def test_console_usage_errors_exit_2_and_hash_password_prints_a_hash(tmp_path: Path) -> None:
    missing = subprocess.run([QW, "console"], capture_output=True, timeout=30)
    assert missing.returncode == 2 and b"--db URL is required" in missing.stderr
    bad = tmp_path / "qw.toml"
    bad.write_text('[models.m]\nn_features = 2\n\n[console]\nusers = { bob = "plain" }\n')
    located = subprocess.run(
        [QW, "console", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--config", str(bad)], capture_output=True, timeout=30
    )
    assert located.returncode == 2 and f"{bad}:5:".encode() in located.stderr, located.stderr
    hashed = subprocess.run(
        [QW, "console", "--hash-password"], input=b"pw-123\npw-123\n", capture_output=True, timeout=30
    )
    assert hashed.returncode == 0
    assert verify_password("pw-123", hashed.stdout.decode().strip())
