"""Untrusted text made storable: the one rule for every string that reaches durable storage.

Python strings may hold lone surrogates (``"\\udcff"``): ``os.fsdecode`` and click produce them
for bytes that are not UTF-8 (``--setting greeting=$'\\xff'``), and agent code can build them
(``chr(0xDCFF)``). UTF-8 cannot encode them, so SQLite, diskcache, JSON consumers and a UTF-8
terminal all refuse them with ``UnicodeEncodeError``. :func:`storable` replaces each one with its
escape, six ASCII characters (``\\udcff``); every other character, valid text included, is kept
as it is. The result is visible, never fails to encode, and says exactly what was there.

The state store (its text and JSON columns), the memory API and the CLI's settings parser apply
it, so an agent's logs, errors, settings, memory and venue answers are stored whatever they hold.
"""

from __future__ import annotations

from typing import Any

__all__ = ["storable", "storable_data"]


def storable(text: str) -> str:
    """``text`` with every lone surrogate replaced by its ``\\uXXXX`` escape (backslashreplace),
    so it encodes as UTF-8; text without one is returned unchanged (the same object)."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # only lone surrogates fail to encode as UTF-8
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable_data(value: Any) -> Any:
    """``value`` (JSON-like data: dicts, lists, tuples, scalars) with :func:`storable` applied to
    every string in it, keys included. Other values are returned unchanged."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_data(k): storable_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(storable_data(v) for v in value)
    return value
