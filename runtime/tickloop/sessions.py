"""Sessions and their lifecycle: the states, the transition table, and the records."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from tickloop.errors import TransitionError
from tickloop.schedule import Schedule


class State(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    UNWINDING = "unwinding"
    STOPPED = "stopped"


S = State

#: (action, from state) -> to state. Anything not listed is refused.
TRANSITIONS: dict[tuple[str, State], State] = {
    ("start", S.CREATED): S.RUNNING,
    ("pause", S.RUNNING): S.PAUSED,
    ("resume", S.PAUSED): S.RUNNING,
    ("stop", S.RUNNING): S.STOPPED,
    ("stop", S.PAUSED): S.STOPPED,
    # A forced stop ends an unwind that cannot finish (e.g. suggestions nobody approves).
    ("stop", S.UNWINDING): S.STOPPED,
    ("unwind", S.RUNNING): S.UNWINDING,
    ("unwind", S.PAUSED): S.UNWINDING,
    ("unwound", S.UNWINDING): S.STOPPED,
}

ACTIONS = tuple(sorted({action for action, _ in TRANSITIONS}))

#: States in which a session is open: it holds its allocation and its session memory.
OPEN_STATES = frozenset({S.CREATED, S.RUNNING, S.PAUSED, S.UNWINDING})


def target_state(session_id: int, action: str, current: State) -> State:
    """The state ``action`` leads to from ``current``, or a :class:`TransitionError` saying why not."""
    try:
        return TRANSITIONS[(action, current)]
    except KeyError:
        pass
    if action not in ACTIONS:
        raise TransitionError(f"session {session_id}: unknown action {action!r} (known: {', '.join(ACTIONS)})")
    allowed = sorted(str(frm) for act, frm in TRANSITIONS if act == action)
    raise TransitionError(
        f"session {session_id}: cannot {action} a session that is {current}"
        f" ({action} needs a session that is {' or '.join(allowed)})"
    )


def _state(value: State | str) -> State:
    return State(value)


@attrs.frozen
class Transition:
    """One recorded lifecycle change: the audit trail of a session."""

    session_id: int
    action: str
    from_state: State = attrs.field(converter=_state)
    to_state: State = attrs.field(converter=_state)
    at: datetime
    reason: str = ""


@attrs.frozen
class Session:
    """One agent on one wallet with a mode, settings, an allocation and a schedule."""

    id: int
    agent: str  # the manifest name
    agent_ref: str  # what loads it: an entry-point name or an absolute folder path
    wallet: str
    mode: str
    state: State = attrs.field(converter=_state)
    schedule: Schedule
    settings: dict[str, Any] = attrs.field(factory=dict, hash=False)
    allocation: str | None = None
    created_at: datetime | None = None
    next_run_at: datetime | None = None
    last_scheduled_at: datetime | None = None
    last_finished_at: datetime | None = None
    # The starting asset the allocation is drawn from.
    allocation_network: str | None = None
    allocation_asset: str | None = None
    # While unwinding: "agent" (its unwind function is due) or "close" (only the closers).
    unwind_stage: str | None = None
    unwind_assets: tuple[str, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@attrs.frozen
class Hold:
    """A session the scheduler does not run until its ledger and the venues agree again.

    Set by reconciliation (:mod:`tickloop.reconcile`) when a venue holds something the
    session's ledger does not (or the reverse); the session keeps its state. Released by
    ``tickloop reconcile adopt|close`` or by a later reconciliation that finds no difference.
    """

    session_id: int
    reason: str
    since: datetime
