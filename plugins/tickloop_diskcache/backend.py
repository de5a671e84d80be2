"""The ``diskcache`` memory backend: agent memory in a diskcache directory, durable and shared by processes.

Layout (every diskcache key is a ``str``, stored raw in SQLite, never pickled):

- ``v<len>:<scope>:<key>`` -> ``"<updated_at>:<value>"``, one row per memory key;
- ``d<len>:<scope>`` -> the scope's directory ``(version, next_page, lows, pages)``;
- ``p<len>:<scope>:<page>`` -> one index page, a ``{key: updated_at}`` dict.

``<len>`` is the length of the scope, so a name decodes one way only: scope ``session:1`` with
key ``2:x`` and scope ``session:12`` with key ``x`` are ``v9:session:1:2:x`` and
``v10:session:12:x``. The index pages partition the scope's keys into sorted ranges (page ``i``
holds ``lows[i] <= key < lows[i + 1]``) of at most :data:`PAGE_MAX` keys, a two-level B-tree. A
``set`` or ``delete`` touches the value, one page and, when a page splits or empties, the
directory, all in one ``cache.transact()``; so a write costs O(PAGE_MAX) whatever the scope's
size, ``list`` reads only the pages its prefix spans, and ``clear`` removes the keys its pages
name. Nothing ever scans other scopes. Pages split when full and are dropped when empty, but are
never merged, so a scope that once held many keys keeps its page count (list stays bounded by
the scope's own history).

Durability: SQLite in WAL mode with ``synchronous=NORMAL`` (diskcache's defaults) survives a
crash or SIGKILL of the process once a transaction has committed, i.e. once ``set`` returned.
Values are always stored inside SQLite (``disk_min_file_size`` is raised), so a read never races
with the removal of a value file, and eviction is off: agent memory is state, not a cache.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache

from tickloop.memory import LIST_LIMIT, MemoryItem
from tickloop.text import storable

__all__ = ["PAGE_MAX", "SETTINGS", "DiskcacheMemory", "open_cache"]

#: Most keys in one index page; a page that grows beyond it splits in two.
PAGE_MAX = 128  # a pickled page of short keys fits in one 4 KiB SQLite page

#: How often ``list`` re-reads a scope whose pages split or merged while it was reading them,
#: before it takes the write lock instead.
_OPTIMISTIC_TRIES = 4

#: The diskcache settings of the memory directory (see the module docstring).
SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",  # never cull; the default (least-recently-stored, 1 GB) loses state
    "size_limit": 2**62,
    "cull_limit": 0,  # no culling work on writes (nothing ever expires)
    "disk_min_file_size": 2**30,  # keep every value in SQLite: atomic reads, WAL durability
    "sqlite_journal_mode": "wal",
    "sqlite_synchronous": 1,  # NORMAL: durable against process crashes, not power loss
    "statistics": False,
    "tag_index": False,
}


def open_cache(directory: str | os.PathLike[str], *, timeout: float = 60.0, **settings: Any) -> diskcache.Cache:
    """Open (creating if needed) the diskcache at ``directory`` with the memory settings.

    Several processes opening one new directory at once can fail with "database is locked"
    (python-diskcache#85, #266), so creation is serialized with a lock file where ``fcntl``
    exists and retried otherwise.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    merged = {**SETTINGS, **settings}
    with _file_lock(path / ".open.lock"):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return diskcache.Cache(str(path), timeout=timeout, **merged)
            except (sqlite3.OperationalError, diskcache.Timeout):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: rely on the retry loop in open_cache
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _name(kind: str, scope: str, rest: str = "") -> str:
    return f"{kind}{len(scope)}:{scope}:{rest}"


# A directory is (version, next_page, lows, pages): lows[i] is the smallest key page pages[i]
# may hold (lows[0] is ""). ``version`` changes with every split or merge; it starts random so
# that a scope cleared and rebuilt while ``list`` reads it cannot look unchanged.
_Directory = tuple[int, int, tuple[str, ...], tuple[int, ...]]


def _new_directory() -> _Directory:
    return (random.getrandbits(62), 1, ("",), (0,))


class DiskcacheMemory:
    """A :class:`tickloop.memory.MemoryBackend` on one diskcache directory.

    Safe from many threads and many processes at once: every change is one SQLite transaction
    (``BEGIN IMMEDIATE``). Pickles as its directory, so a worker process reopens the same data.
    """

    def __init__(self, directory: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.directory = Path(directory)
        self._timeout = timeout
        self._cache = open_cache(self.directory, timeout=timeout)

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "timeout": self._timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"], timeout=state["timeout"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"DiskcacheMemory({str(self.directory)!r})"

    # -- the MemoryBackend methods ---------------------------------------------------------

    def set(self, scope: str, key: str, value: str, *, at: int) -> None:
        scope, key = _check(scope, key)
        if not isinstance(value, str):
            raise TypeError(f"memory value must be a string, got {type(value).__name__}")
        value = storable(value)
        at = int(at)
        cache = self._cache
        with cache.transact():
            cache.set(_name("v", scope, key), f"{at}:{value}")
            directory = cache.get(_name("d", scope))
            fresh = directory is None
            if fresh:
                directory = _new_directory()
            index = bisect_right(directory[2], key) - 1
            page_name = _name("p", scope, str(directory[3][index]))
            page = {} if fresh else cache.get(page_name, {})
            if page.get(key) == at:  # same key set again within the same second
                return
            page[key] = at
            if len(page) > PAGE_MAX:
                cache.set(_name("d", scope), self._split(scope, directory, index, page))
                return
            cache.set(page_name, page)
            if fresh:
                cache.set(_name("d", scope), directory)

    def get(self, scope: str, key: str) -> MemoryItem | None:
        scope, key = _check(scope, key)
        stored = self._cache.get(_name("v", scope, key))
        if stored is None:
            return None
        at, _, value = stored.partition(":")
        return MemoryItem(key, value, int(at))

    def delete(self, scope: str, key: str) -> bool:
        scope, key = _check(scope, key)
        cache = self._cache
        with cache.transact():
            if not cache.delete(_name("v", scope, key)):
                return False
            directory = cache.get(_name("d", scope))
            if directory is None:  # cannot happen while the index is kept in step
                return True
            index = bisect_right(directory[2], key) - 1
            page_name = _name("p", scope, str(directory[3][index]))
            page = cache.get(page_name, {})
            page.pop(key, None)
            if not page and len(directory[3]) == 1:  # the scope's last key: leave nothing behind
                cache.delete(page_name)
                cache.delete(_name("d", scope))
            elif page or index == 0:
                cache.set(page_name, page)
            else:  # drop the empty page; its range joins the previous page's
                cache.delete(page_name)
                version, next_page, lows, pages = directory
                cache.set(_name("d", scope), (version + 1, next_page, lows[:index] + lows[index + 1:],
                                              pages[:index] + pages[index + 1:]))
            return True

    def list(self, scope: str, prefix: str = "", *, limit: int = LIST_LIMIT) -> list[MemoryItem]:
        scope, prefix = _check(scope, prefix, what="prefix")
        if limit <= 0:
            return []
        # Optimistic read: pages are read one by one without a lock, which is consistent as long
        # as no page split or merged meanwhile (the directory's version is unchanged).
        for _ in range(_OPTIMISTIC_TRIES):
            directory = self._cache.get(_name("d", scope))
            if directory is None:
                return []
            items = self._collect(scope, directory, prefix, limit)
            if self._cache.get(_name("d", scope)) == directory:
                return items
        with self._cache.transact():  # writers kept reshaping the index: read under the lock
            directory = self._cache.get(_name("d", scope))
            return [] if directory is None else self._collect(scope, directory, prefix, limit)

    def clear(self, scope: str) -> int:
        if not isinstance(scope, str):
            raise TypeError(f"memory scope must be a string, got {type(scope).__name__}")
        scope = storable(scope)
        cache = self._cache
        removed = 0
        with cache.transact():
            directory = cache.get(_name("d", scope))
            if directory is None:
                return 0
            for page_id in directory[3]:
                page_name = _name("p", scope, str(page_id))
                for key in cache.get(page_name, {}):
                    removed += cache.delete(_name("v", scope, key))
                cache.delete(page_name)
            cache.delete(_name("d", scope))
        return removed

    def close(self) -> None:
        self._cache.close()

    # -- the index -------------------------------------------------------------------------

    def _split(self, scope: str, directory: _Directory, index: int, page: dict[str, int]) -> _Directory:
        """Write ``page`` (too big, at ``index``) as two halves; returns the new directory."""
        version, next_page, lows, pages = directory
        keys = sorted(page)
        middle = len(keys) // 2
        cache = self._cache
        cache.set(_name("p", scope, str(pages[index])), {k: page[k] for k in keys[:middle]})
        cache.set(_name("p", scope, str(next_page)), {k: page[k] for k in keys[middle:]})
        return (version + 1, next_page + 1, (*lows[:index + 1], keys[middle], *lows[index + 1:]),
                (*pages[:index + 1], next_page, *pages[index + 1:]))

    def _collect(self, scope: str, directory: _Directory, prefix: str, limit: int) -> list[MemoryItem]:
        _, _, lows, pages = directory
        items: list[MemoryItem] = []
        for index in range(max(bisect_right(lows, prefix) - 1, 0), len(pages)):
            low = lows[index]
            if low > prefix and not low.startswith(prefix):
                break  # this page and every later one hold keys above the prefix's range
            page = self._cache.get(_name("p", scope, str(pages[index])), {})
            for key in sorted(k for k in page if k.startswith(prefix)) if prefix else sorted(page):
                items.append(MemoryItem(key, None, page[key]))
                if len(items) >= limit:
                    return items
        return items


def _check(scope: Any, key: Any, *, what: str = "key") -> tuple[str, str]:
    """``scope`` and ``key`` as stored: strings SQLite can encode (tickloop.text.storable)."""
    if not isinstance(scope, str):
        raise TypeError(f"memory scope must be a string, got {type(scope).__name__}")
    if not isinstance(key, str):
        raise TypeError(f"memory {what} must be a string, got {type(key).__name__}")
    return storable(scope), storable(key)
