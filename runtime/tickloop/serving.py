"""``serve``: the scheduler on the real clock, owning the store until told to stop.

It sleeps until the next due time; a completed run, a session changed by another process
(``tickloop sessions pause`` ...) or a stop request wakes it at once.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from typing import TYPE_CHECKING

from tickloop.runner import RunOutcome
from tickloop.runs import Run
from tickloop.scheduler import Completed, Scheduler, outcome_of
from tickloop.sessions import Session

if TYPE_CHECKING:
    from tickloop.safekeeping import Safekeeping

# How long serve() sleeps at most when nothing is scheduled; a change or a completion wakes it.
IDLE_WAIT = 3600.0
# Most runs serve() dispatches in one loop iteration (their starts are one transaction, their
# finishes another). More are due when many sessions share a due time (sessions started
# together, fixed schedules); dispatching them in groups bounds the lateness a group adds to the
# runs behind it, and gives each group its own completion time, so rolling sessions started in
# one burst spread out instead of staying due at the same instant forever.
SERVE_BATCH = 128
# How long a stopping serve() waits for runs in flight before the executor abandons them.
SHUTDOWN_GRACE = 10.0
log = logging.getLogger("tickloop")


class _Flight:
    """The runs in flight, and those that finished and wait for their group's commit."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.running: set[Future[RunOutcome]] = set()
        self.done: queue.SimpleQueue[tuple[Future[RunOutcome], Completed]] = queue.SimpleQueue()
        # Each run is made durable the moment it finishes (an inline run before the next one
        # starts), ahead of its group's commit: a crash loses no finished run.
        self.record = getattr(scheduler.parts.store, "record_finished", None)

    def submitted(self, run: Run, session: Session, future: Future[RunOutcome]) -> None:
        scheduler = self.scheduler

        def callback(done: Future[RunOutcome]) -> None:
            outcome = outcome_of(run, done)
            finish = scheduler.finish(run, session, outcome, scheduler.parts.clock.now())
            if self.record is not None:
                try:
                    self.record(finish)
                except Exception:  # the group commit still records it
                    log.exception("recording run %s ahead of its commit failed", run.id)
            self.done.put((done, (run, session, outcome, finish)))
            scheduler.wakeup.set()

        self.running.add(future)
        future.add_done_callback(callback)

    def finished(self, wait: float | None = None) -> list[Completed]:
        """The runs finished since the last call (waiting up to ``wait`` for the first one)."""
        batch: list[Completed] = []
        while True:
            try:
                future, item = self.done.get(timeout=wait) if wait is not None else self.done.get_nowait()
            except queue.Empty:
                return batch
            wait = None
            self.running.discard(future)
            batch.append(item)

    def drain(self) -> list[Completed]:
        """Stopping: let the runs in flight finish (within a grace), so none is left "running"."""
        if self.running and futures.wait(set(self.running), timeout=SHUTDOWN_GRACE).not_done:
            self.scheduler.parts.executor.close()  # resolves what is left as failed ("executor closed")
            futures.wait(set(self.running), timeout=SHUTDOWN_GRACE)
        batch = self.finished()
        while self.running:  # a future's callback queues it just after the future is done
            more = self.finished(wait=SHUTDOWN_GRACE)
            if not more:
                break
            batch += more
        return batch


def serve(scheduler: Scheduler, safekeeping: Safekeeping, *, stop: threading.Event | None = None,
          ready: Callable[[], None] | None = None) -> None:
    """Run sessions on the real clock until ``stop`` is set; owns the store meanwhile."""
    stop = stop or threading.Event()
    parts = scheduler.parts
    parts.store.acquire_owner()
    scheduler.serving = True
    try:
        for run in parts.store.recover_interrupted(at=parts.clock.now()):
            parts.notify("tickloop_run_finished", session=parts.store.get_session(run.session_id), run=run)
        safekeeping.start()  # before any dispatch: a re-run sees the fills recovery booked
        parts.store.listen(scheduler.wakeup.set)
        # Objects alive after start-up live as long as serve: keeping them out of the collector's
        # full passes shortens those pauses (15-20 ms -> about 2 ms at 5,000 sessions).
        gc.freeze()
        if ready is not None:
            ready()
        flight = _Flight(scheduler)
        while not stop.is_set():
            scheduler.wakeup.clear()
            scheduler.sync()
            until_recovery = safekeeping.check()  # work dead processes left, every interval
            now = parts.clock.now()
            scheduler.dispatch(scheduler.pop_due(now, SERVE_BATCH), now, flight.submitted)
            batch = flight.finished()
            if batch:
                scheduler.complete(batch)
                continue
            upcoming = scheduler.next_due()
            wait = IDLE_WAIT if upcoming is None else (upcoming - parts.clock.source()).total_seconds()
            wait = min(wait, until_recovery)
            if wait > 0:
                scheduler.wakeup.wait(min(wait, IDLE_WAIT))
        scheduler.complete(flight.drain())
    finally:
        scheduler.serving = False
