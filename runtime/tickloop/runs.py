"""Runs: one execution of an agent's ``run`` or ``unwind``, with its outcome and log lines."""

from __future__ import annotations

from datetime import datetime

import attrs

RUNNING = "running"  # in flight; a run left running by a crash is marked failed on restart
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
SKIPPED = "skipped"

STATUSES = (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, SKIPPED)
FINAL_STATUSES = frozenset(STATUSES) - {RUNNING}

KINDS = ("run", "unwind", "close")  # close: the closers alone, after an unwind that could not run them


@attrs.frozen
class LogLine:
    """One line an agent logged with ``agent.log``."""

    at: datetime
    level: str  # "info" | "error" | "debug"
    message: str


@attrs.frozen
class Run:
    """One execution of an agent function for a session."""

    id: int
    session_id: int
    kind: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None = None
    status: str = RUNNING
    error: str | None = None
    traceback: str | None = None
    logs: tuple[LogLine, ...] = ()
