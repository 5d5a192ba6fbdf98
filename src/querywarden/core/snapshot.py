"""Snapshots of learned state as bytes, restored by a restricted unpickler.

Snapshots live in our own store, but a store is still input: the loader refuses any class
outside numpy, the standard containers and QueryWarden's own modules.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from querywarden.errors import DetectorError

_SAFE_PREFIXES = ("querywarden.", "numpy", "datasketch.")
_SAFE_EXACT = {("msgspec._utils", "rebuild")}  # how msgspec Structs (our records) pickle
_SAFE_STDLIB = {
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("collections", "defaultdict"),
    ("collections", "Counter"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "str"),
    ("builtins", "bytes"),
}


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes) -> Any:
    try:
        return _SafeUnpickler(io.BytesIO(blob)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, ImportError) as exc:
        raise DetectorError(f"cannot restore snapshot: {exc}") from exc


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_SAFE_PREFIXES) or (module, name) in _SAFE_STDLIB or (module, name) in _SAFE_EXACT:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"snapshot names disallowed class {module}.{name}")
