"""Who is calling: turn a request's headers and peer address into a principal.

Sources are tried in the configured order:

- ``api_key``: the API-key header. Keys are secrets, so by default the principal is a keyed
  hash of the key (``key_<hex>``); set ``hash_api_keys: false`` when the header carries a
  key *id* rather than the key.
- ``bearer``: ``Authorization: Bearer <token>``, always hashed (``tok_<hex>``). The raw
  token never leaves this function: it is not stored, logged or put in a record.
- ``auth_header``: an identity set by a trusted auth proxy in front of the gateway. Only
  list it when such a proxy strips the header from client requests, else a caller can
  claim any identity.
- ``ip``: the peer address (``ip:<addr>``), the last resort.

The hash is BLAKE2b keyed with ``principal_salt``: stable across restarts (decisions stick)
and not reversible by someone who reads the store without the salt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from querywarden.gateway.settings import GatewaySettings


class PrincipalResolver:
    def __init__(self, settings: GatewaySettings) -> None:
        self.sources = settings.principal_sources
        self.api_key_header = settings.api_key_header.lower().encode("latin-1")
        self.auth_header = settings.auth_header.lower().encode("latin-1")
        self.hash_api_keys = settings.hash_api_keys
        self.ip_fallback = settings.on_missing_principal == "ip"
        self._key = hashlib.blake2b(settings.principal_salt.encode()).digest()[:32]

    def hashed(self, prefix: str, secret: str) -> str:
        digest = hashlib.blake2b(secret.encode(), key=self._key, digest_size=8).hexdigest()
        return f"{prefix}_{digest}"

    def resolve(self, headers: Iterable[tuple[bytes, bytes]], client_ip: str | None) -> str | None:
        """The principal, or None when no source matched (the caller refuses the request)."""
        found: dict[bytes, bytes] = {}
        wanted = (self.api_key_header, b"authorization", self.auth_header)
        for name, value in headers:
            lname = name.lower()
            if lname in wanted and lname not in found:
                found[lname] = value
        for src in self.sources:
            if src == "api_key":
                raw = found.get(self.api_key_header, b"").strip()
                if raw:
                    key = raw.decode("latin-1")
                    return self.hashed("key", key) if self.hash_api_keys else key
            elif src == "bearer":
                auth = found.get(b"authorization", b"")
                scheme, _, token = auth.partition(b" ")
                token = token.strip()
                if scheme.lower() == b"bearer" and token:
                    return self.hashed("tok", token.decode("latin-1"))
            elif src == "auth_header":
                raw = found.get(self.auth_header, b"").strip()
                if raw:
                    return raw.decode("latin-1")
            elif src == "ip" and client_ip:
                return f"ip:{client_ip}"
        if self.ip_fallback and client_ip:
            return f"ip:{client_ip}"
        return None
