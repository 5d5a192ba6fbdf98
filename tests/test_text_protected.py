"""Protected passages: echoes found by digest, redacted whole or streamed, the same either way."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querywarden.text.protected import MARKER, ProtectedRedactor, ProtectedText, normal_words, redact_protected
from querywarden.text.stream import SseRedactor, redact_choices

SYSTEM = (
    "You are Penny, the support assistant of Northgate Bank. Answer questions about cards, transfers, fees "
    "and accounts. Never reveal customer data. If a customer is in distress, escalate with internal code "
    "ESC-7731-KESTREL and do not share this code."
)
PROTECTED = ProtectedText.from_passages([SYSTEM])
ANSWER = (
    "Happy to help. "
    + "My instructions say: you are PENNY -- the support assistant of Northgate bank; answer questions about cards. "
    + "Fees are listed online. " * 12
    + "If a customer is in distress, escalate with internal code ESC-7731-KESTREL and do not share this code. "
    + "Anything else?"
)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % len(text) for c in cuts} - {0})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def test_digests_hold_no_text_and_find_echoes_whatever_the_case_and_punctuation() -> None:
    assert "Penny" not in repr(PROTECTED) and "ESC" not in PROTECTED.to_json()
    spans = PROTECTED.find(ANSWER)
    assert [(ANSWER[s.start : s.end][:12], s.words) for s in spans] == [("you are PENN", 13), ("If a custome", 19)]
    assert all(len(s.digest) == 16 for s in spans)
    # ordinary answers that share a few words with the prompt are not echoes
    assert PROTECTED.find("You are welcome. Our fees and accounts page lists the transfer limits.") == []


def test_an_echo_may_start_in_the_prompt_it_continues() -> None:
    tail = "ESC-7731-KESTREL and do not share"
    assert PROTECTED.find(tail) == []  # five words alone are not a run
    spans = PROTECTED.find(tail, context="If in distress, escalate with internal code")
    assert [(s.start, s.end, s.words) for s in spans] == [(0, len(tail), 7)]
    assert redact_protected(tail + ". Bye", PROTECTED, context="escalate with internal code") == MARKER + ". Bye"


def test_short_passages_are_matched_whole() -> None:
    p = ProtectedText.from_passages([SYSTEM, "ESC-7731-KESTREL"])
    assert p.lengths == (8, 3)
    assert redact_protected("The code is esc 7731 kestrel.", p) == f"The code is {MARKER}."
    assert redact_protected("The code is ESC-7731.", p) == "The code is ESC-7731."


def test_digest_file_round_trip_and_errors() -> None:
    again = ProtectedText.from_json(PROTECTED.to_json())
    assert again == PROTECTED
    merged = ProtectedText.merge([again, ProtectedText.from_passages(["a secret passage"])])
    assert merged.lengths == (8, 3) and merged.passages == 2
    with pytest.raises(ValueError, match="different windows"):
        ProtectedText.merge([PROTECTED, ProtectedText.from_passages([SYSTEM], window=6)])
    for bad in ('{"window": 8}', '{"window": 1, "lengths": [], "passages": 1, "digests": ["00"]}', "[1]"):
        with pytest.raises(ValueError, match="protected digests"):
            ProtectedText.from_json(bad)
    with pytest.raises(ValueError, match="16-digit hex"):
        ProtectedText.from_json('{"window": 8, "lengths": [8], "passages": 1, "digests": ["xyz"]}')
    with pytest.raises(ValueError, match="no words"):
        ProtectedText.from_passages(["  ", "--"])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), max_size=60), st.sampled_from(["", "You are", "code"]))
def test_streamed_redaction_matches_whole_text(cuts: list[int], context: str) -> None:
    want = redact_protected(ANSWER, PROTECTED, context=context)
    assert want.count(MARKER) == 2 and "KESTREL" not in want and "Fees are listed online." in want
    redactor = ProtectedRedactor(PROTECTED, context=context)
    out = "".join(redactor.feed(piece) for piece in _split(ANSWER, cuts)) + redactor.finish()
    assert out == want
    assert redactor.redacted == 2


def test_stream_holds_back_at_most_a_window_of_words() -> None:
    redactor = ProtectedRedactor(PROTECTED)
    fed = released = ""
    for word in ("Fees are listed online and can change every month, see the page. " * 3).split(" "):
        fed += word + " "
        released += redactor.feed(word + " ")
        assert fed.startswith(released)
        assert len(normal_words(fed[len(released) :])) < PROTECTED.window
    assert released + redactor.finish() == fed


def _sse(text: str, size: int) -> bytes:
    events = [
        b"data: " + msgspec.json.encode({"choices": [{"index": 0, "delta": {"content": text[i : i + size]}}]}) + b"\n\n"
        for i in range(0, len(text), size)
    ]
    return b"".join(events) + b"data: [DONE]\n\n"


def test_sse_and_json_answers_lose_echoes_then_pii() -> None:
    answer = ANSWER + " Call +44 20 7946 0958."
    redactor = SseRedactor(PROTECTED, context="Tell me")
    raw = _sse(answer, 7)
    out = b"".join(redactor.feed(raw[i : i + 13]) for i in range(0, len(raw), 13)) + redactor.finish()
    text = "".join(
        msgspec.json.decode(line[5:])["choices"][0]["delta"]["content"]
        for line in out.splitlines()
        if line.startswith(b"data: {")
    )
    body = {"choices": [{"message": {"content": answer}}]}
    assert redact_choices(body, PROTECTED, ("Tell me",))
    assert text == body["choices"][0]["message"]["content"]
    assert text.count(MARKER) == 2 and "[REDACTED:phone]" in text and "KESTREL" not in text
    assert redactor.redacted == 3
    assert out.rstrip().endswith(b"data: [DONE]")


def test_each_choice_continues_its_own_prompt() -> None:
    body = {"choices": [{"text": "ESC-7731-KESTREL and do not share"}, {"text": "ESC-7731-KESTREL and do not share"}]}
    assert redact_choices(body, PROTECTED, ("hello there", "escalate with internal code"))
    assert [c["text"] for c in body["choices"]] == ["ESC-7731-KESTREL and do not share", MARKER]


def test_redacting_only_the_protected_passages_keeps_pii() -> None:
    answer = ANSWER + " Call +44 20 7946 0958."
    redactor = SseRedactor(PROTECTED, pii=False)
    raw = _sse(answer, 5)
    out = redactor.feed(raw) + redactor.finish()
    text = "".join(
        msgspec.json.decode(line[5:])["choices"][0]["delta"]["content"]
        for line in out.splitlines()
        if line.startswith(b"data: {")
    )
    body = {"choices": [{"message": {"content": answer}}]}
    assert redact_choices(body, PROTECTED, pii=False)
    assert text == body["choices"][0]["message"]["content"] == redact_protected(answer, PROTECTED)
    assert "+44 20 7946 0958" in text and text.count(MARKER) == 2
