"""tickloop built-in plugin: the ``memory`` backend, agent memory kept in this process.

Nothing is persisted and nothing is shared with other processes, so it suits tests, demos and
the ``inline`` executor; use ``diskcache`` (the default) for anything that must survive a restart.
"""

from __future__ import annotations

import heapq
import threading
from typing import Any

from tickloop import hookimpl
from tickloop.memory import LIST_LIMIT, MemoryItem
from tickloop.registry import Backend

__all__ = ["InProcessMemory"]


class InProcessMemory:
    """A :class:`tickloop.memory.MemoryBackend` of plain dicts, one per scope, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: scope -> key -> (value, updated_at)
        self._scopes: dict[str, dict[str, tuple[str, int]]] = {}

    def set(self, scope: str, key: str, value: str, *, at: int) -> None:
        _check(scope, key)
        if not isinstance(value, str):
            raise TypeError(f"memory value must be a string, got {type(value).__name__}")
        with self._lock:
            self._scopes.setdefault(scope, {})[key] = (value, int(at))

    def get(self, scope: str, key: str) -> MemoryItem | None:
        _check(scope, key)
        with self._lock:
            found = self._scopes.get(scope, {}).get(key)
        return None if found is None else MemoryItem(key, found[0], found[1])

    def delete(self, scope: str, key: str) -> bool:
        _check(scope, key)
        with self._lock:
            items = self._scopes.get(scope)
            if items is None or items.pop(key, None) is None:
                return False
            if not items:
                del self._scopes[scope]  # an empty scope costs nothing
            return True

    def list(self, scope: str, prefix: str = "", *, limit: int = LIST_LIMIT) -> list[MemoryItem]:
        _check(scope, prefix, what="prefix")
        if limit <= 0:
            return []
        with self._lock:
            items = self._scopes.get(scope)
            if not items:
                return []
            # Copy under the lock, sort outside it: nsmallest is O(n log limit).
            chosen = [(k, v) for k, v in items.items() if k.startswith(prefix)] if prefix else list(items.items())
        return [MemoryItem(k, v[0], v[1]) for k, v in heapq.nsmallest(limit, chosen, key=lambda kv: kv[0])]

    def clear(self, scope: str) -> int:
        with self._lock:
            return len(self._scopes.pop(scope, {}))

    def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""


def _check(scope: Any, key: Any, *, what: str = "key") -> None:
    if not isinstance(scope, str):
        raise TypeError(f"memory scope must be a string, got {type(scope).__name__}")
    if not isinstance(key, str):
        raise TypeError(f"memory {what} must be a string, got {type(key).__name__}")


def _factory(config: Any) -> InProcessMemory:
    return InProcessMemory()


@hookimpl
def tickloop_register_memory_backends(register: Any) -> None:
    register(Backend(
        name="memory",
        factory=_factory,
        description="in-process dicts; fast, lost when the process exits, not shared between processes",
    ))
