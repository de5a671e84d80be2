"""When runs happen: the :class:`Schedule` value object and pure functions over timezone-aware
datetimes (the rules are in :mod:`tickloop.schedule.series`)."""

from tickloop.schedule.cron import MAX_STEPS
from tickloop.schedule.fixed import fixed_cron_expression
from tickloop.schedule.instants import EPOCH, NEVER
from tickloop.schedule.model import KINDS, Kind, Schedule, ScheduleError, ScheduleKind
from tickloop.schedule.series import first_run, next_run, resume_at, upcoming, validate

__all__ = [
    "EPOCH",
    "KINDS",
    "MAX_STEPS",
    "NEVER",
    "Kind",
    "Schedule",
    "ScheduleError",
    "ScheduleKind",
    "first_run",
    "fixed_cron_expression",
    "next_run",
    "resume_at",
    "upcoming",
    "validate",
]
