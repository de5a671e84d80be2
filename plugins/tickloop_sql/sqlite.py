"""SQLite specifics of the state store: the engine, the owner lock and the change notification.

- **Engine**: WAL journal (readers never wait for the writer), ``synchronous=NORMAL`` (a commit
  survives the process being killed; only a power loss can lose the last commits, never corrupt
  the file), a busy timeout, foreign keys on. SQLAlchemy emits ``BEGIN`` itself (the sqlite3
  driver's legacy mode would run SELECTs outside the transaction), and ``BEGIN IMMEDIATE`` for
  writing connections, so a transaction that reads before it writes holds the write lock from
  the start and can never fail with a stale snapshot.
- **Owner**: an exclusive ``flock`` on ``<db>.lock`` held by the ``serve`` process. The kernel
  drops it when the process dies, however it dies, so a restart after ``kill -9`` just works.
- **Notification**: the owner binds a UNIX datagram socket (``<db>.sock``, or an abstract
  socket named from a hash of the path when that path is too long); every session change sends
  one datagram to it after commit. Nothing polls.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from tickloop.errors import ConfigError, Problem, StoreLockedError
from tickloop_sql.journal import RunJournal
from tickloop_sql.store import WRITE, SqlStateStore

log = logging.getLogger(__name__)

#: How long a statement waits for another connection's write lock before failing.
BUSY_TIMEOUT_SECONDS = 30.0
#: Longest filesystem path used for the socket (``sun_path`` holds 108 bytes with the NUL).
MAX_SOCKET_PATH = 100


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


def open_store(url: str, *, base: Path | None = None, source: str = "config", path: Path | None = None) -> SqlStateStore:
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


# -- ownership ---------------------------------------------------------------------------------


class FileLock:
    """Ownership of a store: an exclusive ``flock`` on ``<db>.lock`` holding the owner's pid."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self._fd is not None:
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._lock_or_explain(fd)
                os.ftruncate(fd, 0)
                started = datetime.now(timezone.utc).isoformat(timespec="seconds")
                os.pwrite(fd, f"{os.getpid()} {started}\n".encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd

    def _lock_or_explain(self, fd: int) -> None:
        # A holder whose pid is not (yet) in the file is someone probing with held_elsewhere(),
        # or an owner between taking the lock and writing its pid: give it a moment.
        deadline = time.monotonic() + 0.5
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pid = self._owner_pid()
                if (pid is not None and _alive(pid)) or time.monotonic() > deadline:
                    who = f" (pid {pid})" if pid is not None else ""
                    raise StoreLockedError(
                        f"another tickloop serve{who} owns {self.db_path}; stop it first") from None
                time.sleep(0.01)

    def _owner_pid(self) -> int | None:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        first = text.split(maxsplit=1)[0] if text.strip() else ""
        return int(first) if first.isdigit() else None

    def owned(self) -> bool:
        return self._fd is not None

    def held_elsewhere(self) -> bool:
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            # A shared probe: it conflicts with an owner's exclusive lock, and is dropped at once.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing the descriptor drops the flock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _nothing() -> None:
    pass


# -- change notification -----------------------------------------------------------------------


def socket_address(db_path: Path) -> str:
    """Where the owner of ``db_path`` listens: ``<db>.sock``, or an abstract name on Linux (a
    path in the temp folder elsewhere) when that path does not fit in a socket address."""
    candidate = str(db_path.with_name(db_path.name + ".sock"))
    if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(os.fsencode(os.path.realpath(db_path))).hexdigest()[:32]
    if sys.platform.startswith("linux"):
        return f"\0tickloop-{digest}"
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"tickloop-{digest}.sock")


class DatagramNotifier:
    """Session-change notification over a UNIX datagram socket (see the module docstring)."""

    def __init__(self, db_path: Path) -> None:
        self.address = socket_address(db_path)
        self._sender: socket.socket | None = None
        self._receiver: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._callback: Callable[[], None] = _nothing
        self._stopping = False
        self._closed = False
        self._lock = threading.Lock()

    def notify(self) -> None:
        try:
            sender = self._sender
            if sender is None:
                with self._lock:
                    if self._closed:
                        return
                    if self._sender is None:
                        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                        self._sender.setblocking(False)
                    sender = self._sender
            sender.sendto(b"s", self.address)
        except OSError:
            pass  # nobody listening (or its queue is full, so it is awake anyway): nothing to do

    def listen(self, callback: Callable[[], None]) -> None:
        """Start the listener thread; when it runs already, only the callback is replaced."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the state store is closed")
            self._callback = callback
            if self._thread is not None:
                return
            receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                self._bind(receiver)
            except BaseException:
                receiver.close()
                raise
            self._receiver = receiver
            self._stopping = False
            self._thread = threading.Thread(target=self._receive, args=(receiver,), name="tickloop-store-listener",
                                            daemon=True)
            self._thread.start()

    def _bind(self, receiver: socket.socket) -> None:
        try:
            receiver.bind(self.address)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            if self.address.startswith("\0"):  # abstract names vanish with their process: it is alive
                raise StoreLockedError(f"another process listens for changes to this store ({self.address[1:]})")
        # A socket file is left over, from an owner that died or one that is alive: only a
        # live one receives, so a send that is refused means the file is stale.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.setblocking(False)
            probe.sendto(b"", self.address)
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        except OSError:
            raise StoreLockedError(f"another process listens on {self.address}") from None
        else:
            raise StoreLockedError(f"another process listens on {self.address}")
        finally:
            probe.close()
        try:
            os.unlink(self.address)
        except FileNotFoundError:
            pass
        receiver.bind(self.address)

    def _receive(self, receiver: socket.socket) -> None:
        while True:
            try:
                receiver.recv(64)
            except OSError:
                return
            if self._stopping:
                return
            try:
                self._callback()
            except Exception:  # a broken callback must not stop the notifications
                log.exception("state store change callback failed")

    def close(self) -> None:
        with self._lock:
            thread, receiver = self._thread, self._receiver
            self._thread = self._receiver = None
            self._stopping = self._closed = True
            if thread is not None:
                # Wake the receiver thread (it sees _stopping); then it exits on its own.
                waker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    waker.setblocking(False)
                    waker.sendto(b"", receiver.getsockname() or self.address)
                except OSError:
                    pass
                finally:
                    waker.close()
                if thread is not threading.current_thread():  # close() may come from the callback
                    thread.join(timeout=5)
            if receiver is not None:
                receiver.close()
                if not self.address.startswith("\0"):
                    try:
                        os.unlink(self.address)
                    except OSError:
                        pass
            if self._sender is not None:
                self._sender.close()
                self._sender = None
