"""How every part of ``SqlStateStore`` reaches the database: reads, writes, and the wake-up after a write.

:class:`Connections` is the base of the parts (:mod:`tickloop_sql.sessions`, :mod:`~tickloop_sql.runs`,
:mod:`~tickloop_sql.wallets`, ...); :class:`tickloop_sql.store.SqlStateStore` sets its attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import CursorResult, Engine

#: Execution option marking a connection whose transactions will write. A dialect module may use
#: it to take the write lock up front (SQLite: ``BEGIN IMMEDIATE``); others ignore it.
WRITE = "tickloop_write"

#: Ids per ``IN (...)`` list when reading rows of many ids (under SQLite's variable limit).
CHUNK = 500


class Notifier(Protocol):
    """Wakes the owner when a session changed, without polling."""

    def notify(self) -> None:
        """Tell the listener (if any) that sessions changed; never blocks, never raises."""

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` from a background thread for every notification."""

    def close(self) -> None:
        """Stop listening and release sockets or connections."""


class Connections:
    """The engine the parts of the store read and write through.

    Reads run on plain connections of :attr:`engine`; writes in short transactions on
    :attr:`_writer` (the same engine with the :data:`WRITE` option). A write that changes a
    session tells :attr:`_notifier` after it commits.
    """

    engine: Engine
    _writer: Engine
    _notifier: Notifier


def new_id(result: CursorResult[Any]) -> int:
    """The id the single-row INSERT of ``result`` gave its row."""
    key = result.inserted_primary_key
    assert key is not None  # an INSERT always has one
    return int(key[0])
