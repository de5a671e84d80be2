"""Suggestion decisions: what a person says about a manual-mode session's suggestions.

An approval executes the suggestion through the same venue path as auto mode, exactly once: the
store's ``decide`` lets one of two concurrent approvals through. After a closing suggestion of an
unwinding session executes, the closers check again (and stop the session once it is flat).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from tickloop.errors import TickloopError
from tickloop.intents import Owner
from tickloop.sessions import State
from tickloop.suggestions import APPROVED, EXECUTED, EXPIRED, FAILED, PENDING, REJECTED, Suggestion, refusal

if TYPE_CHECKING:
    from tickloop.bootstrap import Parts
    from tickloop.safekeeping import Safekeeping
    from tickloop.scheduler import Scheduler

log = logging.getLogger("tickloop")


class Decisions:
    """Listing, approving and rejecting suggestions."""

    def __init__(self, parts: Parts, scheduler: Scheduler) -> None:
        self.parts = parts
        self.scheduler = scheduler
        self.safekeeping: Safekeeping | None = None  # set by the runtime: the two ask each other

    def list(self, session_id: int | None = None, status: str | None = None, *, limit: int = 1000) -> list[Suggestion]:
        """Suggestions, newest first; ``status`` as of now (a pending one past its expiry is
        ``expired``)."""
        now = self.parts.clock.now()
        # A pending suggestion past its expiry reads expired; one an approval found expired is
        # stored expired.
        stored = None if status is None else [PENDING] if status == PENDING else \
            [PENDING, EXPIRED] if status == EXPIRED else [status]
        found = self.parts.gateway.suggestions.list(session_id=session_id, statuses=stored, limit=limit)
        shown = [attrs.evolve(s, status=s.effective_status(now)) for s in found]
        return [s for s in shown if status is None or s.status == status]

    def get(self, suggestion_id: int) -> Suggestion:
        found = self.parts.gateway.suggestions.get(suggestion_id)
        return attrs.evolve(found, status=found.effective_status(self.parts.clock.now()))

    def approve(self, suggestion_id: int, now: datetime | None = None) -> Suggestion:
        """Execute a pending suggestion exactly once; refused (naming the reason) when it expired,
        was deleted, rejected, or already approved or executed."""
        at = self.parts.clock.at(now)
        gateway = self.parts.gateway
        store = gateway.suggestions
        decided = store.decide(suggestion_id, APPROVED, at=at, by=str(Owner.current()))
        if decided is None:
            raise TickloopError(self._why_not(suggestion_id, at))
        session = self.parts.store.get_session(decided.session_id)
        try:
            execution = gateway.execute(session, decided.action, suggestion_id=suggestion_id)
        except Exception as exc:  # a venue bug: recorded as the suggestion's failure, never retried
            log.exception("executing suggestion %s failed", suggestion_id)
            result = store.finish(suggestion_id, FAILED, at=self.parts.clock.now(),
                                  error=f"{type(exc).__name__}: {exc}")
        else:
            from tickloop.jsondata import to_data

            result = store.finish(suggestion_id, EXECUTED if execution.ok else FAILED, at=self.parts.clock.now(),
                                  result=to_data(execution.data) if execution.ok else None, error=execution.error)
        self.parts.notify("tickloop_suggestion_decided", session=session, suggestion=result)
        self.continue_unwind(session.id)
        return result

    def _why_not(self, suggestion_id: int, at: datetime) -> str:
        """Why a suggestion the store would not approve cannot be approved (an expired one is
        recorded expired on the way)."""
        store = self.parts.gateway.suggestions
        current = store.get(suggestion_id)
        if current.status == APPROVED and self.safekeeping is not None:
            return self.safekeeping.stuck_approval(current, at)
        if current.effective_status(at) == EXPIRED and current.status == PENDING:
            expired = store.decide(suggestion_id, EXPIRED, at=at)
            if expired is not None:
                self.parts.notify("tickloop_suggestion_decided",
                                  session=self.parts.store.get_session(expired.session_id), suggestion=expired)
            current = expired or store.get(suggestion_id)
        return refusal(current, at)

    def reject(self, suggestion_id: int, now: datetime | None = None) -> Suggestion:
        """Reject a pending suggestion; it will never execute."""
        at = self.parts.clock.at(now)
        store = self.parts.gateway.suggestions
        decided = store.decide(suggestion_id, REJECTED, at=at)
        if decided is None:
            raise TickloopError(refusal(store.get(suggestion_id), at, verb="reject"))
        self.parts.notify("tickloop_suggestion_decided", session=self.parts.store.get_session(decided.session_id),
                          suggestion=decided)
        return decided

    def continue_unwind(self, session_id: int, *, run_here: bool = True) -> None:
        """After an approval: an unwinding session whose suggestions are all executed has its
        closers check again (they stop it once it is flat); ``run_here=False`` only schedules
        that close run (a serve that recovered an approval runs it in its loop)."""
        store = self.parts.store
        session = store.get_session(session_id)
        if session.state is not State.UNWINDING or session.next_run_at is not None:
            return
        decided = self.parts.gateway.suggestions.list(session_id=session_id, limit=1000)
        if any(s.status == PENDING for s in decided):
            return
        since = next((t.at for t in reversed(store.transitions(session_id)) if t.action == "unwind"), None)
        if any(s.status == REJECTED and since is not None and s.created_at >= since for s in decided):
            return  # a person said no: the session waits for a forced stop
        clock = self.parts.clock
        at = clock.now()
        updated = store.update_unwind(session_id, stage="close", next_run_at=at)
        if updated is None:
            return
        if run_here and self.scheduler.runs_here():
            with clock.pin(at if clock.injected else None):
                self.scheduler.run_here(updated, at)
