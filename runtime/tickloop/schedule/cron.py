"""Cron matches with croniter: checking an expression, and the first match after an instant in a
time zone, with tickloop's DST rules (see :mod:`tickloop.schedule.series`)."""

from __future__ import annotations

import re
import threading
from datetime import datetime, tzinfo
from typing import Any

from tickloop.schedule import zones
from tickloop.schedule.instants import EPOCH, SECOND, UTC, from_us, require_aware, to_us
from tickloop.schedule.model import Schedule, ScheduleError

#: Upper bound on candidates examined by one search (cron matches, dropped DST repeats).
MAX_STEPS = 1000

_LOCAL = threading.local()  # per-thread croniter cache: croniter objects are stateful
_CRONITER_CACHE_MAX = 256
_RANDOM_PART = re.compile(r"^r(\(\d+-\d+\))?(/\d+)?$", re.ASCII)


def cron_problem(expr: str) -> str | None:
    """Why croniter cannot use ``expr`` in a schedule, or None."""
    from croniter import CroniterBadDateError, CroniterError, croniter

    for field in expr.lower().split():
        if any(_RANDOM_PART.match(part) for part in field.split(",")):
            return "random 'R' fields are not supported (runs must be reproducible)"
    try:
        it = croniter(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, TypeError, ValueError) as e:
        return str(e) or type(e).__name__
    try:
        it.get_next(datetime)
    except CroniterBadDateError:
        return "it never matches"
    return None


def _croniter(expr: str) -> Any:
    """A croniter for ``expr``, reused within the calling thread (construction costs ~3x a
    ``get_next``). Each thread has its own because croniter objects hold a position."""
    cache = getattr(_LOCAL, "cache", None)
    if cache is None:
        cache = _LOCAL.cache = {}
    entry = cache.get(expr)
    if entry is None:
        reason = cron_problem(expr)
        if reason:
            raise ScheduleError(f"invalid cron expression '{expr}': {reason}")
        from croniter import croniter

        it = croniter(expr, EPOCH)
        # Debian-cron rule: a fixed hour fires once on fall-back; a wildcard hour on both folds.
        wildcard_hour = it.expressions[1].startswith("*")
        entry = (it, wildcard_hour)
        if len(cache) >= _CRONITER_CACHE_MAX:
            cache.clear()
        cache[expr] = entry
    return entry


def cron_after(schedule: Schedule, t: datetime, *, inclusive: bool) -> datetime:
    """The first match of a cron schedule after ``t`` (at or after when ``inclusive``)."""
    expr = schedule.cron
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("a cron schedule needs a cron expression")
    _, wildcard_hour = _croniter(expr)
    return croniter_after(
        expr, zones.zone(schedule.timezone), t, inclusive=inclusive, once_on_fall_back=not wildcard_hour
    )


def croniter_after(
    expr: str, zone: tzinfo, t: datetime, *, inclusive: bool, once_on_fall_back: bool
) -> datetime:
    """The first match of ``expr`` in ``zone`` after ``t`` (at or after when ``inclusive``)."""
    from croniter import CroniterBadDateError

    require_aware(t, "time")
    it, _ = _croniter(expr)
    t = t.astimezone(UTC)
    # Matches are whole seconds: "at or after t" is "after t - 1 s" for a whole-second t, and
    # "after t" otherwise. This keeps croniter's float timestamps exact.
    start = t - SECOND if inclusive and t.microsecond == 0 else t
    for _ in range(MAX_STEPS):
        try:
            candidate = it.get_next(datetime, start_time=start.astimezone(zone))
        except CroniterBadDateError as e:
            reason = f"cron expression '{expr}' has no match after {t.isoformat()}"
            raise ScheduleError(reason) from e
        c = candidate.astimezone(UTC)
        if c <= start:  # never go backwards, whatever a DST edge case does
            start = start + SECOND
            continue
        if once_on_fall_back and c.astimezone(zone).fold == 1:
            # The second occurrence of a repeated wall time: skip the rest of the repeat.
            start = _end_of_repeat(zone, c) - SECOND
            continue
        if c < t or (c == t and not inclusive):
            start = c
            continue
        return c
    raise ScheduleError(
        f"cron expression '{expr}': no usable match after {t.isoformat()} within {MAX_STEPS} steps"
    )


def _end_of_repeat(zone: tzinfo, c: datetime) -> datetime:
    """The first instant after ``c`` (a UTC instant whose local time has fold=1) whose local
    time is no longer a repeat, to the second (bisection; a repeat lasts at most a day)."""
    lo = to_us(c) // 1_000_000  # fold=1 here
    hi = lo + 86_400
    if from_us(hi * 1_000_000).astimezone(zone).fold == 1:
        return from_us(hi * 1_000_000)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if from_us(mid * 1_000_000).astimezone(zone).fold == 1:
            lo = mid
        else:
            hi = mid
    return from_us(hi * 1_000_000)
