"""Reading runs and their log lines (the read side of the ``RunStore`` part of ``SqlStateStore``;
:mod:`tickloop_sql.runwriter` writes them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from tickloop.errors import NotFoundError
from tickloop.runs import LogLine, Run
from tickloop_sql.connections import CHUNK, Connections
from tickloop_sql.tables import run_logs, runs


class SqlRuns(Connections):
    """Runs (newest first) and log lines (in the order logged)."""

    _q_run = select(runs).where(runs.c.id == bindparam("id"))
    _q_run_logs = (select(run_logs.c.at, run_logs.c.level, run_logs.c.message)
                   .where(run_logs.c.run_id == bindparam("run_id")).order_by(run_logs.c.id))
    _q_logs_of_runs = (select(run_logs.c.run_id, run_logs.c.at, run_logs.c.level, run_logs.c.message)
                       .where(run_logs.c.run_id.in_(bindparam("ids", expanding=True))).order_by(run_logs.c.id))

    def get_run(self, run_id: int) -> Run:
        with self.engine.connect() as conn:
            row = conn.execute(self._q_run, {"id": run_id}).first()
            if row is None:
                raise NotFoundError(f"run {run_id} does not exist")
            lines = tuple(LogLine(*line) for line in conn.execute(self._q_run_logs, {"run_id": run_id}))
        return run_record(row, lines)

    def runs(self, *, session_id: int | None = None, status: str | None = None, limit: int = 100,
             logs: bool = False) -> list[Run]:
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if session_id is not None:
            query = query.where(runs.c.session_id == session_id)
        if status is not None:
            query = query.where(runs.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            by_run: dict[int, list[LogLine]] = {}
            if logs and rows:
                ids = [row.id for row in rows]
                for start in range(0, len(ids), CHUNK):
                    for run_id, at, level, message in conn.execute(self._q_logs_of_runs,
                                                                   {"ids": ids[start:start + CHUNK]}):
                        by_run.setdefault(run_id, []).append(LogLine(at, level, message))
        return [run_record(row, tuple(by_run.get(row.id, ()))) for row in rows]

    def logs(self, *, session_id: int | None = None, run_id: int | None = None,
             limit: int = 1000, after: int | None = None) -> list[tuple[int, LogLine]]:
        lg = run_logs.c
        query = select(lg.run_id, lg.at, lg.level, lg.message, lg.id)
        if after is None:
            query = query.order_by(lg.id.desc()).limit(limit)
        else:
            query = query.where(lg.id > after).order_by(lg.id).limit(limit)
        if session_id is not None:
            query = query.where(lg.session_id == session_id)
        if run_id is not None:
            query = query.where(lg.run_id == run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        ordered = reversed(rows) if after is None else rows
        return [(row[0], LogLine(row[1], row[2], row[3], row[4])) for row in ordered]


def run_record(row: Any, lines: tuple[LogLine, ...]) -> Run:
    """The run a ``runs`` row holds, with its log lines."""
    return Run(id=row.id, session_id=row.session_id, kind=row.kind, scheduled_at=row.scheduled_at,
               started_at=row.started_at, finished_at=row.finished_at, status=row.status, error=row.error,
               traceback=row.traceback, logs=lines)
