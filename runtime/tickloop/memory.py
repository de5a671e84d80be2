"""Agent memory: the backend interface and the ``agent.memory`` API built on it.

Values are strings. A session's keys live in scope ``session:<id>`` and are cleared when the
session ends; ``shared=True`` keys live in scope ``agent:<name>``, shared by every session of
that agent (last write wins). Keys, values and prefixes reach the backend as
:func:`tickloop.text.storable` text: a lone surrogate is kept as its ``\\udcff`` escape, the same
way whichever backend is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from tickloop.results import Result
from tickloop.text import storable

LIST_LIMIT = 1000


def session_scope(session_id: int) -> str:
    return f"session:{session_id}"


def agent_scope(agent: str) -> str:
    return f"agent:{agent}"


@attrs.frozen
class MemoryItem:
    key: str
    value: str | None
    updated_at: int  # Unix seconds, as the Circuit wire format has it


class MemoryBackend(Protocol):
    """What a memory backend plugin provides. Every method is safe to call from several threads."""

    def set(self, scope: str, key: str, value: str, *, at: int) -> None:
        """Store ``value`` under ``key`` in ``scope``; ``at`` becomes its ``updated_at``."""

    def get(self, scope: str, key: str) -> MemoryItem | None:
        """The item, or None when the key is absent."""

    def delete(self, scope: str, key: str) -> bool:
        """Remove the key; True when it existed."""

    def list(self, scope: str, prefix: str = "", *, limit: int = LIST_LIMIT) -> list[MemoryItem]:
        """Items whose key starts with ``prefix``, sorted by key, at most ``limit`` (values may be None)."""

    def clear(self, scope: str) -> int:
        """Remove every key of ``scope``; returns how many were removed."""

    def close(self) -> None:
        """Release files and connections."""


class Memory:
    """``agent.memory``: set/get/delete/list with Circuit's result shapes.

    ``shared=False`` (the default) addresses the session's memory, ``shared=True`` the agent's.
    """

    __slots__ = ("_agent", "_backend", "_now", "_session")

    def __init__(self, backend: MemoryBackend, *, session_id: int, agent: str, now: Callable[[], float]) -> None:
        self._backend = backend
        self._session = session_scope(session_id)
        self._agent = agent_scope(agent)
        self._now = now

    def _scope(self, shared: bool) -> str:
        return self._agent if shared else self._session

    def set(self, key: str, value: str, shared: bool = False) -> Result:
        problem = _check_key(key) or (
            None if isinstance(value, str) else f"value must be a string, got {type(value).__name__}")
        if problem:
            return Result.fail(problem)
        try:
            self._backend.set(self._scope(shared), storable(key), storable(value), at=int(self._now()))
        except Exception as exc:  # a backend failure is a result, never an exception in agent code
            return Result.fail(f"memory set failed: {exc}")
        return Result.ok({"key": key})

    def get(self, key: str, shared: bool = False) -> Result:
        problem = _check_key(key)
        if problem:
            return Result.fail(problem)
        try:
            item = self._backend.get(self._scope(shared), storable(key))
        except Exception as exc:
            return Result.fail(f"memory get failed: {exc}")
        if item is None:
            return Result.ok({"key": key, "value": None, "updated_at": None})
        return Result.ok({"key": key, "value": item.value, "updated_at": item.updated_at})

    def delete(self, key: str, shared: bool = False) -> Result:
        problem = _check_key(key)
        if problem:
            return Result.fail(problem)
        try:
            self._backend.delete(self._scope(shared), storable(key))
        except Exception as exc:
            return Result.fail(f"memory delete failed: {exc}")
        return Result.ok({"key": key})

    def list(self, prefix: str | None = None, shared: bool = False) -> Result:
        if prefix is not None and not isinstance(prefix, str):
            return Result.fail(f"memory prefix must be a string, got {type(prefix).__name__}")
        try:
            items = self._backend.list(self._scope(shared), storable(prefix or ""), limit=LIST_LIMIT)
        except Exception as exc:
            return Result.fail(f"memory list failed: {exc}")
        return Result.ok({"items": [{"key": i.key, "updated_at": i.updated_at} for i in items]})


def _check_key(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return f"memory key must be a non-empty string, got {key!r}"
    if len(key) > 255:
        return f"memory key must be at most 255 characters, got {len(key)}"
    return None
