"""Console and REST API settings: the ``[console]`` table of the config file.

Credentials live here and nowhere else. Passwords are stored as scrypt hashes (made by
``querywarden console --hash-password``) and API tokens as SHA-256 digests, so a leaked
config file does not hand out a login. There are no default credentials: with none
configured, ``auth.Auth`` mints a random token for the running process only.

    [console]
    users = { alice = "scrypt$16384$8$1$<salt hex>$<hash hex>" }
    token_sha256 = ["<sha256 hex of a long random token>"]
    secret_key = "<random string; keeps sessions valid across restarts>"
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from querywarden.config_text import locate
from querywarden.errors import ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 16384, 8, 1
"""scrypt cost: about 16 MiB and some tens of milliseconds per login attempt."""


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """Who may log in and how sessions behave. ``HELP`` documents each key."""

    users: dict[str, str] = field(default_factory=dict)
    token_sha256: tuple[str, ...] = ()
    secret_key: str | None = None
    session_max_age: int = 8 * 3600
    secure_cookies: bool = True
    max_login_failures: int = 10

    @property
    def has_credentials(self) -> bool:
        return bool(self.users or self.token_sha256)


HELP: dict[str, str] = {
    "users": "Map of user name to scrypt password hash (querywarden console --hash-password prints one).",
    "token_sha256": "SHA-256 hex digests of API tokens accepted as 'Authorization: Bearer <token>' or at login.",
    "secret_key": "Key that signs session cookies; unset draws a random key per process (logins end on restart).",
    "session_max_age": "Seconds a login session stays valid.",
    "secure_cookies": "Mark the session cookie Secure (browsers still send it to http://127.0.0.1 and localhost).",
    "max_login_failures": "Failed logins per client address per 15 minutes before logins from it are refused.",
}


def load_console_settings(path: str | Path | None) -> ConsoleSettings:
    """The ``[console]`` table of ``path`` (absent file or table: no credentials)."""
    if path is None:
        return ConsoleSettings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        table = tomllib.loads(text).get("console", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", source=str(p)) from None
    try:
        return settings_from_dict(table)
    except ConfigError as exc:
        key = exc.reason.split(":", 1)[0].removeprefix("console.").split(".")[0]
        raise ConfigError(exc.reason, source=str(p), line=locate(text, ("console", key))) from None


def settings_from_dict(table: Any) -> ConsoleSettings:
    """Check every key and value of a ``[console]`` table; errors name the key and what it allows."""
    if not isinstance(table, dict):
        raise ConfigError("console: must be a table")
    known = {f.name for f in fields(ConsoleSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"console.{key}: unknown setting; allowed: {', '.join(sorted(known))}")
        values[key] = _check(key, value)
    return ConsoleSettings(**values)


def _check(key: str, value: Any) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"console.{key}: expected {expected}")

    if key == "users":
        if not isinstance(value, dict):
            raise bad("a table of user = scrypt hash")
        for user, hashed in value.items():
            if not isinstance(hashed, str) or not _is_scrypt(hashed):
                raise ConfigError(
                    f"console.users.{user}: expected a scrypt hash from querywarden console --hash-password"
                )
        return dict(value)
    if key == "token_sha256":
        if not isinstance(value, list) or any(not _is_sha256(v) for v in value):
            raise bad("a list of 64-character SHA-256 hex digests")
        return tuple(v.lower() for v in value)
    if key == "secret_key":
        if not isinstance(value, str) or len(value) < 16:
            raise bad("a string of at least 16 characters")
        return value
    if key == "secure_cookies":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise bad("a positive integer")
    return value


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def _is_scrypt(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(p.isdigit() for p in parts[1:4])


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash``, the form ``users`` takes."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, hashed: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` string."""
    try:
        _, n, r, p, salt, digest = hashed.split("$")
        expected = bytes.fromhex(digest)
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
