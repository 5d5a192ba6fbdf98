"""Scanning and redacting a streamed answer, chunk by chunk.

A streamed answer arrives in pieces of a few tokens, and a card number or an API key can
straddle two of them. Both classes here keep a tail of the text seen so far, at most
``pii.MAX_MATCH`` characters, and only commit to what lies before it:

- ``StreamScanner.feed(chunk)`` returns the matches that can no longer grow; ``finish()``
  returns the rest. Offsets are absolute in the whole answer. The detector side uses it.
- ``StreamRedactor.feed(chunk)`` returns the text that is safe to send now, with matches
  replaced; it holds back only the tail that could still be the start of a match, so the
  client sees the answer flow with a delay of at most ``MAX_MATCH`` characters. The
  gateway's harden mode calls it per SSE event (``SseRedactor`` parses the events).

Either gives exactly what ``pii.scan``/``pii.redact`` give on the whole text, whatever the
chunking (the tests check it against random splits).

Given the model's protected passages (``text.protected``), ``SseRedactor`` and
``redact_choices`` first replace their echoes, then the PII: the stream is held back by at
most the protected window's words plus ``MAX_MATCH`` characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from querywarden.text.pii import MAX_MATCH, PiiMatch, redact, scan
from querywarden.text.protected import ProtectedRedactor, ProtectedText, redact_protected


class StreamScanner:
    """Incremental ``pii.scan``: feed chunks, collect matches once they are final."""

    def __init__(self, *, tail: int = MAX_MATCH) -> None:
        self.tail = tail
        self._buf = ""
        self._offset = 0  # absolute position of _buf[0]
        self.matches: list[PiiMatch] = []

    def feed(self, chunk: str) -> list[PiiMatch]:
        self._buf += chunk
        if len(self._buf) <= 2 * self.tail:
            return []
        safe = len(self._buf) - self.tail
        found = scan(self._buf)
        done = [m for m in found if m.end < safe]
        # cut at a point no unfinished match spans: the start of the first match ending
        # after ``safe``, or ``safe`` itself
        cut = min([safe, *(m.start for m in found if m.end >= safe)])
        done = [m for m in done if m.end <= cut]
        return self._commit(done, cut)

    def finish(self) -> list[PiiMatch]:
        return self._commit(scan(self._buf), len(self._buf))

    def _commit(self, done: list[PiiMatch], cut: int) -> list[PiiMatch]:
        off = self._offset
        out = [PiiMatch(m.kind, m.start + off, m.end + off, m.value) for m in done]
        self.matches.extend(out)
        self._buf = self._buf[cut:]
        self._offset += cut
        return out


class StreamRedactor:
    """Incremental ``pii.redact``: feed chunks, get back what is safe to send."""

    def __init__(self, *, tail: int = MAX_MATCH) -> None:
        self.tail = tail
        self._buf = ""
        self.redacted = 0

    def feed(self, chunk: str) -> str:
        self._buf += chunk
        if len(self._buf) <= 2 * self.tail:
            return ""
        safe = len(self._buf) - self.tail
        found = scan(self._buf)
        cut = min([safe, *(m.start for m in found if m.end >= safe)])
        return self._emit([m for m in found if m.end <= cut], cut)

    def finish(self) -> str:
        return self._emit(scan(self._buf), len(self._buf))

    def _emit(self, done: list[PiiMatch], cut: int) -> str:
        head = self._buf[:cut]
        self._buf = self._buf[cut:]
        self.redacted += len(done)
        return redact(head, done)


class SseRedactor:
    """Redact the text deltas of an OpenAI-style SSE stream (``data: {...}`` events).

    ``feed(raw_bytes)`` returns the bytes to forward: each chat ``delta.content`` (or
    completion ``text``) of choice 0 is replaced by what the redactor releases; other
    events pass unchanged. Before ``data: [DONE]`` (or at ``finish()``) the held-back tail
    goes out as one more event shaped like the last one seen. With ``protected`` passages,
    their echoes are replaced first (``context`` is the prompt the answer continues);
    ``pii=False`` replaces only those.
    """

    def __init__(self, protected: ProtectedText | None = None, *, context: str = "", pii: bool = True) -> None:
        self._redactor = StreamRedactor() if pii else _Unchanged()
        self._protector = ProtectedRedactor(protected, context=context) if protected is not None else None
        self._pending = b""
        self._last: dict[str, Any] | None = None
        self._field: tuple[str, ...] = ()

    @property
    def redacted(self) -> int:
        return self._redactor.redacted + (self._protector.redacted if self._protector is not None else 0)

    def feed(self, raw: bytes) -> bytes:
        data = self._pending + raw
        lines = data.split(b"\n")
        self._pending = lines.pop()  # an incomplete last line waits for the next chunk
        return b"".join(self._line(line) for line in lines)

    def finish(self) -> bytes:
        out = self._line(self._pending) if self._pending else b""
        self._pending = b""
        return self._flush() + out

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return line + b"\n"
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return self._flush() + line + b"\n"
        try:
            event = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return line + b"\n"
        path, text = _text_of(event)
        if path is None or text is None:
            return line + b"\n"
        if self._protector is not None:
            text = self._protector.feed(text)
        released = self._redactor.feed(text)
        _set_text(event, path, released)
        self._last, self._field = event, path
        return b"data: " + msgspec.json.encode(event) + b"\n"

    def _flush(self) -> bytes:
        rest = self._redactor.feed(self._protector.finish()) if self._protector is not None else ""
        rest += self._redactor.finish()
        if not rest or self._last is None:
            return b""
        _set_text(self._last, self._field, rest)
        return b"data: " + msgspec.json.encode(self._last) + b"\n\n"


class _Unchanged:
    """Stands in for the PII redactor when only protected passages are redacted."""

    redacted = 0

    def feed(self, chunk: str) -> str:
        return chunk

    def finish(self) -> str:
        return ""


def _text_of(event: Any) -> tuple[tuple[str, ...] | None, str | None]:
    if not isinstance(event, dict):
        return None, None
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, None
    choice = choices[0]
    delta = choice.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        return ("delta", "content"), delta["content"]
    if isinstance(choice.get("text"), str):
        return ("text",), choice["text"]
    return None, None


def _set_text(event: dict[str, Any], path: tuple[str, ...], text: str) -> None:
    target: dict[str, Any] = event["choices"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text


def redact_choices(
    body: Any, protected: ProtectedText | None = None, contexts: Sequence[str] = (), *, pii: bool = True
) -> bool:
    """Redact PII (unless ``pii`` is false) and echoes of ``protected`` passages in every choice
    of a (non-streamed) OpenAI-style answer, in place. True if it changed. ``contexts`` holds
    each prompt of the request (choices come grouped per prompt); an echo may begin in its prompt."""
    changed = False
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        return False
    per = max(1, len(choices) // len(contexts)) if contexts else 1
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        context = contexts[min(i // per, len(contexts) - 1)] if contexts else ""
        message = choice.get("message")
        holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
        text = holder.get(key)
        if isinstance(text, str):
            clean = redact_protected(text, protected, context=context) if protected is not None else text
            clean = redact(clean) if pii else clean
            if clean != text:
                holder[key] = clean
                changed = True
    return changed
