"""SQLite specifics of the state store: the URL, the engine, WAL checkpoints, and ``open_store``.

- **Engine**: WAL journal (readers never wait for the writer), ``synchronous=NORMAL`` (a commit
  survives the process being killed; only a power loss can lose the last commits, never corrupt
  the file), a busy timeout, foreign keys on. SQLAlchemy emits ``BEGIN`` itself (the sqlite3
  driver's legacy mode would run SELECTs outside the transaction), and ``BEGIN IMMEDIATE`` for
  writing connections, so a transaction that reads before it writes holds the write lock from
  the start and can never fail with a stale snapshot.
- **Checkpoints**: the owner checkpoints the WAL from a background thread (:class:`WalCheckpointer`).
- **Owner**: an exclusive ``flock`` on ``<db>.lock`` held by the ``serve`` process
  (:class:`tickloop_sql.filelock.FileLock`).
- **Notification**: a UNIX datagram socket the owner binds (:class:`tickloop_sql.notifier.DatagramNotifier`).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from tickloop.errors import ConfigError, Problem
from tickloop_sql.connections import WRITE
from tickloop_sql.filelock import FileLock
from tickloop_sql.journal import RunJournal
from tickloop_sql.notifier import DatagramNotifier
from tickloop_sql.store import SqlStateStore

log = logging.getLogger(__name__)

#: How long a statement waits for another connection's write lock before failing.
BUSY_TIMEOUT_SECONDS = 30.0


def parse_url(url: str, *, base: Path | None = None, source: str = "config") -> Path:
    """The database file of ``sqlite:///PATH``; a :class:`ConfigError` on ``state.url`` (in file
    ``source``) for anything else. A relative PATH is taken from ``base``, the runtime's home,
    and may not leave it (``sqlite:///../x.db`` is refused); an absolute PATH
    (``sqlite:////abs/x.db``) is the explicit way to keep the state elsewhere."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(Problem(source, "state.url", reason))

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise bad(f"{url!r} is not a database URL; expected sqlite:///PATH") from None
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise bad(f"{url!r} is not a SQLite URL; expected sqlite:///PATH")
    if parsed.host or parsed.username or parsed.password or parsed.port:
        raise bad(f"{url!r}: a SQLite URL has no host; expected sqlite:///PATH (sqlite:////abs/path for an"
                  " absolute path)")
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        raise bad(f"{url!r}: the state store needs a database file; expected sqlite:///PATH")
    if parsed.query:
        raise bad(f"{url!r}: query parameters are not supported; expected sqlite:///PATH")
    path = Path(parsed.database).expanduser()
    if path.is_absolute():
        return path
    home = (base or Path.cwd()).absolute()
    # Lexically, like the user reads it: "sub/../x.db" stays in the home, "../x.db" does not.
    resolved = Path(os.path.normpath(home / path))
    if base is not None and not resolved.is_relative_to(Path(os.path.normpath(home))):
        raise bad(f"{url!r}: the relative path {str(path)!r} leads out of the home folder {home} (to {resolved});"
                  " a relative path stays inside the home, use an absolute path (sqlite:////abs/path.db) for a"
                  " file elsewhere")
    return resolved


def open_store(url: str, *, base: Path | None = None, source: str = "config",
               path: Path | None = None) -> SqlStateStore:
    """Open (creating it and its folder if missing) the SQLite state store at ``url``, or at
    ``path`` when given (the default store in the home: a folder's name is not URL syntax, so a
    home such as ``/tmp/a?b`` or ``/tmp/100%41`` is used as it is written)."""
    path = path or parse_url(url, base=base, source=source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(Problem(source, "state.url", f"cannot create {path.parent}: {exc.strerror}")) from None
    checkpointer = WalCheckpointer(path)
    engine = make_engine(path, checkpointer)
    try:
        return SqlStateStore(url, engine, ownership=FileLock(path), notifier=DatagramNotifier(path),
                             maintenance=checkpointer, journal=RunJournal(path.with_name(path.name + ".finished-runs")))
    except DBAPIError as exc:
        engine.dispose()
        raise ConfigError(Problem(source, "state.url", f"cannot open {path}: {exc.orig}")) from None
    except BaseException:
        engine.dispose()
        raise


def make_engine(path: Path, checkpointer: WalCheckpointer | None = None) -> Engine:
    """An engine on the SQLite file ``path`` set up as the module docstring says."""
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (below), not the driver
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if checkpointer is not None and checkpointer.running:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine


# -- WAL checkpoints ---------------------------------------------------------------------------


class WalCheckpointer:
    """Checkpoints the WAL from a background thread while this process serves the store.

    By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages, which
    stalls the scheduler's loop for several milliseconds on every such commit. The owner turns
    that off on its own connections and checkpoints (PASSIVE: never waits for readers or
    writers) every :attr:`interval` seconds on a connection of its own; SQLite releases the GIL
    during the I/O, so the loop keeps running. Other processes (the CLI, workers) keep SQLite's
    automatic checkpoints.
    """

    interval = 0.25

    def __init__(self, path: Path) -> None:
        self.path = path
        self.running = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, engine: Engine) -> None:
        if self.running:
            return
        self.running = True
        self._stop.clear()
        engine.dispose()  # pooled connections were set up with automatic checkpoints
        self._thread = threading.Thread(target=self._run, name="tickloop-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import sqlite3

        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        except sqlite3.Error:
            log.exception("the WAL checkpointer cannot open %s; SQLite checkpoints on its own", self.path)
            self.running = False
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.warning("WAL checkpoint of %s failed; trying again", self.path, exc_info=True)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.running = False
