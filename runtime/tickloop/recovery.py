"""Recovery: settling what a dead process left half done, by asking the venue.

Two things can be left behind by a process killed while it traded:

- an **intent** still ``sending`` (:mod:`tickloop.intents`): the order may have been placed,
  filled, or never sent. The venue is asked by the intent's client id (``lookup``); what filled
  is booked to the intent's session and the intent ends ``executed``, what the venue never saw
  ends ``failed`` with the reason. The booking and the intent's end are one transaction that
  only applies while the intent is ``sending``, so it happens once, whoever recovers it. A venue
  that cannot be reached leaves the intent for the next attempt.
- a **suggestion** left ``approved`` by a killed approver: it becomes ``executed`` or ``failed``
  as its intent did, or ``failed`` with "approved, nothing was sent" when no intent was
  recorded. Never stuck.

Only work whose owner is dead is touched (host, pid and start time; see
:class:`tickloop.intents.Owner`); an owner on another host cannot be judged and is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from tickloop.actions import Execution
from tickloop.intents import EXECUTED, FAILED, SENDING, Found, Intent, Owner
from tickloop.suggestions import APPROVED, Suggestion
from tickloop.suggestions import EXECUTED as SUGGESTION_EXECUTED
from tickloop.suggestions import FAILED as SUGGESTION_FAILED

if TYPE_CHECKING:
    from tickloop.venues import Gateway

log = logging.getLogger("tickloop")

#: An approval recorded without its process (by a tickloop before 0.1's intents) is taken as
#: abandoned once it is this old.
LEGACY_GRACE = timedelta(minutes=10)


@attrs.frozen
class Recovered:
    """What recovery did with one intent or suggestion."""

    session_id: int
    status: str  # executed | failed | pending (the venue could not be asked; tried again later)
    detail: str
    intent_id: int | None = None
    suggestion_id: int | None = None

    def describe(self) -> str:
        what = f"intent {self.intent_id}" if self.intent_id is not None else f"suggestion {self.suggestion_id}"
        if self.intent_id is not None and self.suggestion_id is not None:
            what += f" (suggestion {self.suggestion_id})"
        return f"{what} of session {self.session_id}: {self.status}: {self.detail}"


@attrs.frozen
class RecoveryReport:
    intents: tuple[Recovered, ...] = ()
    suggestions: tuple[Recovered, ...] = ()

    @property
    def pending(self) -> tuple[Recovered, ...]:
        return tuple(r for r in self.intents + self.suggestions if r.status == "pending")

    def __bool__(self) -> bool:
        return bool(self.intents or self.suggestions)


def is_dead(owner: str | None, since: datetime | None, now: datetime) -> bool:
    """Whether the process recorded as ``owner`` is gone (False when it cannot be told)."""
    found = Owner.parse(owner)
    if found is None:
        return since is not None and now - since > LEGACY_GRACE
    return found.alive() is False


def recover(gateway: Gateway, *, session_ids: Iterable[int] | None = None,
            suggestion_ids: Iterable[int] | None = None) -> RecoveryReport:
    """Settle the intents and approved suggestions of dead processes (all, or those of these
    sessions, or these suggestions)."""
    now = gateway.clock()
    sessions = set(session_ids) if session_ids is not None else None
    wanted = set(suggestion_ids) if suggestion_ids is not None else None
    done = []
    for intent in gateway.store.intents(status=SENDING, limit=100_000):
        if sessions is not None and intent.session_id not in sessions:
            continue
        if wanted is not None and intent.suggestion_id not in wanted:
            continue
        if is_dead(intent.owner, intent.created_at, now):
            done.append(recover_intent(gateway, intent))
    settled = []
    for suggestion in gateway.suggestions.list(statuses=[APPROVED], limit=100_000):
        if sessions is not None and suggestion.session_id not in sessions:
            continue
        if wanted is not None and suggestion.id not in wanted:
            continue
        if is_dead(suggestion.decided_by, suggestion.decided_at, now):
            found = settle_suggestion(gateway, suggestion)
            if found is not None:
                settled.append(found)
    return RecoveryReport(tuple(done), tuple(settled))


def recover_intent(gateway: Gateway, intent: Intent) -> Recovered:
    """Ask the venue what became of ``intent`` and book it (once)."""
    owner = intent.owner_process
    died = f"{owner.describe() if owner else 'its process'} stopped while sending it"
    venue = gateway.venues.get(intent.venue)
    lookup = getattr(venue, "lookup", None) if venue is not None else None
    if venue is None:
        execution = Execution.failed(f"{died}, and no {intent.venue} venue is installed to ask what became of it")
    elif lookup is None:
        execution = Execution.failed(f"{died}; the {intent.venue} venue cannot be asked by client id, so whether it"
                                     " executed is unknown: tickloop reconcile compares the account with the ledgers")
    else:
        wallet = gateway.store.get_wallet(intent.wallet)
        try:
            found = lookup(intent.action, wallet, intent.client_id)
        except Exception as exc:
            log.info("cannot ask %s about %s: %s", intent.venue, intent.describe(), exc)
            return Recovered(intent.session_id, "pending", f"{died}; the venue could not be asked: {exc}",
                             intent.id, intent.suggestion_id)
        if found.found is Found.NOT_FOUND:
            execution = Execution.failed(f"{died}; {intent.venue} never received it (client id {intent.client_id})")
        elif found.found is Found.UNKNOWN:
            execution = Execution.failed(f"{died}; {found.reason}")
        else:
            execution = found.execution
    if not gateway.settle(intent, execution):
        return Recovered(intent.session_id, "pending", "settled by another process meanwhile", intent.id,
                         intent.suggestion_id)
    session = gateway.store.get_session(intent.session_id)
    gateway.notify("tickloop_action_executed", session=session, action=intent.action, execution=execution)
    status = EXECUTED if execution.ok else FAILED
    booked = f"booked {len(execution.fills)} fill(s)" + (f", {len(execution.order_ids)} resting order(s)"
                                                           if execution.order_ids else "")
    detail = booked if execution.ok else (execution.error or "failed") + (f"; {booked}" if execution.fills else "")
    log.info("recovered %s: %s", intent.describe(), detail)
    return Recovered(intent.session_id, status, detail, intent.id, intent.suggestion_id)


def settle_suggestion(gateway: Gateway, suggestion: Suggestion) -> Recovered | None:
    """End a suggestion its dead approver left ``approved``, as its intent ended (None: its
    intent is still waiting for the venue, so the suggestion stays approved for now)."""
    store = gateway.suggestions
    found = gateway.store.intents(suggestion_id=suggestion.id)
    owner = Owner.parse(suggestion.decided_by)
    who = owner.describe() if owner else "the approving process"
    at = gateway.clock()
    if not found:
        error = f"approved, nothing was sent: {who} stopped before sending it"
        result = _finish(store, suggestion.id, SUGGESTION_FAILED, at, error=error)
    else:
        intent = found[-1]
        if intent.status == SENDING:
            return Recovered(suggestion.session_id, "pending", f"its order ({intent.describe()}) is not settled yet",
                             intent.id, suggestion.id)
        if intent.status == EXECUTED:
            result = _finish(store, suggestion.id, SUGGESTION_EXECUTED, at, result=intent.result)
        else:
            result = _finish(store, suggestion.id, SUGGESTION_FAILED, at, error=intent.error)
    if result is None:
        return None  # another process finished it meanwhile
    gateway.notify("tickloop_suggestion_decided", session=gateway.store.get_session(result.session_id),
                    suggestion=result)
    log.info("recovered suggestion %s left approved by %s: %s", suggestion.id, who, result.status)
    return Recovered(result.session_id, result.status, result.error or "executed", None, result.id)


def _finish(store: Any, suggestion_id: int, to: str, at: datetime, *, result: Any = None,
            error: str | None = None) -> Suggestion | None:
    from tickloop.errors import NotFoundError

    try:
        return store.finish(suggestion_id, to, at=at, result=result, error=error)
    except NotFoundError:  # no longer approved: settled elsewhere
        return None
