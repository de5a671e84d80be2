"""When runs happen: pure functions over timezone-aware datetimes, exact to the second.

Nothing here reads a clock; callers pass ``now``. Every input datetime must be timezone-aware
(any zone); every result is a timezone-aware UTC datetime.

Kinds
-----
``rolling``
    The next run is due ``interval`` after the previous run *completed*
    (``finished_at + interval``). Runs can never overlap, so nothing is ever skipped.

``fixed``
    Runs sit on UTC clock boundaries. The run after one scheduled at ``scheduled_at`` that
    finished at ``finished_at`` is the first boundary ``b`` with ``b > scheduled_at`` and
    ``b >= finished_at``: boundaries that passed while a run was still going are skipped, and a
    run that finishes exactly on a boundary is followed by a run on that boundary. The
    boundaries of an interval are:

    ============================================  ==============================================
    interval                                      boundaries (all in UTC)
    ============================================  ==============================================
    divides a day exactly (15 s, 0.5 min, 7.5      the multiples of the interval since the Unix
    min, 15 min, 60 min, 90 min, 1440 min, ...)    epoch, i.e. aligned to every UTC midnight;
                                                   pure integer arithmetic (the fast path)
    whole minutes ``m < 60`` (7, 11, 25, ...)      cron ``*/m * * * *``: ``:00 :07 ... :56``, then
                                                   ``:00`` of the next hour (reset every hour)
    whole hours ``h < 24`` (5, 7, 9, ...)          cron ``0 */h * * *``: 00:00 05:00 ... 20:00,
                                                   then 00:00 of the next day (reset every day)
    whole days ``d`` (2, 3, ...)                   cron ``0 0 */d * *``: midnight of day-of-month
                                                   1, 1+d, 1+2d, ... (reset every month)
    anything else (100 min, 0.7 min, 25 h, ...)    every interval counted from each UTC midnight,
                                                   reset daily: 100 min gives 00:00 01:40 ...
                                                   23:20, then 00:00; an interval of a day or
                                                   more that is not whole days gives midnight
    ============================================  ==============================================

    The cron rows are evaluated with croniter in UTC (no DST). :func:`fixed_cron_expression`
    returns the expression used for an interval, or None when no croniter is involved.

``cron``
    Runs at the matches of a cron expression (5 fields, or 6 with seconds last, 7 with a year;
    ``@hourly``/``@daily``/... aliases) evaluated in an IANA ``timezone``. The next run is the
    first match ``b > scheduled_at`` with ``b >= finished_at``, like ``fixed``. DST rules:

    - a wall-clock time skipped by a spring-forward change fires once, at the first valid instant
      after the gap (``30 2 * * *`` in Europe/Berlin on 2025-03-30 fires at 03:00+02:00);
    - a wall-clock time repeated by a fall-back change fires once, on its first occurrence
      (``fold=0``), when the hour field is fixed (does not start with ``*``), like Debian cron;
      expressions with a wildcard hour (``*``, ``*/2``) fire on both occurrences
      (``0 * * * *`` fires at 02:00+02:00 and 02:00+01:00 in Europe/Berlin on 2025-10-26).

    Random ``R`` fields are refused (results must be reproducible); hashed ``H`` fields need a
    hash id, which a schedule does not have, so croniter refuses them.

Pause, resume and outages
-------------------------
:func:`resume_at` gives the next point at or after ``now`` of the series that went through
``anchor`` (the session's stored ``next_run_at``): rolling ``anchor + k * interval``; fixed and
cron the anchor while it is still ahead, else the first boundary/match at or after ``now``.
It never returns a point before ``now`` (no immediate catch-up). It serves resume after a pause
and the ``skip`` outage policy. The ``coalesce`` outage policy needs nothing here: a session
whose ``next_run_at <= now`` runs once, then :func:`next_run` continues from that run.

Every search loop is capped (:data:`MAX_STEPS`); hitting the cap raises :class:`ScheduleError`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tickloop.schedule.cron import cron_after, cron_problem
from tickloop.schedule.fixed import FIXED_PLANS, GRID, fixed_after, fixed_plan
from tickloop.schedule.instants import EPOCH, NEVER, US, UTC, require_aware
from tickloop.schedule.model import CRON, FIXED, KINDS, ROLLING, Schedule, ScheduleError
from tickloop.schedule.zones import timezone_problem


def first_run(schedule: Schedule, started_at: datetime) -> datetime:
    """The first run of a session is due immediately at its start."""
    require_aware(started_at, "started_at")
    return started_at.astimezone(UTC)


def next_run(schedule: Schedule, *, scheduled_at: datetime, finished_at: datetime) -> datetime:
    """The run after one that was scheduled at ``scheduled_at`` and completed at ``finished_at``.

    rolling: ``finished_at + interval``. fixed and cron: the first boundary/match ``b`` with
    ``b > scheduled_at`` and ``b >= finished_at`` (boundaries passed during the run are skipped).
    """
    try:
        kind = schedule.kind
        if kind == FIXED:
            plan = FIXED_PLANS.get(schedule.interval)
            if plan is None:
                plan = fixed_plan(schedule.interval)
            if plan[0] is GRID:
                # Fast path: multiples of the step since the epoch (the step divides a day), in exact
                # timedelta arithmetic (integer microseconds, all in C).
                step = plan[1]
                try:
                    b = ((scheduled_at - EPOCH) // step + 1) * step
                    f = finished_at - EPOCH
                except TypeError:
                    require_aware(scheduled_at, "scheduled_at")
                    require_aware(finished_at, "finished_at")
                    raise
                if f > b:
                    b = -(-f // step) * step
                return EPOCH + b
            if finished_at > scheduled_at:
                return fixed_after(plan, finished_at, inclusive=True)
            return fixed_after(plan, scheduled_at, inclusive=False)
        if kind == ROLLING:
            if finished_at.tzinfo is None:
                require_aware(finished_at, "finished_at")
            return (finished_at + _interval(schedule)).astimezone(UTC)
        if kind == CRON:
            require_aware(scheduled_at, "scheduled_at")
            require_aware(finished_at, "finished_at")
            if finished_at > scheduled_at:
                return cron_after(schedule, finished_at, inclusive=True)
            return cron_after(schedule, scheduled_at, inclusive=False)
        raise ScheduleError(_bad_kind(schedule))
    except OverflowError:  # past the year 9999: see NEVER
        return NEVER


def resume_at(schedule: Schedule, *, anchor: datetime, now: datetime) -> datetime:
    """The next scheduled point at or after ``now``, continuing the series through ``anchor``.

    rolling: the smallest ``anchor + k * interval`` (``k >= 0``) that is ``>= now``. fixed and
    cron: ``anchor`` if it is still ``>= now``, else the first boundary/match ``>= now``. Never
    earlier than ``now``: resuming (or restarting with the ``skip`` outage policy) does not
    catch up missed runs.
    """
    try:
        require_aware(anchor, "anchor")
        require_aware(now, "now")
        if anchor >= now:
            if schedule.kind not in KINDS:
                raise ScheduleError(_bad_kind(schedule))
            return anchor.astimezone(UTC)
        kind = schedule.kind
        if kind == ROLLING:
            step = _interval(schedule) // US
            k = -(-((now - anchor) // US) // step)
            return (anchor + timedelta(microseconds=k * step)).astimezone(UTC)
        if kind == FIXED:
            return fixed_after(fixed_plan(schedule.interval), now, inclusive=True)
        if kind == CRON:
            return cron_after(schedule, now, inclusive=True)
        raise ScheduleError(_bad_kind(schedule))
    except OverflowError:  # past the year 9999: see NEVER
        return NEVER


def upcoming(schedule: Schedule, *, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` scheduled points strictly after ``after`` (for display).

    fixed and cron: the next boundaries/matches. rolling: ``after + k * interval`` for
    ``k = 1..count`` (the real series depends on when runs finish).
    """
    require_aware(after, "after")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    kind = schedule.kind
    out: list[datetime] = []
    try:
        if kind == ROLLING:
            interval = _interval(schedule)
            start = after.astimezone(UTC)
            for k in range(1, count + 1):
                out.append(start + k * interval)
            return out
        if kind == FIXED:
            plan = fixed_plan(schedule.interval)
            t = after
            for _ in range(count):
                t = fixed_after(plan, t, inclusive=False)
                out.append(t)
            return out
        if kind == CRON:
            t = after
            for _ in range(count):
                t = cron_after(schedule, t, inclusive=False)
                out.append(t)
            return out
    except OverflowError:  # the points past the year 9999 are left out
        return out
    raise ScheduleError(_bad_kind(schedule))


def validate(schedule: Schedule) -> str | None:
    """Why ``schedule`` cannot be used, as one human sentence, or None when it is fine."""
    kind = schedule.kind
    if kind not in KINDS:
        return _bad_kind(schedule)
    reason = timezone_problem(schedule.timezone)
    if reason:
        return reason
    if kind in (ROLLING, FIXED):
        interval = schedule.interval
        if interval is None:
            return f"a {kind} schedule needs an interval"
        if not isinstance(interval, timedelta):
            return f"interval must be a timedelta, not {type(interval).__name__}"
        if interval <= timedelta(0):
            return "interval must be greater than 0"
        return None
    expr = schedule.cron
    if not isinstance(expr, str) or not expr.strip():
        return "a cron schedule needs a cron expression"
    reason = cron_problem(expr)
    if reason:
        return f"invalid cron expression '{expr}': {reason}"
    return None


# -- helpers ---------------------------------------------------------------------------------


def _bad_kind(schedule: Schedule) -> str:
    return f"unknown schedule kind {schedule.kind!r} (expected one of {', '.join(KINDS)})"


def _interval(schedule: Schedule) -> timedelta:
    interval = schedule.interval
    if interval is None or not isinstance(interval, timedelta) or interval <= timedelta(0):
        raise ScheduleError(validate(schedule) or "interval must be greater than 0")
    return interval


