"""The response policy: which decision a finding earns.

A policy is an ordered list of rules, the first match wins. With no rules configured the
default applies: ``medium`` hardens the principal's outputs and ``high`` blocks it.
Loading a policy file (with located errors) happens at the edge, in ``querywarden.config``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import msgspec

from querywarden.core.records import Action, Finding, Severity

DEFAULT_HARDEN: dict[str, Any] = {"round": 1, "top_k": 1}
"""Default hardening for classifiers: top-1 class, its probability rounded to one decimal.
For LLM endpoints the gateway maps harden to: strip logprobs and drop logit_bias."""

DEFAULT_THROTTLE: dict[str, Any] = {"rate": 0.2, "burst": 5}
"""Requests per second and bucket size for a throttled principal or actor."""


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    min_severity: Severity
    action: Action
    params: dict[str, Any] = {}
    techniques: tuple[str, ...] = ()
    """Only findings with one of these ATLAS ids match; empty means any."""
    principals: tuple[str, ...] = ()
    """Glob patterns (``svc-monitor-*``); a finding matches only when every principal it
    names matches one of them, so an exception for known keys never covers an actor that
    also holds an unknown key. Empty means any principal."""
    shadow: bool = False

    def matches(self, finding: Finding) -> bool:
        if finding.severity < self.min_severity:
            return False
        if self.techniques and finding.technique["id"] not in self.techniques:
            return False
        return not self.principals or all(
            any(fnmatchcase(p, pattern) for pattern in self.principals) for p in finding.principals
        )


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    rules: tuple[Rule, ...]

    def decide(self, finding: Finding) -> Rule | None:
        """The first rule the finding matches, or None (alert only)."""
        for rule in self.rules:
            if rule.matches(finding):
                return rule
        return None


DEFAULT_POLICY = Policy(
    rules=(
        Rule(min_severity=Severity.HIGH, action=Action.BLOCK),
        Rule(min_severity=Severity.MEDIUM, action=Action.HARDEN, params=DEFAULT_HARDEN),
    )
)
