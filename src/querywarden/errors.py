"""One root error for the project; every error says where it happened.

A location is a file name with an optional line (and, for config files, the key path).
Messages read ``file:line: reason`` so editors and terminals can jump to them.
"""

from __future__ import annotations


class QueryWardenError(Exception):
    """Root of every error QueryWarden raises on purpose."""

    def __init__(self, reason: str, *, source: str | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        super().__init__(self.located())

    def located(self) -> str:
        if self.source is None:
            return self.reason
        if self.line is None:
            return f"{self.source}: {self.reason}"
        return f"{self.source}:{self.line}: {self.reason}"


class TrafficError(QueryWardenError):
    """A traffic record (one JSON line, or one HTTP body) is malformed."""


class ConfigError(QueryWardenError):
    """A config or model-profile file is malformed or names something unknown."""


class PolicyError(QueryWardenError):
    """A response-policy file is malformed."""


class DetectorError(QueryWardenError):
    """A detector was configured wrongly or its snapshot cannot be restored."""


class StoreError(QueryWardenError):
    """The store cannot be opened, migrated or written."""


class ExportError(QueryWardenError):
    """An export (SIEM, webhook) is configured wrongly or its receiver refused a delivery."""


class IntelError(QueryWardenError):
    """A threat-intelligence feed cannot be read or holds a malformed indicator."""
