"""Streaming scan and redaction give what the whole-text functions give, however the text is cut."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from querywarden.text.pii import redact, scan
from querywarden.text.stream import SseRedactor, StreamRedactor, StreamScanner

ANSWER = (
    "Sure. " * 30
    + "The customer is jane.doe@example.com, phone +44 20 7946 0958, card 4111 1111 1111 1111, "
    + "IBAN GB82 WEST 1234 5698 7654 32 and key sk-proj-abcdefghijklmnopqrstuvwxyz123456. "
    + "Anything else? " * 20
    + "Also bob@example.org."
)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % len(text) for c in cuts} - {0})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), max_size=80))
def test_chunked_scan_and_redaction_match_whole_text(cuts: list[int]) -> None:
    scanner, redactor = StreamScanner(), StreamRedactor()
    released = []
    for piece in _split(ANSWER, cuts):
        scanner.feed(piece)
        released.append(redactor.feed(piece))
    scanner.finish()
    released.append(redactor.finish())
    assert scanner.matches == scan(ANSWER)
    assert "".join(released) == redact(ANSWER)
    assert redactor.redacted == len(scan(ANSWER))


def test_redactor_releases_text_as_it_flows() -> None:
    redactor = StreamRedactor()
    out = [redactor.feed(ANSWER[i : i + 8]) for i in range(0, 400, 8)]
    assert sum(len(o) for o in out) >= 400 - 2 * redactor.tail  # held back at most the tail


def _sse(pieces: list[str]) -> bytes:
    events = [
        b"data: " + msgspec.json.encode({"choices": [{"index": 0, "delta": {"content": p}}]}) + b"\n\n" for p in pieces
    ]
    return b"".join(events) + b"data: [DONE]\n\n"


def test_sse_redactor_rewrites_deltas_across_event_and_byte_boundaries() -> None:
    pieces = [ANSWER[i : i + 5] for i in range(0, len(ANSWER), 5)]
    raw = _sse(pieces)
    sse = SseRedactor()
    out = b"".join(sse.feed(raw[i : i + 37]) for i in range(0, len(raw), 37)) + sse.finish()
    text = []
    for line in out.split(b"\n"):
        if line.startswith(b"data: {"):
            text.append(msgspec.json.decode(line[6:])["choices"][0]["delta"]["content"])
    assert "".join(text) == redact(ANSWER)
    assert out.rstrip().endswith(b"data: [DONE]")
    assert b"jane.doe@example.com" not in out and sse.redacted == 5 + 1
