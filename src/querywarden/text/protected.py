"""Protected passages: find and redact verbatim echoes of text the operator declared secret.

An assistant's system prompt (or any passage its operator names) must not come back in an
answer. The passages are kept only as digests: every run of ``window`` consecutive words
(lower-cased letters and digits, punctuation and spacing ignored) is hashed to 64 bits (a
polynomial of its words' BLAKE2b hashes, so a whole answer's runs cost one multiply-add per
word), and a passage shorter than ``window`` words is hashed whole. The text itself is
dropped once the digests exist (its words are hashed without the cache answers use), so
neither a detector's state nor a finding can hold it; evidence names an echo by its length,
offsets and digest.

- ``ProtectedText.find(answer, context=prompt)`` returns the spans of ``answer`` whose words
  lie in a run that matches a digest. ``context`` is the text the answer continues (the
  prompt of a completion, the user's turn of a chat): a caller who writes the first words of
  the system prompt and lets the model finish it gets the rest flagged, even when the answer
  alone holds fewer than ``window`` of its words.
- ``ProtectedRedactor`` replaces each such span with ``[REDACTED:protected]`` in a streamed
  answer, chunk by chunk. It releases a word once no unfinished run can still cover it, so it
  holds back at most the last ``window`` words. ``redact_protected`` does the same on a whole
  text, and the streamed result equals it whatever the chunking (the tests check it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

WINDOW = 8
"""Default words per hashed run: long enough that ordinary answers do not repeat one by chance."""
MARKER = "[REDACTED:protected]"
_WORD = re.compile(r"[^\W_]+")
_HOLD = 4096
"""Characters a stream redactor may hold back; past it, pending words are decided with what has come."""


_MASK = (1 << 64) - 1
_BASE = 0x100000001B3  # an odd multiplier: runs are polynomials of their words' hashes, mod 2**64


def _hash_word(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


_cached_word_hash = functools.lru_cache(maxsize=65536)(_hash_word)
"""For answers, whose words repeat from one to the next; never fed the protected text itself."""


def _run_digests(words: Sequence[str], n: int, word_hash: Callable[[str], int] = _cached_word_hash) -> list[int]:
    """The digest of every run of ``n`` words, rolled along in one pass (one multiply-add per word)."""
    if len(words) < n:
        return []
    hashes = [word_hash(w) for w in words]
    top = pow(_BASE, n - 1, 1 << 64)
    h = 0
    for x in hashes[:n]:
        h = (h * _BASE + x) & _MASK
    out = [h]
    for i in range(n, len(hashes)):
        h = ((h - hashes[i - n] * top) * _BASE + hashes[i]) & _MASK
        out.append(h)
    return out


def _digest(words: Sequence[str]) -> int:
    """The digest shown in evidence for one echoed run (any length)."""
    return int.from_bytes(hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest(), "little")


def normal_words(text: str) -> list[str]:
    """The words matching looks at: lower-cased runs of letters and digits."""
    return [w.lower() for w in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class EchoSpan:
    """One verbatim echo in an answer: character offsets, its length in words, and its digest."""

    start: int
    end: int
    words: int
    digest: str
    whole: bool = False
    """True when the span holds a whole passage shorter than the window (a code, a key)."""


@dataclass(frozen=True, slots=True)
class ProtectedText:
    """Digests of the word runs of one or more protected passages."""

    window: int
    lengths: tuple[int, ...]
    """Run lengths that have digests: ``window``, and the length of each shorter passage."""
    digests: frozenset[int] = field(repr=False)
    passages: int = 1

    @classmethod
    def from_passages(cls, passages: Iterable[str], *, window: int = WINDOW) -> ProtectedText:
        """Digests of every ``window``-word run of each passage (a shorter passage whole)."""
        if window < 2:
            raise ValueError(f"protected text: window must be >= 2, got {window}")
        digests: set[int] = set()
        lengths = {window}
        count = 0
        for passage in passages:
            ws = normal_words(passage)
            if not ws:
                continue
            count += 1
            n = min(window, len(ws))
            lengths.add(n)
            digests.update(_run_digests(ws, n, _hash_word))
        if not digests:
            raise ValueError("protected text: no words to protect")
        return cls(window, tuple(sorted(lengths, reverse=True)), frozenset(digests), count)

    @classmethod
    def merge(cls, parts: Sequence[ProtectedText]) -> ProtectedText:
        """One set from several (digest files and text files), which must share a window."""
        if not parts:
            raise ValueError("protected text: nothing to protect")
        windows = {p.window for p in parts}
        if len(windows) > 1:
            raise ValueError(f"protected text: digest sets use different windows {sorted(windows)}")
        if len(parts) == 1:
            return parts[0]
        lengths = {n for p in parts for n in p.lengths}
        digests = frozenset().union(*(p.digests for p in parts))
        return cls(parts[0].window, tuple(sorted(lengths, reverse=True)), digests, sum(p.passages for p in parts))

    # -- a digest file: the passages' digests without their text ------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "window": self.window,
                "lengths": list(self.lengths),
                "passages": self.passages,
                "digests": sorted(f"{d:016x}" for d in self.digests),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ProtectedText:
        """Read ``to_json``'s output; ``ValueError`` names what is wrong."""
        data: Any = json.loads(text)
        if not isinstance(data, dict) or set(data) != {"window", "lengths", "passages", "digests"}:
            raise ValueError("protected digests: expected an object with window, lengths, passages and digests")
        window, lengths, digests = data["window"], data["lengths"], data["digests"]
        if not isinstance(window, int) or window < 2:
            raise ValueError(f"protected digests: window must be an integer >= 2, got {window!r}")
        if not isinstance(lengths, list) or not all(isinstance(n, int) and 1 <= n <= window for n in lengths):
            raise ValueError(f"protected digests: lengths must be integers from 1 to {window}")
        if not isinstance(digests, list) or not digests:
            raise ValueError("protected digests: digests must be a non-empty list of 16-digit hex strings")
        try:
            values = frozenset(int(d, 16) for d in digests if isinstance(d, str) and len(d) == 16)
        except ValueError:
            raise ValueError("protected digests: digests must be 16-digit hex strings") from None
        if len(values) != len(set(digests)):
            raise ValueError("protected digests: digests must be 16-digit hex strings")
        passages = data["passages"]
        return cls(window, tuple(sorted(set(lengths), reverse=True)), values, int(passages))

    # -- matching -------------------------------------------------------------------------
    @property
    def span(self) -> int:
        """The longest hashed run: how many words of context can matter."""
        return self.lengths[0]

    def covered(self, words: Sequence[str], skip: int = 0, lengths: Sequence[int] | None = None) -> list[bool]:
        """For each word from ``skip`` on, whether a run matching a digest (of ``lengths``) covers it."""
        out = [False] * (len(words) - skip)
        for n in self.lengths if lengths is None else lengths:
            first = max(0, skip - n + 1)
            for i, h in enumerate(_run_digests(words[first:], n), start=first):
                if h in self.digests:
                    for j in range(max(i, skip), i + n):
                        out[j - skip] = True
        return out

    def find(self, text: str, *, context: str = "") -> list[EchoSpan]:
        """The echoed spans of ``text``, left to right (``context`` is what it continues)."""
        ctx = normal_words(context)[-(self.span - 1) :] if context else []
        tokens = list(_WORD.finditer(text))
        words = [*ctx, *(m.group().lower() for m in tokens)]
        covered = self.covered(words, len(ctx))
        short = [n for n in self.lengths if n < self.window]
        whole = self.covered(words, len(ctx), short) if short and any(covered) else [False] * len(covered)
        spans: list[EchoSpan] = []
        for a, b in _runs(covered):
            run = words[len(ctx) + a : len(ctx) + b]
            digest = f"{_digest(run):016x}"
            spans.append(EchoSpan(tokens[a].start(), tokens[b - 1].end(), b - a, digest, any(whole[a:b])))
        return spans


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of consecutive true flags."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    return runs


class ProtectedRedactor:
    """Replace echoes of protected passages in a streamed answer; ``feed`` returns what is safe to send."""

    def __init__(self, protected: ProtectedText, *, context: str = "", hold: int = _HOLD) -> None:
        self.protected = protected
        self.hold = hold
        self._buf = ""
        self._ctx = normal_words(context)[-(protected.span - 1) :] if context else []
        self._open = False  # the released text ended on a redacted word: a run may go on
        self.redacted = 0

    def feed(self, chunk: str) -> str:
        self._buf += chunk
        return self._release(final=len(self._buf) > self.hold)

    def finish(self) -> str:
        return self._release(final=True, done=True)

    def _release(self, *, final: bool, done: bool = False) -> str:
        buf = self._buf
        tokens = list(_WORD.finditer(buf))
        partial = len(buf)  # where a word the next chunk may extend starts
        if tokens and not done and tokens[-1].end() == len(buf):
            partial = tokens.pop().start()
        words = [m.group().lower() for m in tokens]
        covered = self.protected.covered([*self._ctx, *words], len(self._ctx))
        # a word is decided once it is covered or every run that could cover it is complete
        settled = len(tokens) if final or done else max(0, len(tokens) - self.protected.span + 1)
        first_open = next((j for j in range(settled, len(tokens)) if not covered[j]), len(tokens))
        if done:
            cut = len(buf)
        elif first_open > 0 and covered[first_open - 1]:
            cut = tokens[first_open - 1].end()  # the text after a redacted word may still be inside its run
        elif self._open and first_open == 0:
            cut = 0
        else:
            cut = tokens[first_open].start() if first_open < len(tokens) else partial
        released = [j for j, m in enumerate(tokens) if m.end() <= cut]
        out = self._redact(buf[:cut], tokens, covered, released)
        if released:
            last = released[-1]
            self._open = covered[last] and tokens[last].end() == cut
        self._ctx = [*self._ctx, *(words[j] for j in released)][-(self.protected.span - 1) :]
        self._buf = buf[cut:]
        return out

    def _redact(self, head: str, tokens: list[re.Match[str]], covered: list[bool], released: list[int]) -> str:
        parts: list[str] = []
        at = 0
        for a, b in _runs([covered[j] for j in released]):
            if a == 0 and self._open:
                at = tokens[b - 1].end()  # the run goes on from the last release: no second marker
                continue
            parts += [head[at : tokens[a].start()], MARKER]
            self.redacted += 1
            at = tokens[b - 1].end()
        parts.append(head[at:])
        return "".join(parts)


def redact_protected(text: str, protected: ProtectedText, *, context: str = "") -> str:
    """``text`` with each echo of a protected passage replaced by ``[REDACTED:protected]``."""
    redactor = ProtectedRedactor(protected, context=context)
    return redactor.feed(text) + redactor.finish()
