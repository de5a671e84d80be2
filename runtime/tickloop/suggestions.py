"""Suggestions: actions a manual-mode session proposes and a person approves or rejects.

A suggestion holds the unsigned intent (an :class:`tickloop.actions.Action`), never a signed
transaction, so approving it signs and executes exactly once, then. Its status moves only
forward:

- ``pending`` → ``approved`` (a person approved it; it is executing) → ``executed`` | ``failed``
- ``pending`` → ``rejected`` | ``expired`` | ``deleted`` (soft-deleted: by the session's next
  run, by ``clear_suggested_transactions()``, or when the session ends)

Every change of status is a compare-and-set in the store, so two approvals racing (threads or
processes) give one execution and one refusal. A suggestion is never executed twice: one left
``approved`` by an approving process that died is settled by recovery (:mod:`tickloop.recovery`),
which asks the venue what became of its order (by the client id of its intent) and marks it
``executed`` or ``failed`` accordingly, or ``failed`` with "approved, nothing was sent".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import attrs

from tickloop.actions import Action


class SuggestionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    DELETED = "deleted"


PENDING, APPROVED, REJECTED, EXECUTED, FAILED, EXPIRED, DELETED = SuggestionStatus
STATUSES = tuple(SuggestionStatus)


@attrs.frozen
class Suggestion:
    """One suggestion and what became of it."""

    id: int
    session_id: int
    action: Action
    status: SuggestionStatus = attrs.field(converter=SuggestionStatus)
    created_at: datetime
    expires_at: datetime | None = None
    decided_at: datetime | None = None  # approved, rejected or expired
    deleted_at: datetime | None = None
    executed_at: datetime | None = None
    result: Any = None  # what the execution returned (the agent-facing data), or None
    error: str | None = None  # why the execution failed, or why it was refused
    #: the process that approved it (``str(tickloop.intents.Owner)``), None if unknown
    decided_by: str | None = None

    def effective_status(self, now: datetime) -> str:
        """The status as of ``now``: a pending suggestion past its expiry reads ``expired``."""
        if self.status == PENDING and self.expires_at is not None and self.expires_at <= now:
            return EXPIRED
        return self.status

    def details(self) -> dict[str, Any]:
        """The ``details`` of Circuit's ``{suggested, suggestionId, details}`` answer."""
        out = {"venue": self.action.venue, "method": self.action.method, "kind": self.action.kind,
               **self.action.params}
        if self.expires_at is not None:
            out["expiresAt"] = self.expires_at.isoformat()
        return out


def refusal(suggestion: Suggestion, now: datetime, verb: str = "approve") -> str:
    """Why ``suggestion`` cannot be approved (or rejected) at ``now``, in one sentence."""
    s = suggestion
    status = s.effective_status(now)
    when: datetime | None = {
        EXPIRED: s.expires_at or s.decided_at,
        DELETED: s.deleted_at,
        REJECTED: s.decided_at,
        EXECUTED: s.executed_at,
        FAILED: s.executed_at,
        APPROVED: s.decided_at,
    }.get(SuggestionStatus(status))
    at = f" at {when.isoformat()}" if when is not None else ""
    reasons: dict[str, str] = {
        EXPIRED: f"it expired{at}",
        DELETED: f"it was deleted{at} (a new run of session {s.session_id} started, the agent cleared its"
                 " suggestions, or the session ended)",
        REJECTED: f"it was rejected{at}",
        EXECUTED: f"it was already executed{at}",
        FAILED: f"it was already approved and its execution failed{at}: {s.error}",
        APPROVED: f"it was already approved{at}{_by(s.decided_by)} and is executing",
    }
    return f"cannot {verb} suggestion {s.id}: {reasons.get(status, f'it is {status}')}"


def _by(owner: str | None) -> str:
    from tickloop.intents import Owner

    found = Owner.parse(owner)
    return f" by {found.describe()}" if found is not None else ""


class SuggestionStore(Protocol):
    """What a suggestion store plugin provides (``tickloop_register_suggestion_stores``)."""

    def create(self, action: Action, *, at: datetime, expires_at: datetime | None) -> Suggestion:
        """Store a new ``pending`` suggestion for ``action.session_id``."""

    def get(self, suggestion_id: int) -> Suggestion:
        """The suggestion; :class:`tickloop.errors.NotFoundError` if there is none."""

    def list(self, *, session_id: int | None = None, statuses: Iterable[str] | None = None,
             limit: int = 1000) -> list[Suggestion]:
        """Suggestions, newest first, filtered by session and stored status."""

    def decide(self, suggestion_id: int, to: str, *, at: datetime, by: str | None = None) -> Suggestion | None:
        """Compare-and-set ``pending`` → ``to`` (``approved``, ``rejected`` or ``expired``) if the
        suggestion is pending, not deleted and (for ``approved``) not expired at ``at``; ``by``
        (the deciding process, ``str(tickloop.intents.Owner)``) is kept as ``decided_by``.

        Returns the updated suggestion, or None when it was not pending (nothing changed).
        """

    def finish(self, suggestion_id: int, to: str, *, at: datetime, result: Any = None,
               error: str | None = None) -> Suggestion:
        """Record the execution of an approved suggestion: ``executed`` or ``failed``."""

    def delete_pending(self, session_ids: Iterable[int], *, at: datetime) -> int:
        """Soft-delete every pending suggestion of these sessions (``deleted_at``); returns how many."""

    def count_pending(self, session_id: int) -> int:
        """How many suggestions of the session are pending (expired ones included)."""

    def close(self) -> None:
        """Release what the store holds (the built-in one shares the state store's engine)."""
