"""``RunJournal``: finished runs written ahead of their group commit.

``serve`` commits finished runs in groups (one transaction for many runs is what makes it fast),
but an agent whose run has finished must not run again, nor lose its log lines, because the
process died before the group's commit. So each finished run is appended to this file the moment
it finishes (a ``write`` of a few hundred bytes, which survives the process being killed), and
the file is emptied once every run in it is committed. At the next start, the owner replays the
runs the file holds that the database still shows ``running``, before it marks the others
interrupted.

A record is a 4-byte length, a 4-byte CRC-32 and a :class:`tickloop.store.RunFinish` as a
pickled tuple of plain values (times as integer microseconds). Plain values are what
:mod:`tickloop.untrusted` admits without naming a class (the file is in the home, which anything
running as the same user can write), and pickling them costs a fifth of pickling the records.
Replay stops at the first record that is cut short or damaged: the process died while writing
it, so that run was not finished as far as anyone was told.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tickloop.runs import LogLine, RunStatus
from tickloop.store import RunFinish
from tickloop.untrusted import UntrustedData, loads

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _micros(at: datetime | None) -> int | None:
    return None if at is None else (at - _EPOCH) // _US


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + micros * _US


def encode(finish: RunFinish) -> tuple[Any, ...]:
    """``finish`` as plain values."""
    return (finish.run_id, finish.session_id, str(finish.status), _micros(finish.finished_at), finish.error,
            finish.traceback, tuple((_micros(line.at), line.level, line.message) for line in finish.logs),
            _micros(finish.next_run_at), _micros(finish.last_scheduled_at))


def decode(values: Any) -> RunFinish:
    """The record :func:`encode` wrote; ValueError (or TypeError) for anything else."""
    run_id, session_id, status, finished_at, error, traceback, logs, next_run_at, last_scheduled_at = values
    if not (isinstance(run_id, int) and isinstance(session_id, int) and isinstance(finished_at, int)):
        raise ValueError("not a finished run")
    return RunFinish(run_id, session_id, RunStatus(status), _EPOCH + finished_at * _US, error, traceback,
                     tuple(LogLine(_EPOCH + at * _US, level, message) for at, level, message in logs),
                     next_run_at=_time(next_run_at), last_scheduled_at=_time(last_scheduled_at))

_HEADER = struct.Struct("<II")


class RunJournal:
    """An append-only file of finished runs not yet committed (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pending: set[int] = set()
        self._lock = threading.Lock()

    def append(self, finish: RunFinish) -> None:
        """Record ``finish``; it survives this process being killed from now on."""
        data = pickle.dumps(encode(finish), protocol=pickle.HIGHEST_PROTOCOL)
        record = _HEADER.pack(len(data), zlib.crc32(data)) + data
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(self._fd, record)
            self._pending.add(finish.run_id)

    def committed(self, run_ids: set[int]) -> None:
        """These runs are in the database now; the file is emptied when none is left pending."""
        with self._lock:
            if not self._pending:
                return
            self._pending -= run_ids
            if not self._pending and self._fd is not None:
                os.ftruncate(self._fd, 0)

    def replay(self) -> list[RunFinish]:
        """The records in the file, up to the first damaged one."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        found, offset = [], 0
        while offset + _HEADER.size <= len(data):
            size, crc = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size: offset + _HEADER.size + size]
            if len(body) < size or zlib.crc32(body) != crc:
                break
            try:
                finish = decode(loads(body))
            except (UntrustedData, ValueError, TypeError):
                break
            found.append(finish)
            offset += _HEADER.size + size
        return found

    def clear(self) -> None:
        """Empty the file (after a replay was committed)."""
        with self._lock:
            self._pending.clear()
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
            elif self.path.exists():
                with open(self.path, "r+b") as f:
                    f.truncate(0)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
