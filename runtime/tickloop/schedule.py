"""When runs happen: pure functions over timezone-aware datetimes, exact to the second.

Nothing here reads a clock; callers pass ``now``. All results are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import attrs

Kind = Literal["rolling", "fixed", "cron"]


@attrs.frozen
class Schedule:
    """How a session's runs are spaced.

    ``rolling``: the next run is ``interval`` after the previous run completed.
    ``fixed``: runs sit on UTC clock boundaries every ``interval`` (15 min -> :00 :15 :30 :45).
    ``cron``: runs at the matches of ``cron`` evaluated in ``timezone``.
    """

    kind: Kind
    interval: timedelta | None = None
    cron: str | None = None
    timezone: str = "UTC"

    @classmethod
    def rolling(cls, minutes: float) -> Schedule:
        return cls("rolling", interval=timedelta(minutes=minutes))

    @classmethod
    def fixed(cls, minutes: float) -> Schedule:
        return cls("fixed", interval=timedelta(minutes=minutes))

    @classmethod
    def from_cron(cls, expression: str, timezone: str = "UTC") -> Schedule:
        return cls("cron", cron=expression, timezone=timezone)


def first_run(schedule: Schedule, started_at: datetime) -> datetime:
    """The first run of a session is due immediately at its start."""
    raise NotImplementedError


def next_run(schedule: Schedule, *, scheduled_at: datetime, finished_at: datetime) -> datetime:
    """The run after one that was scheduled at ``scheduled_at`` and completed at ``finished_at``."""
    raise NotImplementedError


def resume_at(schedule: Schedule, *, anchor: datetime, now: datetime) -> datetime:
    """The next scheduled point at or after ``now``, continuing the series through ``anchor``."""
    raise NotImplementedError
