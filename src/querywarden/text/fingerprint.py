"""Lexical fingerprints: MinHash signatures over a prompt's word and character shingles.

Two prompts that share most of their shingles get signatures that agree in most places
(the agreement estimates their Jaccard similarity), so near-duplicate prompts can be found
by exact lookups of signature *bands*, whatever the number of principals. The signature is
computed with ``datasketch.MinHash`` using CRC32 as the shingle hash: datasketch's default
SHA-1 costs about three times as much, and a fingerprint runs on every prompt. (CRC32 is
not collision resistant; a fingerprint is evidence for a detector, not an integrity check.)

Word 3-shingles carry the wording; for short prompts (under six words), character 5-grams
of the lower-cased words keep them and their typos comparable too.
"""

from __future__ import annotations

import hashlib
import threading
import zlib

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

from querywarden.text.tokens import words

Signature = npt.NDArray[np.uint32]
_LOCAL = threading.local()
_SEED = 20261128


def shingles(text: str, *, word_n: int = 3, char_n: int = 5, max_chars: int = 2000) -> list[bytes]:
    """The shingle set of ``text`` (as bytes), capped at ``max_chars`` of input."""
    text = text[:max_chars]
    ws = words(text)
    out: set[bytes] = set()
    if len(ws) >= word_n:
        out.update(" ".join(ws[i : i + word_n]).encode() for i in range(len(ws) - word_n + 1))
    elif ws:
        out.add(" ".join(ws).encode())
    squeezed = " ".join(ws)
    if len(ws) < 2 * word_n and len(squeezed) >= char_n:  # short prompts only: long ones have words enough
        out.update(f"#{squeezed[i : i + char_n]}".encode() for i in range(0, len(squeezed) - char_n + 1, 2))
    return sorted(out)


def _minhash(num_perm: int) -> MinHash:
    cache: dict[int, MinHash] | None = getattr(_LOCAL, "cache", None)
    if cache is None:
        cache = {}
        _LOCAL.cache = cache
    m = cache.get(num_perm)
    if m is None:
        m = MinHash(num_perm=num_perm, seed=_SEED, hashfunc=zlib.crc32)
        cache[num_perm] = m
    m.clear()
    return m


def minhash(text: str, num_perm: int = 32) -> Signature:
    """The MinHash signature (``num_perm`` uint32 values) of ``text``'s shingles."""
    m = _minhash(num_perm)
    sh = shingles(text)
    if sh:
        m.update_batch(sh)
    return np.array(m.hashvalues, dtype=np.uint32)


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    return float(np.count_nonzero(a == b)) / max(1, a.size)


def band_keys(sig: Signature, bands: int) -> list[int]:
    """One 63-bit key per band of rows: two prompts that share any key are candidate near-duplicates."""
    rows = max(1, sig.size // bands)
    keys: list[int] = []
    for b in range(bands):
        chunk = sig[b * rows : (b + 1) * rows]
        digest = hashlib.blake2b(chunk.tobytes() + bytes([b]), digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little") >> 1)
    return keys
