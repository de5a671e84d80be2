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

import re
import threading
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from tickloop.errors import TickloopError

Kind = Literal["rolling", "fixed", "cron"]
KINDS: tuple[str, ...] = ("rolling", "fixed", "cron")

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_DAY_US = 86_400_000_000
_MINUTE_US = 60_000_000
_HOUR_US = 3_600_000_000

#: Upper bound on candidates examined by one search (cron matches, dropped DST repeats).
MAX_STEPS = 1000

#: The next run of a series whose next point lies past the last datetime Python represents
#: (the year 9999): the session is not run again unless its schedule changes. Manifests cannot
#: ask for such an interval (at most a year); this keeps a run's completion from failing on one.
NEVER = datetime.max.replace(tzinfo=UTC)


class ScheduleError(TickloopError, ValueError):
    """A schedule that cannot be evaluated (see :func:`validate` for the reasons)."""


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
        return cls("rolling", interval=_delta(minutes=minutes))

    @classmethod
    def fixed(cls, minutes: float) -> Schedule:
        return cls("fixed", interval=_delta(minutes=minutes))

    @classmethod
    def from_cron(cls, expression: str, timezone: str = "UTC") -> Schedule:
        return cls("cron", cron=expression, timezone=timezone)

    # -- storage -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: ``{"kind", "interval_seconds", "cron", "timezone"}``."""
        return {
            "kind": self.kind,
            "interval_seconds": None if self.interval is None else self.interval.total_seconds(),
            "cron": self.cron,
            "timezone": self.timezone,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        """The inverse of :meth:`to_dict`. Checks the shape only; use :func:`validate` for the
        meaning (a stored schedule is loaded as it was stored)."""
        if not isinstance(d, dict):
            raise ScheduleError(f"schedule must be a mapping, not {type(d).__name__}")
        kind = d.get("kind")
        if kind not in KINDS:
            raise ScheduleError(f"unknown schedule kind {kind!r} (expected {', '.join(KINDS)})")
        seconds = d.get("interval_seconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float))
        ):
            raise ScheduleError(f"interval_seconds must be a number, not {seconds!r}")
        expr = d.get("cron")
        if expr is not None and not isinstance(expr, str):
            raise ScheduleError(f"cron must be a string, not {expr!r}")
        tz = d.get("timezone", "UTC")
        if tz is None:
            tz = "UTC"
        if not isinstance(tz, str):
            raise ScheduleError(f"timezone must be a string, not {tz!r}")
        interval = None if seconds is None else _delta(seconds=seconds)
        return cls(kind, interval=interval, cron=expr, timezone=tz)

    # -- display -----------------------------------------------------------------------------

    def describe(self) -> str:
        """A short human text, e.g. ``every 15 min after completion``."""
        if self.kind == "rolling":
            return f"every {_format_interval(self.interval)} after completion"
        if self.kind == "fixed":
            return f"every {_format_interval(self.interval)} on the clock (UTC)"
        if self.kind == "cron":
            return f"cron '{self.cron}' in {self.timezone}"
        return f"unknown schedule kind {self.kind!r}"


def _delta(**amount: float) -> timedelta:
    try:
        return timedelta(**amount)
    except OverflowError:
        (unit, value), = amount.items()
        raise ScheduleError(f"an interval of {value!r} {unit} is out of range") from None


def _format_interval(interval: timedelta | None) -> str:
    if interval is None:
        return "? min"
    us = interval // _US
    if us % _MINUTE_US == 0 or us >= _MINUTE_US:
        return f"{us / _MINUTE_US:g} min"
    return f"{us / 1_000_000:g} s"


# -- public functions ------------------------------------------------------------------------


def first_run(schedule: Schedule, started_at: datetime) -> datetime:
    """The first run of a session is due immediately at its start."""
    _require_aware(started_at, "started_at")
    return started_at.astimezone(UTC)


def next_run(schedule: Schedule, *, scheduled_at: datetime, finished_at: datetime) -> datetime:
    """The run after one that was scheduled at ``scheduled_at`` and completed at ``finished_at``.

    rolling: ``finished_at + interval``. fixed and cron: the first boundary/match ``b`` with
    ``b > scheduled_at`` and ``b >= finished_at`` (boundaries passed during the run are skipped).
    """
    try:
        kind = schedule.kind
        if kind == "fixed":
            plan = _FIXED_PLANS.get(schedule.interval)
            if plan is None:
                plan = _fixed_plan(schedule.interval)
            if plan[0] is _GRID:
                # Fast path: multiples of the step since the epoch (the step divides a day), in exact
                # timedelta arithmetic (integer microseconds, all in C).
                step = plan[1]
                try:
                    b = ((scheduled_at - EPOCH) // step + 1) * step
                    f = finished_at - EPOCH
                except TypeError:
                    _require_aware(scheduled_at, "scheduled_at")
                    _require_aware(finished_at, "finished_at")
                    raise
                if f > b:
                    b = -(-f // step) * step
                return EPOCH + b
            if finished_at > scheduled_at:
                return _fixed_after(plan, finished_at, inclusive=True)
            return _fixed_after(plan, scheduled_at, inclusive=False)
        if kind == "rolling":
            if finished_at.tzinfo is None:
                _require_aware(finished_at, "finished_at")
            return (finished_at + _interval(schedule)).astimezone(UTC)
        if kind == "cron":
            _require_aware(scheduled_at, "scheduled_at")
            _require_aware(finished_at, "finished_at")
            if finished_at > scheduled_at:
                return _cron_after(schedule, finished_at, inclusive=True)
            return _cron_after(schedule, scheduled_at, inclusive=False)
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
        _require_aware(anchor, "anchor")
        _require_aware(now, "now")
        if anchor >= now:
            if schedule.kind not in KINDS:
                raise ScheduleError(_bad_kind(schedule))
            return anchor.astimezone(UTC)
        kind = schedule.kind
        if kind == "rolling":
            step = _interval(schedule) // _US
            k = -(-((now - anchor) // _US) // step)
            return (anchor + timedelta(microseconds=k * step)).astimezone(UTC)
        if kind == "fixed":
            return _fixed_after(_fixed_plan(schedule.interval), now, inclusive=True)
        if kind == "cron":
            return _cron_after(schedule, now, inclusive=True)
        raise ScheduleError(_bad_kind(schedule))
    except OverflowError:  # past the year 9999: see NEVER
        return NEVER


def upcoming(schedule: Schedule, *, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` scheduled points strictly after ``after`` (for display).

    fixed and cron: the next boundaries/matches. rolling: ``after + k * interval`` for
    ``k = 1..count`` (the real series depends on when runs finish).
    """
    _require_aware(after, "after")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    kind = schedule.kind
    out: list[datetime] = []
    try:
        if kind == "rolling":
            interval = _interval(schedule)
            start = after.astimezone(UTC)
            for k in range(1, count + 1):
                out.append(start + k * interval)
            return out
        if kind == "fixed":
            plan = _fixed_plan(schedule.interval)
            t = after
            for _ in range(count):
                t = _fixed_after(plan, t, inclusive=False)
                out.append(t)
            return out
        if kind == "cron":
            t = after
            for _ in range(count):
                t = _cron_after(schedule, t, inclusive=False)
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
    reason = _check_timezone(schedule.timezone)
    if reason:
        return reason
    if kind in ("rolling", "fixed"):
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
    reason = _check_cron(expr)
    if reason:
        return f"invalid cron expression '{expr}': {reason}"
    return None


def fixed_cron_expression(interval: timedelta) -> str | None:
    """The cron expression (evaluated in UTC) that gives the boundaries of a ``fixed`` schedule
    with this interval, or None when they are computed arithmetically (see the module doc)."""
    plan = _fixed_plan(interval)
    return plan[1] if plan[0] is _CRON else None


# -- helpers ---------------------------------------------------------------------------------


def _require_aware(dt: datetime, name: str) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")


def _bad_kind(schedule: Schedule) -> str:
    return f"unknown schedule kind {schedule.kind!r} (expected one of {', '.join(KINDS)})"


def _interval(schedule: Schedule) -> timedelta:
    interval = schedule.interval
    if interval is None or not isinstance(interval, timedelta) or interval <= timedelta(0):
        raise ScheduleError(validate(schedule) or "interval must be greater than 0")
    return interval


def _to_us(dt: datetime) -> int:
    return (dt - EPOCH) // _US


def _from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


# -- fixed -----------------------------------------------------------------------------------

_GRID = "grid"  # multiples of the step since the epoch; (GRID, step timedelta)
_CRON = "cron"  # croniter in UTC; (CRON, expression)
_DAILY = "daily"  # every step_us from each UTC midnight; (DAILY, step_us)

_FIXED_PLANS: dict[timedelta, tuple[str, Any]] = {}


def _fixed_plan(interval: timedelta | None) -> tuple[str, Any]:
    """How boundaries are computed for a fixed interval; cached per interval."""
    plan = _FIXED_PLANS.get(interval)  # type: ignore[arg-type]
    if plan is not None:
        return plan
    if interval is None or not isinstance(interval, timedelta) or interval <= timedelta(0):
        raise ScheduleError("a fixed schedule needs an interval greater than 0")
    us = interval // _US
    if _DAY_US % us == 0:
        plan = (_GRID, interval)
    elif us % _MINUTE_US == 0 and us < _HOUR_US:
        plan = (_CRON, f"*/{us // _MINUTE_US} * * * *")
    elif us % _HOUR_US == 0 and us < _DAY_US:
        plan = (_CRON, f"0 */{us // _HOUR_US} * * *")
    elif us % _DAY_US == 0:
        plan = (_CRON, f"0 0 */{us // _DAY_US} * *")
    else:
        plan = (_DAILY, us)
    if len(_FIXED_PLANS) > 4096:
        _FIXED_PLANS.clear()
    _FIXED_PLANS[interval] = plan
    return plan


def _fixed_after(plan: tuple[str, Any], t: datetime, *, inclusive: bool) -> datetime:
    """The first boundary after ``t`` (or at ``t`` when ``inclusive``)."""
    mode, arg = plan
    if mode is _CRON:
        return _croniter_after(arg, UTC, t, inclusive=inclusive, once_on_fall_back=False)
    _require_aware(t, "time")
    if mode is _GRID:
        step = arg  # a timedelta
        d = t - EPOCH
        return EPOCH + (-(-d // step) * step if inclusive else (d // step + 1) * step)
    x = _to_us(t)
    step = arg  # _DAILY: integer microseconds
    day, off = divmod(x, _DAY_US)
    k = -(-off // step) if inclusive else off // step + 1
    within = k * step
    if within >= _DAY_US:
        return _from_us((day + 1) * _DAY_US)
    return _from_us(day * _DAY_US + within)


# -- cron ------------------------------------------------------------------------------------

_ZONES: dict[str, tzinfo] = {}
_LOCAL = threading.local()  # per-thread croniter cache: croniter objects are stateful
_CRONITER_CACHE_MAX = 256
_RANDOM_PART = re.compile(r"^r(\(\d+-\d+\))?(/\d+)?$", re.ASCII)


def _zone(name: str) -> tzinfo:
    zone = _ZONES.get(name)
    if zone is None:
        reason = _check_timezone(name)
        if reason:
            raise ScheduleError(reason)
        zone = UTC if name == "UTC" else ZoneInfo(name)
        _ZONES[name] = zone
    return zone


def _check_timezone(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return f"timezone must be an IANA name like 'Europe/Berlin', not {name!r}"
    if name in _ZONES:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown timezone {name!r}"
    return None


def _check_cron(expr: str) -> str | None:
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
        reason = _check_cron(expr)
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


def _cron_after(schedule: Schedule, t: datetime, *, inclusive: bool) -> datetime:
    expr = schedule.cron
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("a cron schedule needs a cron expression")
    _, wildcard_hour = _croniter(expr)
    return _croniter_after(
        expr, _zone(schedule.timezone), t, inclusive=inclusive, once_on_fall_back=not wildcard_hour
    )


def _croniter_after(
    expr: str, zone: tzinfo, t: datetime, *, inclusive: bool, once_on_fall_back: bool
) -> datetime:
    """The first match of ``expr`` in ``zone`` after ``t`` (at or after when ``inclusive``)."""
    from croniter import CroniterBadDateError

    _require_aware(t, "time")
    it, _ = _croniter(expr)
    t = t.astimezone(UTC)
    # Matches are whole seconds: "at or after t" is "after t - 1 s" for a whole-second t, and
    # "after t" otherwise. This keeps croniter's float timestamps exact.
    start = t - _SECOND if inclusive and t.microsecond == 0 else t
    for _ in range(MAX_STEPS):
        try:
            candidate = it.get_next(datetime, start_time=start.astimezone(zone))
        except CroniterBadDateError as e:
            reason = f"cron expression '{expr}' has no match after {t.isoformat()}"
            raise ScheduleError(reason) from e
        c = candidate.astimezone(UTC)
        if c <= start:  # never go backwards, whatever a DST edge case does
            start = start + _SECOND
            continue
        if once_on_fall_back and c.astimezone(zone).fold == 1:
            # The second occurrence of a repeated wall time: skip the rest of the repeat.
            start = _end_of_repeat(zone, c) - _SECOND
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
    lo = _to_us(c) // 1_000_000  # fold=1 here
    hi = lo + 86_400
    if _from_us(hi * 1_000_000).astimezone(zone).fold == 1:
        return _from_us(hi * 1_000_000)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _from_us(mid * 1_000_000).astimezone(zone).fold == 1:
            lo = mid
        else:
            hi = mid
    return _from_us(hi * 1_000_000)


__all__ = [
    "EPOCH",
    "KINDS",
    "MAX_STEPS",
    "NEVER",
    "Kind",
    "Schedule",
    "ScheduleError",
    "first_run",
    "fixed_cron_expression",
    "next_run",
    "resume_at",
    "upcoming",
    "validate",
]
