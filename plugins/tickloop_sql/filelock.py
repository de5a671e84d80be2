"""The owner of a SQLite state store: an exclusive ``flock`` on ``<db>.lock`` held by the ``serve``
process, with its pid in the file. The kernel drops the lock when the process dies, however it
dies, so a restart after ``kill -9`` just works.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from tickloop.errors import StoreLockedError


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
                started = datetime.now(UTC).isoformat(timespec="seconds")
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
