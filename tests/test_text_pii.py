"""PII and secret patterns: checksums decide, shapes alone do not."""

from __future__ import annotations

import pytest

from querywarden.text.pii import iban_ok, luhn_ok, redact, scan


def test_checksums_accept_real_identifiers_and_reject_one_digit_off() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32")
    assert iban_ok("DE89370400440532013000")
    assert not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert not iban_ok("GB82")


def test_scan_finds_each_kind_with_its_span() -> None:
    text = (
        "Mail jane.doe@example.com, call +44 20 7946 0958 or (415) 555-2671, card 4111-1111-1111-1111, "
        "IBAN DE89 3704 0044 0532 0130 00, key AKIAIOSFODNN7EXAMPLE and -----BEGIN RSA PRIVATE KEY-----"
    )
    found = scan(text)
    kinds = [m.kind for m in found]
    assert kinds == ["email", "phone", "phone", "card", "iban", "api_key", "private_key"]
    for m in found:
        assert text[m.start : m.end] == m.value


def test_lookalikes_are_not_pii() -> None:
    text = (
        "Order 1234567890123 shipped on 2026-03-02; total 1,234.50 EUR; ref GB82 WEST 1234 5698 7654 33; "
        "card 4111 1111 1111 1112; version 3.14.159; the sk- prefix alone"
    )
    assert scan(text) == []


def test_redact_replaces_matches_and_keeps_the_rest() -> None:
    text = "Write to bob@example.org about card 5555 5555 5555 4444 today."
    assert redact(text) == "Write to [REDACTED:email] about card [REDACTED:card] today."
    assert redact("nothing here") == "nothing here"


@pytest.mark.parametrize("text", ["call 02074960681 now", "phone (0113) 496 0344", "(01632) 960391", "(029)2018374"])
def test_national_phone_numbers_with_a_trunk_zero_are_found(text: str) -> None:
    assert [m.kind for m in scan(text)] == ["phone"]
