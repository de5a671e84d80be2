"""The scheduler's hot path: runs started and finished in group commits (the write side of the
``RunStore`` part of ``SqlStateStore``).

``start_runs`` records a group of runs as ``running`` in one transaction; ``finish_runs`` commits a
group's outcomes, log lines and the sessions' schedules after them in another. Between the two, a
run that finished is written ahead to the :class:`~tickloop_sql.journal.RunJournal`
(``record_finished``), so a crash before the group commit loses nothing: ``recover_interrupted``
replays it at the next start. The statements are built once, at import, and the hot path only
builds plain parameter dicts; on SQLite it executes the same statements compiled to driver SQL
with plain tuples (:class:`FastPath`), about 40 % cheaper.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, case, insert, or_, select, update

from tickloop.runs import FAILED, RUNNING, Run
from tickloop.sessions import State
from tickloop.store import RunFinish, RunStart
from tickloop_sql.connections import new_id
from tickloop_sql.journal import RunJournal
from tickloop_sql.runs import SqlRuns, run_record
from tickloop_sql.tables import run_logs, runs, sessions, storable_value, to_micros, utc

INTERRUPTED = "interrupted: the runtime stopped during this run"


class SqlRunWriter(SqlRuns):
    """Runs started and finished in groups, with the journal ahead of the group commit."""

    # insertmanyvalues: one multi-row INSERT ... RETURNING per page, ids matched to the parameter
    # sets (sort_by_parameter_order) on SQLite and PostgreSQL.
    _insert_runs = insert(runs).returning(runs.c.id, sort_by_parameter_order=True)
    _insert_run = insert(runs)
    _finish_run = update(runs).where(runs.c.id == bindparam("b_id"))
    _insert_logs = insert(run_logs)
    # A run's finish moves the schedule of a running or paused session only: an unwind or a stop
    # that happened while the run was in flight keeps its own next_run_at.
    _schedule_session = update(sessions).where(sessions.c.id == bindparam("b_id")).values(
        next_run_at=case((or_(sessions.c.state == State.RUNNING.value, sessions.c.state == State.PAUSED.value),
                          bindparam("b_next", type_=sessions.c.next_run_at.type)),
                         else_=sessions.c.next_run_at),
        last_scheduled_at=bindparam("b_scheduled", type_=sessions.c.last_scheduled_at.type),
        last_finished_at=bindparam("b_finished", type_=sessions.c.last_finished_at.type))

    _journal: RunJournal | None
    #: The SQLite fast path; None on other dialects.
    _fast: FastPath | None

    def start_runs(self, starts: Sequence[RunStart]) -> list[Run]:
        if not starts:
            return []
        fast = self._fast
        if fast is not None:
            rows = [(s.session_id, s.kind, to_micros(s.scheduled_at), to_micros(s.started_at), RUNNING) for s in starts]
            with self._writer.begin() as conn:
                first = fast.insert_runs(conn, rows)
            ids: Sequence[int] = range(first, first + len(starts))
        else:
            params = [{"session_id": s.session_id, "kind": s.kind, "scheduled_at": s.scheduled_at,
                       "started_at": s.started_at, "status": RUNNING} for s in starts]
            with self._writer.begin() as conn:
                if len(params) == 1:
                    ids = [new_id(conn.execute(self._insert_run, params[0]))]
                else:
                    ids = conn.execute(self._insert_runs, params).scalars().all()
        return [Run(run_id, s.session_id, s.kind, s.scheduled_at, s.started_at) for run_id, s in zip(ids, starts)]

    def finish_runs(self, finishes: Sequence[RunFinish]) -> None:
        if not finishes:
            return
        if self._fast is not None:
            self._finish_fast(self._fast, finishes)
        else:
            self._finish_core(finishes)
        if self._journal is not None:
            self._journal.committed({f.run_id for f in finishes})

    def _finish_fast(self, fast: FastPath, finishes: Sequence[RunFinish]) -> None:
        run_rows, session_rows, log_rows = [], [], []
        open_states = fast.open_states
        for f in finishes:
            finished = to_micros(f.finished_at)
            # Driver SQL skips the columns' bind processing: apply what tables.Text does.
            run_rows.append((finished, f.status, storable_value(f.error), storable_value(f.traceback), f.run_id))
            session_rows.append((*open_states, to_micros(f.next_run_at), to_micros(f.last_scheduled_at), finished,
                                 f.session_id))
            if f.logs:
                log_rows += [(f.run_id, f.session_id, seq, to_micros(line.at), line.level,
                              storable_value(line.message)) for seq, line in enumerate(f.logs)]
        with self._writer.begin() as conn:
            fast.finish(conn, run_rows, log_rows, session_rows)

    def _finish_core(self, finishes: Sequence[RunFinish]) -> None:
        run_rows = [{"b_id": f.run_id, "status": f.status, "finished_at": f.finished_at, "error": f.error,
                     "traceback": f.traceback} for f in finishes]
        session_rows = [{"b_id": f.session_id, "b_next": f.next_run_at, "b_scheduled": f.last_scheduled_at,
                         "b_finished": f.finished_at} for f in finishes]
        log_rows = [{"run_id": f.run_id, "session_id": f.session_id, "seq": seq, "at": line.at, "level": line.level,
                     "message": line.message}
                    for f in finishes if f.logs for seq, line in enumerate(f.logs)]
        with self._writer.begin() as conn:
            conn.execute(self._finish_run, run_rows)
            if log_rows:
                conn.execute(self._insert_logs, log_rows)
            conn.execute(self._schedule_session, session_rows)

    def record_finished(self, finish: RunFinish) -> None:
        if self._journal is not None:
            self._journal.append(finish)

    def recover_interrupted(self, *, at: datetime) -> list[Run]:
        at = utc(at)
        replayed: list[int] = []
        if self._journal is not None:
            # Runs that finished before the process died, but whose group was not committed yet.
            finished = self._journal.replay()
            if finished:
                with self.engine.connect() as conn:
                    still = set(conn.execute(select(runs.c.id).where(
                        runs.c.id.in_([f.run_id for f in finished]), runs.c.status == RUNNING)).scalars())
                finishes = [f for f in finished if f.run_id in still]
                self.finish_runs(finishes)
                replayed = [f.run_id for f in finishes]
            self._journal.clear()
        with self._writer.begin() as conn:
            rows = conn.execute(
                update(runs).where(runs.c.status == RUNNING)
                .values(status=FAILED, finished_at=at, error=INTERRUPTED)
                .returning(*runs.c)).all()
        recovered = [self.get_run(run_id) for run_id in replayed] + [run_record(row, ()) for row in rows]
        return sorted(recovered, key=lambda run: run.id)


class FastPath:
    """The scheduler's hot statements (``start_runs``, ``finish_runs``) as driver SQL on SQLite.

    The same Core statements, compiled once for the engine's dialect and executed with plain
    tuples (times converted as :class:`~tickloop_sql.tables.UtcMicros` does), which skips
    SQLAlchemy's per-row parameter processing: the statements are identical, only cheaper to
    feed. New run ids come from ``last_insert_rowid()``: the writing transaction holds SQLite's
    write lock (``BEGIN IMMEDIATE``) and ``runs`` is AUTOINCREMENT, so the rows of one
    ``executemany`` get consecutive ids ending there. Used only when every compiled statement
    takes its parameters in the order written here; otherwise (another dialect, a changed
    table) the store keeps the Core path.
    """

    def __init__(self, insert_runs: str, finish_run: str, schedule_session: str, insert_logs: str,
                 open_states: tuple[str, str]) -> None:
        self._insert_runs = insert_runs
        self._finish_run = finish_run
        self._schedule_session = schedule_session
        self._insert_logs = insert_logs
        self.open_states = open_states

    @classmethod
    def for_engine(cls, engine: Engine) -> FastPath | None:
        """The fast path for ``engine``, or None where the Core path must be used."""
        dialect = engine.dialect
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            return None
        insert_runs = insert(runs).values(session_id=bindparam("session_id"), kind=bindparam("kind"),
                                          scheduled_at=bindparam("scheduled_at"),
                                          started_at=bindparam("started_at"), status=bindparam("status"))
        finish = SqlRunWriter._finish_run.values(status=bindparam("status"), finished_at=bindparam("finished_at"),
                                   error=bindparam("error"), traceback=bindparam("traceback"))
        logs = insert(run_logs).values(run_id=bindparam("run_id"), session_id=bindparam("session_id"),
                                       seq=bindparam("seq"), at=bindparam("at"), level=bindparam("level"),
                                       message=bindparam("message"))
        expected = [
            (insert_runs, ["session_id", "kind", "scheduled_at", "started_at", "status"]),
            (finish, ["finished_at", "status", "error", "traceback", "b_id"]),
            (logs, ["run_id", "session_id", "seq", "at", "level", "message"]),
            (SqlRunWriter._schedule_session, ["state_1", "state_2", "b_next", "b_scheduled", "b_finished", "b_id"]),
        ]
        compiled = []
        for statement, order in expected:
            c = statement.compile(dialect=dialect)
            if list(c.positiontup or ()) != order:
                return None
            compiled.append(c)
        binds = compiled[3].binds
        open_states = (str(binds["state_1"].value), str(binds["state_2"].value))
        if sorted(open_states) != sorted((State.RUNNING.value, State.PAUSED.value)):
            return None
        return cls(compiled[0].string, compiled[1].string, compiled[3].string, compiled[2].string, open_states)

    def insert_runs(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        """Insert ``rows``; the id of the first (the others follow it)."""
        conn.exec_driver_sql(self._insert_runs, rows if len(rows) > 1 else rows[0])
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
        return last - len(rows) + 1

    def finish(self, conn: Any, run_rows: list[tuple[Any, ...]], log_rows: list[tuple[Any, ...]],
               session_rows: list[tuple[Any, ...]]) -> None:
        conn.exec_driver_sql(self._finish_run, run_rows)
        if log_rows:
            conn.exec_driver_sql(self._insert_logs, log_rows)
        conn.exec_driver_sql(self._schedule_session, session_rows)
