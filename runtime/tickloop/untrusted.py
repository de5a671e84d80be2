"""Reading pickles another party wrote: only plain data and the records a protocol names.

A worker process runs agent code, and the files in a home can be written by anything running
as the same user. Their messages and records are pickled for speed, but unpickling them must not
be able to run code in the runtime, which holds the keys. :func:`loads` admits containers,
strings, numbers and the globals it is given, nothing else (the "restricting globals" recipe of
the :mod:`pickle` documentation).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Set as AbstractSet
from typing import Any

#: Globals plain data needs: decimals and times.
PLAIN = frozenset({
    ("decimal", "Decimal"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
})


class UntrustedData(Exception):
    """Data that is not what the protocol allows (or not readable at all)."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: AbstractSet[tuple[str, str]]) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed and (module, name) not in PLAIN:
            raise UntrustedData(f"may not contain {module}.{name}")
        return super().find_class(module, name)


def loads(data: bytes, allowed: AbstractSet[tuple[str, str]] = frozenset()) -> Any:
    """Unpickle ``data`` admitting only plain data and the ``allowed`` ``(module, name)`` globals."""
    try:
        return _Unpickler(data, allowed).load()
    except UntrustedData:
        raise
    except Exception as exc:  # truncated or malformed: the same verdict
        raise UntrustedData(f"unreadable: {type(exc).__name__}: {exc}") from None
