"""How fast the SQLite state store records runs: the scheduler's hot path.

For each batch size (1, 10, 100, 1000 runs) this records runs the way the serve loop does —
``start_runs(batch)`` (one transaction), then ``finish_runs(batch)`` (one transaction: each
run's outcome, its log lines and its session's schedule) — and reports runs per second through
both. For comparison it measures, in the same process and on the same disk, the plain
``sqlite3`` ``executemany`` insert rate of run-like rows (same pragmas, one commit per batch):
the ceiling for a single INSERT statement per row, with no update, no log lines and no
SQLAlchemy. Prints one JSON document.

    .venv/bin/python bench/store_speed.py [--runs 20000] [--logs 1] [--sessions 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy

from tickloop.runs import SUCCEEDED, LogLine
from tickloop.schedule import Schedule
from tickloop.store import NewSession, RunFinish, RunStart
from tickloop_sql.sqlite import BUSY_TIMEOUT_SECONDS, open_store

BATCHES = (1, 10, 100, 1000)
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def bench_store(folder: Path, batch: int, total: int, sessions: int, logs: int) -> dict[str, float]:
    store = open_store(f"sqlite:///{folder / f'store-{batch}.db'}")
    try:
        ids = [store.create_session(NewSession("bench", "bench", f"0x{i:040x}", "auto", Schedule.rolling(1),
                                               {}, None, T0, T0))[0].id for i in range(sessions)]
        step = timedelta(microseconds=1)
        batches = max(1, total // batch)
        started = time.perf_counter()
        n = 0
        for b in range(batches):
            at = T0 + step * (b * batch)
            starts = [RunStart(ids[(n + i) % sessions], "run", at, at) for i in range(batch)]
            runs = store.start_runs(starts)
            lines = tuple(LogLine(at, "info", f"tick {k}") for k in range(logs))
            store.finish_runs([RunFinish(run.id, run.session_id, SUCCEEDED, at, logs=lines, next_run_at=at + step,
                                         last_scheduled_at=at) for run in runs])
            n += batch
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return {"runs": n, "seconds": round(elapsed, 4), "runs_per_s": round(n / elapsed),
            "log_lines_per_s": round(n * logs / elapsed)}


def bench_raw_sqlite3(folder: Path, batch: int, total: int) -> dict[str, float]:
    conn = sqlite3.connect(folder / f"raw-{batch}.db", timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL,"
                     " kind TEXT NOT NULL, scheduled_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
                     " status TEXT NOT NULL, error TEXT, traceback TEXT)")
        batches = max(1, total // batch)
        micros = int(T0.timestamp()) * 1_000_000
        started = time.perf_counter()
        n = 0
        for _ in range(batches):
            rows = [(i % 100, "run", micros + n + i, micros + n + i, "running") for i in range(batch)]
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO runs (session_id, kind, scheduled_at, started_at, status)"
                             " VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            n += batch
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return {"rows": n, "seconds": round(elapsed, 4), "rows_per_s": round(n / elapsed)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs per batch size (default 20000)")
    parser.add_argument("--logs", type=int, default=1, help="log lines per run (default 1)")
    parser.add_argument("--sessions", type=int, default=1000,
                        help="sessions the runs belong to (default 1000: a batch never holds two runs of one session,"
                             " as in the serve loop)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database files (default: a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        results = []
        for batch in BATCHES:
            # Small batches are slow per run; fewer of them keep the whole benchmark short.
            total = args.runs if batch >= 100 else max(batch, args.runs // (10 if batch == 1 else 2))
            store = bench_store(folder, batch, total, args.sessions, args.logs)
            raw = bench_raw_sqlite3(folder, batch, total)
            results.append({"batch": batch, "store": store, "raw_sqlite3_executemany_insert": raw})
    print(json.dumps({
        "what": "runs/s through start_runs + finish_runs (SQLite store, durable commits, WAL,"
                " synchronous=NORMAL) vs raw sqlite3 executemany INSERT rows/s, same batch sizes",
        "log_lines_per_run": args.logs,
        "sessions": args.sessions,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
