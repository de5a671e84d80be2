"""Runs: one execution of an agent's ``run`` or ``unwind``, with its outcome and log lines."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class RunStatus(enum.StrEnum):
    RUNNING = "running"  # in flight; a run left running by a crash is marked failed on restart
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"


class RunKind(enum.StrEnum):
    RUN = "run"
    UNWIND = "unwind"
    CLOSE = "close"  # the closers alone, after an unwind that could not run them


RUNNING, SUCCEEDED, FAILED, TIMED_OUT, SKIPPED = RunStatus


# Converters that skip the enum lookup for a member: a run record is built several times per run,
# thousands of times a second.
def _status(value: RunStatus | str) -> RunStatus:
    return value if value.__class__ is RunStatus else RunStatus(value)


def _kind(value: RunKind | str) -> RunKind:
    return value if value.__class__ is RunKind else RunKind(value)


STATUSES = tuple(RunStatus)
KINDS = tuple(RunKind)


@attrs.frozen
class LogLine:
    """One line an agent logged with ``agent.log``."""

    at: datetime
    level: str  # "info" | "error" | "debug"
    message: str
    #: the store's id of the line (None until stored); ``Runtime.logs(after=id)`` pages on it
    id: int | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Run:
    """One execution of an agent function for a session."""

    id: int
    session_id: int
    kind: RunKind = attrs.field(converter=_kind)
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None = None
    status: RunStatus = attrs.field(default=RunStatus.RUNNING, converter=_status)
    error: str | None = None
    traceback: str | None = None
    logs: tuple[LogLine, ...] = ()


#: The globals of this module a run's record may hold when it crosses a process or a file, for
#: :func:`tickloop.untrusted.loads` (the enums are safe: calling one gives a member or ValueError).
RECORDS = frozenset({("tickloop.runs", "LogLine"), ("tickloop.runs", "RunStatus"), ("tickloop.runs", "RunKind")})
