"""The run journal: finished runs written ahead of their group commit, read back exactly, and
nothing but plain data accepted from the file."""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tickloop.runs import FAILED, SUCCEEDED, LogLine
from tickloop.store import RunFinish
from tickloop_sql.journal import RunJournal

T = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _finishes() -> list[RunFinish]:
    lines = (LogLine(T, "info", "héllo \udcff"), LogLine(T + timedelta(microseconds=1), "error", "boom\nline 2"))
    return [RunFinish(7, 3, SUCCEEDED, T, logs=lines, next_run_at=T + timedelta(seconds=60), last_scheduled_at=T),
            RunFinish(8, 4, FAILED, T + timedelta(seconds=1), "ValueError: x", "Traceback ...")]


def test_a_finished_run_reads_back_equal(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path / "j")
    for finish in _finishes():
        journal.append(finish)
    replayed = RunJournal(tmp_path / "j").replay()
    assert replayed == _finishes()
    assert [type(f.status).__name__ for f in replayed] == ["RunStatus", "RunStatus"]
    assert replayed[0].logs[0].at.tzinfo == UTC
    journal.committed({7, 8})
    assert RunJournal(tmp_path / "j").replay() == []


def test_replay_stops_at_a_damaged_or_foreign_record(tmp_path: Path) -> None:
    journal = RunJournal(tmp_path / "j")
    journal.append(_finishes()[0])
    journal.close()

    def add(data: bytes) -> None:
        with open(tmp_path / "j", "ab") as f:
            f.write(struct.pack("<II", len(data), zlib.crc32(data)) + data)

    add(pickle.dumps(os.system))  # a class or function is never loaded from the file
    add(pickle.dumps((9, 5, "succeeded", 0, None, None, (), None, None)))  # behind a bad one: not read
    add(pickle.dumps(("not", "a", "run")))
    assert RunJournal(tmp_path / "j").replay() == [_finishes()[0]]
    (tmp_path / "j").write_bytes((tmp_path / "j").read_bytes()[:20])  # cut short by a kill
    assert RunJournal(tmp_path / "j").replay() == []
