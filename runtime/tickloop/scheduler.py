"""The scheduler: which open session is due when, and running what is due.

Due times live in a heap with lazy deletion (an entry is live only while ``_due[session]`` is that
very datetime). ``tick(now)`` runs what is due at an injected ``now``; ``serve()`` (see
:mod:`tickloop.serving`) is the same machinery on the real clock. Runs are recorded as started in
one transaction per group and finished in another; each finished run is also made durable the
moment it finishes (the store's ``record_finished``), so a crash loses no finished run.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta

import attrs

from tickloop import schedule as schedules
from tickloop.bootstrap import Parts
from tickloop.clock import utc
from tickloop.errors import TickloopError
from tickloop.memory import session_scope
from tickloop.portfolio import Portfolio
from tickloop.runner import RunJob, RunOutcome
from tickloop.runs import FAILED, SKIPPED, Run, RunKind
from tickloop.sessions import Session, State
from tickloop.store import RunFinish, RunStart

# How long an unwinding session waits before its closers run again when they could not run.
CLOSE_RETRY = timedelta(seconds=60)
log = logging.getLogger("tickloop")

Pending = tuple[Run, Session, "Future[RunOutcome]"]
#: a finished run: its record, session, outcome and what the store is to commit for it
Completed = tuple[Run, Session, RunOutcome, RunFinish]
Submitted = Callable[[Run, Session, "Future[RunOutcome]"], None]


def _finished(run: Run, finished_at: datetime, outcome: RunOutcome) -> Run:
    """``run`` with its outcome. Built directly: attrs.evolve costs twice as much, which shows at
    thousands of runs a second."""
    return Run(id=run.id, session_id=run.session_id, kind=run.kind, scheduled_at=run.scheduled_at,
               started_at=run.started_at, finished_at=finished_at, status=outcome.status, error=outcome.error,
               traceback=outcome.traceback, logs=outcome.logs)


def _rescheduled(s: Session, next_run_at: datetime | None, scheduled_at: datetime, finished_at: datetime) -> Session:
    """``s`` after a run scheduled at ``scheduled_at`` finished at ``finished_at``."""
    return Session(id=s.id, agent=s.agent, agent_ref=s.agent_ref, wallet=s.wallet, mode=s.mode, state=s.state,
                   schedule=s.schedule, settings=s.settings, allocation=s.allocation, created_at=s.created_at,
                   next_run_at=next_run_at, last_scheduled_at=scheduled_at, last_finished_at=finished_at,
                   allocation_network=s.allocation_network, allocation_asset=s.allocation_asset)


def outcome_of(run: Run, future: Future[RunOutcome]) -> RunOutcome:
    """The executor's outcome; an executor that broke becomes a failed run, never a crashed loop."""
    try:
        return future.result()
    except Exception as exc:
        return RunOutcome(run.id, FAILED, error=f"executor failed: {type(exc).__name__}: {exc}")


class Scheduler:
    """Open sessions, their due times, and the dispatch and completion of their runs."""

    def __init__(self, parts: Parts, *, on_unwound: Callable[[int, datetime], None]) -> None:
        self.parts = parts
        self._on_unwound = on_unwound
        self._open: dict[int, Session] = {}
        self._due: dict[int, datetime] = {}
        self._heap: list[tuple[float, int, datetime]] = []
        self._inflight: set[int] = set()
        self._revision: int | None = None
        # Sessions with ledger entries (allocations, fills), up to ledger entry _ledger_mark: the
        # portfolio snapshot of a run reads the ledger only for these.
        self._ledger_mark = 0
        self._with_ledger: set[int] = set()
        self.wakeup = threading.Event()
        self.serving = False

    # -- what the runtime asks -----------------------------------------------------------------

    def runs_here(self) -> bool:
        """Whether this process runs what is due (another process's serve may own the store)."""
        if self.serving:
            return True
        owned = getattr(self.parts.store, "owned_by_other_process", None)
        return not (owned and owned())

    def changed(self, session: Session) -> None:
        """A session changed state: schedule it while it is open and not in flight."""
        if session.state in (State.RUNNING, State.UNWINDING) and session.id not in self._inflight:
            self._open[session.id] = session
            self.schedule(session.id, session.next_run_at)
        else:
            self._open.pop(session.id, None)
            self._due.pop(session.id, None)

    def run_here(self, session: Session, at: datetime) -> list[Run]:
        """Run ``session`` now (its unwind, or a cycle), out of its place in the schedule."""
        self.sync()
        self._due.pop(session.id, None)
        return self.run_sessions([session], at)

    def tick(self, now: datetime) -> list[Run]:
        """Run every session due at ``now`` (once each, however late) and return the finished runs."""
        at = utc(now)
        with self.parts.clock.pin(at):
            self.sync()
            return self.run_sessions(self.pop_due(at), at)

    def run_now(self, session_id: int, now: datetime | None) -> Run:
        """Run one cycle of a running session now, outside its schedule."""
        with self.parts.clock.pin(utc(now) if now is not None else None):
            at = self.parts.clock.now()
            self.sync()
            session = self._open.get(session_id) or self.parts.store.get_session(session_id)
            if session.state is not State.RUNNING:
                raise TickloopError(f"session {session_id} is {session.state}; only a running session can run")
            if session_id in self._inflight:
                raise TickloopError(f"session {session_id} is already running a cycle")
            self._due.pop(session_id, None)
            return self.run_sessions([attrs.evolve(session, next_run_at=at)], at)[-1]

    def next_due(self) -> datetime | None:
        """When the earliest scheduled run is due (None when nothing is scheduled)."""
        self.sync()
        while self._heap and self._due.get(self._heap[0][1]) is not self._heap[0][2]:
            heapq.heappop(self._heap)
        return self._heap[0][2] if self._heap else None

    # -- the schedule --------------------------------------------------------------------------

    def sync(self) -> None:
        """Reload open sessions when any process created or changed one since the last look."""
        store = self.parts.store
        revision = store.sessions_revision()
        if revision == self._revision:
            return
        self._open.clear()
        self._due.clear()
        self._heap.clear()
        held = store.holds()  # held by reconciliation: not run until resolved (unwinds still are)
        for session in store.list_sessions(states=(State.RUNNING, State.UNWINDING)):
            if session.id in held and session.state is State.RUNNING:
                continue
            self._open[session.id] = session
            # A session in flight is rescheduled when its run completes, not here.
            if session.next_run_at is not None and session.id not in self._inflight:
                self._due[session.id] = session.next_run_at
                self._heap.append((session.next_run_at.timestamp(), session.id, session.next_run_at))
        heapq.heapify(self._heap)
        self._revision = revision

    def schedule(self, session_id: int, at: datetime | None) -> None:
        if at is None:
            self._due.pop(session_id, None)
            return
        self._due[session_id] = at
        heapq.heappush(self._heap, (at.timestamp(), session_id, at))

    def forget(self, session_id: int) -> None:
        """Stop scheduling a session that waits (an unwind waiting for approvals)."""
        self._open.pop(session_id, None)
        self._due.pop(session_id, None)

    def pop_due(self, now: datetime, most: int | None = None) -> list[Session]:
        """The sessions due at ``now``, earliest first (at most ``most``), each with
        ``next_run_at`` set to the due time it was popped for."""
        limit = now.timestamp()
        heap, due_map, open_, found = self._heap, self._due, self._open, []
        heappop = heapq.heappop
        remaining = -1 if most is None else most
        while heap and heap[0][0] <= limit and remaining:
            _, session_id, at = heappop(heap)
            if due_map.get(session_id) is at:
                del due_map[session_id]
                session = open_[session_id]
                found.append(session if session.next_run_at == at else attrs.evolve(session, next_run_at=at))
                remaining -= 1
        return found

    # -- running -------------------------------------------------------------------------------

    def run_sessions(self, due: list[Session], at: datetime) -> list[Run]:
        """Run ``due`` now and wait for them: the skipped runs, then the finished ones."""
        pending, skipped = self.dispatch(due, at)
        outcomes = [(run, session, outcome_of(run, future)) for run, session, future in pending]
        finished_at = self.parts.clock.now()
        return skipped + self.complete([(run, session, outcome, self.finish(run, session, outcome, finished_at))
                                        for run, session, outcome in outcomes])

    def _starts(self, due: list[Session], now: datetime) -> tuple[list[RunStart], list[Session],
                                                                   list[tuple[RunStart, Session, datetime]]]:
        """The runs to start for ``due``, and those missed under ``missed_runs = "skip"``."""
        policy = self.parts.config.runtime.missed_runs
        grace = self.parts.config.runtime.misfire_grace_seconds
        starts: list[RunStart] = []
        sessions: list[Session] = []
        skipped: list[tuple[RunStart, Session, datetime]] = []
        for session in due:
            scheduled = session.next_run_at or now
            kind = RunKind.RUN if session.state is not State.UNWINDING else \
                RunKind.CLOSE if session.unwind_stage == "close" else RunKind.UNWIND
            if kind is RunKind.RUN and policy == "skip" and (now - scheduled).total_seconds() > grace:
                resume = schedules.resume_at(session.schedule, anchor=scheduled, now=now)
                skipped.append((RunStart(session.id, kind, scheduled, now), session, resume))
                if resume > now:
                    continue
                scheduled = resume
            starts.append(RunStart(session.id, kind, scheduled, now))
            sessions.append(session)
        return starts, sessions, skipped

    def _portfolios(self, runs: list[Run], now: datetime) -> dict[int, Portfolio]:
        """The portfolio snapshots of the sessions about to run that hold anything."""
        gateway = self.parts.gateway
        # Circuit's rule: a new run (or the unwind) discards the suggestions nobody approved.
        gateway.suggestions.delete_pending([r.session_id for r in runs if r.kind != RunKind.CLOSE], at=now)
        self._ledger_mark, fresh = self.parts.store.ledger_sessions(self._ledger_mark)
        self._with_ledger |= fresh
        with_ledger = self._with_ledger
        held = [r.session_id for r in runs if r.session_id in with_ledger]
        return gateway.portfolios(held) if held else {}

    def dispatch(self, due: list[Session], now: datetime,
                 submitted: Submitted | None = None) -> tuple[list[Pending], list[Run]]:
        """Record the due runs as started (one transaction) and hand them to the executor;
        ``submitted`` is called with each run's future as soon as it is submitted (an inline
        run has finished by then).

        Returns the runs in flight and the runs recorded as skipped (missed-run policy ``skip``).
        """
        if not due:
            return [], []
        starts, sessions, skipped = self._starts(due, now)
        skipped_runs = self._record_skipped(skipped, now) if skipped else []
        runs = self.parts.store.start_runs(starts) if starts else []
        portfolios = self._portfolios(runs, now) if runs else {}
        empty = Portfolio()
        pending: list[Pending] = []
        timeout = self.parts.config.runtime.run_timeout_seconds
        frozen = self.parts.clock.pinned
        submit = self.parts.executor.submit
        started = self.parts.pm.hook.tickloop_run_started
        for run, session in zip(runs, sessions):
            self._inflight.add(session.id)
            try:
                started(session=session, run=run)
            except Exception:
                log.exception("a plugin's tickloop_run_started failed; the run goes on")
            portfolio = portfolios.get(session.id, empty)
            if run.kind != RunKind.RUN:
                portfolio = portfolio.select(session.unwind_assets)
            job = RunJob(run_id=run.id, session_id=session.id, agent=session.agent, agent_ref=session.agent_ref,
                         wallet=session.wallet, mode=session.mode, kind=run.kind, settings=session.settings,
                         scheduled_at=run.scheduled_at, started_at=now, portfolio=portfolio, frozen_now=frozen,
                         timeout=timeout, session=session)
            future = submit(job)
            if submitted is not None:
                submitted(run, session, future)
            pending.append((run, session, future))
        return pending, skipped_runs

    def _record_skipped(self, skipped: list[tuple[RunStart, Session, datetime]], now: datetime) -> list[Run]:
        store = self.parts.store
        runs = store.start_runs([start for start, _, _ in skipped])
        finishes = []
        for run, (_, session, resume) in zip(runs, skipped):
            finishes.append(RunFinish(run.id, session.id, SKIPPED, now, error="missed while the runtime was down"
                                      f" (runtime.missed_runs = \"skip\"); next run {resume.isoformat()}",
                                      next_run_at=resume, last_scheduled_at=run.scheduled_at))
        store.finish_runs(finishes)
        recorded = []
        for run, finish, (_, session, resume) in zip(runs, finishes, skipped):
            if resume > now:
                self.schedule(session.id, resume)
            done = attrs.evolve(run, status=SKIPPED, finished_at=now, error=finish.error)
            self.parts.notify("tickloop_run_missed", session=session, scheduled_at=run.scheduled_at, policy="skip")
            self.parts.notify("tickloop_run_finished", session=session, run=done)
            recorded.append(done)
        return recorded

    def finish(self, run: Run, session: Session, outcome: RunOutcome, finished_at: datetime) -> RunFinish:
        """What the store commits for ``run``: its outcome and the session's next run time."""
        after = schedules.next_run(session.schedule, scheduled_at=run.scheduled_at, finished_at=finished_at) \
            if run.kind == RunKind.RUN else None
        return RunFinish(run.id, session.id, outcome.status, finished_at, outcome.error, outcome.traceback,
                         outcome.logs, next_run_at=after, last_scheduled_at=run.scheduled_at)

    def complete(self, items: list[Completed]) -> list[Run]:
        """Commit the outcomes and the sessions' next run times (one transaction), then reschedule."""
        if not items:
            return []
        self.parts.store.finish_runs([finish for _, _, _, finish in items])
        finished: list[Run] = []
        unwound: list[tuple[Session, RunOutcome, datetime]] = []
        ended: list[int] = []
        open_, inflight, schedule = self._open, self._inflight, self.schedule
        run_finished = self.parts.pm.hook.tickloop_run_finished
        running, unwinding, run_kind = State.RUNNING, State.UNWINDING, RunKind.RUN
        for run, session, outcome, finish in items:
            session_id = session.id
            inflight.discard(session_id)
            done = _finished(run, finish.finished_at, outcome)
            current = open_.get(session_id)
            if run.kind != run_kind:
                unwound.append((session, outcome, finish.finished_at))
            elif current is not None and current.state is running:
                current = _rescheduled(current, finish.next_run_at, run.scheduled_at, finish.finished_at)
                open_[session_id] = current
                schedule(session_id, finish.next_run_at)
            elif current is not None and current.state is unwinding:
                schedule(session_id, current.next_run_at)  # unwound while this run was in flight
            elif current is None:
                ended.append(session_id)  # paused or stopped while this run was in flight
            try:
                run_finished(session=current or session, run=done)
            except Exception:
                log.exception("a plugin's tickloop_run_finished failed; the runtime goes on")
            finished.append(done)
        for session_id in ended:
            # The stop cleared the session's memory before this run's last writes: clear again.
            if self.parts.store.get_session(session_id).state is State.STOPPED:
                self.parts.memory.clear(session_scope(session_id))
        for session, outcome, at in unwound:
            self._after_unwind(session, outcome, at)
        return finished

    def _after_unwind(self, session: Session, outcome: RunOutcome, at: datetime) -> None:
        """An unwind (or close) run finished: stop the session, or wait for what is not done."""
        store = self.parts.store
        if not outcome.closed:
            # The agent's unwind hung or crashed before the closers ran: run them on their own,
            # at once; closers that themselves could not run are tried again after a pause.
            retry = at if session.unwind_stage != "close" else at + CLOSE_RETRY
            if store.update_unwind(session.id, stage="close", next_run_at=retry) is not None:
                self.schedule(session.id, retry)
            return
        if self.parts.gateway.suggestions.count_pending(session.id):
            # Manual mode: the closers' orders wait for approval; the session stays unwinding
            # until they are executed (then the closers check again) or it is stopped.
            store.update_unwind(session.id, stage="close", next_run_at=None)
            self.forget(session.id)
            return
        self._on_unwound(session.id, at)
