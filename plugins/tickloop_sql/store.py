"""``SqlStateStore``: the state store on any SQL database SQLAlchemy Core speaks.

Every query is dialect-neutral Core (RETURNING and "insertmanyvalues" work on SQLite ≥ 3.35 and
PostgreSQL alike), written in the module of the part of the store it belongs to:

=================================  ==========================================================
:mod:`tickloop_sql.sessions`       sessions, transitions, the sessions revision
:mod:`tickloop_sql.runs`           reading runs and log lines
:mod:`tickloop_sql.runwriter`      runs started and finished in group commits (the hot path)
:mod:`tickloop_sql.wallets`        wallets, funds, allocations
:mod:`tickloop_sql.ledger`         the ledger, resting orders, the accounts traded on
:mod:`tickloop_sql.intents`        intents
:mod:`tickloop_sql.holds`          reconciliation's holds
:mod:`tickloop_sql.migrations`     the schema brought up to date on open
=================================  ==========================================================

What differs between databases is passed in:

- the engine, set up by the dialect's module (:mod:`tickloop_sql.sqlite`: WAL, pragmas, and
  ``BEGIN IMMEDIATE`` for connections carrying the :data:`~tickloop_sql.connections.WRITE`
  execution option);
- an :class:`Ownership` (who is the one ``serve`` of this store);
- a :class:`~tickloop_sql.connections.Notifier` (how a write wakes the owner without polling);
- optionally a :class:`Maintenance` (the owner's background upkeep) and a
  :class:`~tickloop_sql.journal.RunJournal` (finished runs written ahead of their group commit).

Writes run in short transactions on ``engine.execution_options(WRITE=True)``; reads run on plain
connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine

from tickloop_sql.connections import WRITE, Notifier
from tickloop_sql.holds import SqlHolds
from tickloop_sql.intents import SqlIntents
from tickloop_sql.journal import RunJournal
from tickloop_sql.ledger import SqlLedger
from tickloop_sql.migrations import create_schema
from tickloop_sql.runwriter import FastPath, SqlRunWriter
from tickloop_sql.sessions import SqlSessions
from tickloop_sql.wallets import SqlWallets


class Ownership(Protocol):
    """Who is the one ``serve`` process of a store."""

    def acquire(self) -> None:
        """Become the owner, or raise :class:`tickloop.errors.StoreLockedError` naming the owner."""

    def owned(self) -> bool:
        """Whether this object holds the ownership."""

    def held_elsewhere(self) -> bool:
        """Whether someone other than this object holds it (another process or store object)."""

    def release(self) -> None:
        """Give the ownership up (no-op when not held)."""


class Maintenance(Protocol):
    """Background upkeep the owner of a store runs while it serves (SQLite: WAL checkpoints)."""

    def start(self, engine: Engine) -> None:
        """Begin (called when this store becomes the owner)."""

    def stop(self) -> None:
        """End (called on close)."""


class SqlStateStore(SqlSessions, SqlRunWriter, SqlWallets, SqlLedger, SqlIntents, SqlHolds):
    """The :class:`tickloop.store.StateStore` on SQLAlchemy Core (see the module docstring)."""

    def __init__(self, url: str, engine: Engine, *, ownership: Ownership, notifier: Notifier,
                 maintenance: Maintenance | None = None, journal: RunJournal | None = None) -> None:
        self.url = url
        self.engine = engine
        self._maintenance = maintenance
        self._journal = journal
        self._writer = engine.execution_options(**{WRITE: True})
        self._ownership = ownership
        self._notifier = notifier
        self._closed = False
        self._close_lock = threading.Lock()
        self._fast = FastPath.for_engine(engine)
        create_schema(self._writer)

    def acquire_owner(self) -> None:
        self._ownership.acquire()
        if self._maintenance is not None:
            self._maintenance.start(self.engine)

    def owned_by_other_process(self) -> bool:
        """Whether another ``serve`` (another process, or another store object) owns this store."""
        return self._ownership.held_elsewhere()

    def listen(self, callback: Callable[[], None]) -> None:
        self._notifier.listen(callback)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._maintenance is not None:
                self._maintenance.stop()
            if self._journal is not None:
                self._journal.close()
            self._notifier.close()
        finally:
            try:
                self._ownership.release()
            finally:
                self.engine.dispose()

    def __enter__(self) -> SqlStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStateStore({self.url!r})"
