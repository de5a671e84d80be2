"""When an agent runs, as ``circuit.toml`` says it: ``runtimeIntervalMinutes`` and ``schedule``
("rolling", "fixed", or beyond Circuit a table ``{cron = "...", timezone = "..."}``)."""

from __future__ import annotations

import difflib
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from tickloop import schedule as schedules
from tickloop.manifest.problems import Collector, got, show, unknown_key_reason
from tickloop.manifest.vocabulary import INTERVAL_MINUTES, SCHEDULE_KINDS, SCHEDULE_TABLE_KEYS
from tickloop.schedule import Schedule, ScheduleKind
from tickloop.schedule.zones import is_timezone

_SCHEDULE_SHAPE = 'must be "rolling", "fixed" or a table {cron = "...", timezone = "..."}'


def parse_interval(doc: Mapping[str, Any], out: Collector, missing: Callable[[str], None], *,
                   optional: bool) -> float | None:
    """``runtimeIntervalMinutes``; it may be left out (``optional``) when the schedule is cron."""
    key = "runtimeIntervalMinutes"
    if key not in doc:
        if not optional:
            missing(key)
        return None
    reason = INTERVAL_MINUTES.problem(doc[key])
    if reason is not None:
        out.add(key, reason)
        return None
    return doc[key]


def parse_schedule(value: Any, interval: float | None, out: Collector) -> Schedule | None:
    """The ``schedule`` key (``value``) with the interval; None when either has a problem."""
    if isinstance(value, str):
        if value not in SCHEDULE_KINDS:
            out.add("schedule", f"{_SCHEDULE_SHAPE}, got {show(value)}")
            return None
        if interval is None:
            return None
        schedule = Schedule.rolling(interval) if value == ScheduleKind.ROLLING else Schedule.fixed(interval)
    elif isinstance(value, dict):
        from_table = _cron_schedule(value, out)
        if from_table is None:
            return None
        schedule = from_table
    else:
        out.add("schedule", f"{_SCHEDULE_SHAPE}, {got(value)}")
        return None
    try:
        # Looked up on the package at call time: a test may put its own validator there.
        reason = schedules.validate(schedule)
    except Exception as exc:  # the validator is another module's; report, never crash a check
        reason = f"cannot be checked: {exc}"
    if reason:
        out.add("schedule", str(reason))
        return None
    return schedule


def _cron_schedule(value: dict[str, Any], out: Collector) -> Schedule | None:
    """The schedule of a ``schedule = {cron, timezone}`` table."""
    ok = True
    for key in value:
        if key not in SCHEDULE_TABLE_KEYS:
            out.add(f"schedule.{key}", unknown_key_reason(key, SCHEDULE_TABLE_KEYS, top_level=False))
            ok = False
    cron: Any = value.get("cron")
    if "cron" not in value:
        out.add("schedule.cron", 'required key is missing (a cron expression, like "0 9 * * 1-5")')
        ok = False
    elif not isinstance(cron, str):
        out.add("schedule.cron", f"must be a string, {got(cron)}")
        ok = False
    elif not _cron_is_valid(cron):
        out.add("schedule.cron", f'not a valid cron expression: {show(cron)} (five fields: minute hour '
                                 f'day-of-month month day-of-week, like "*/15 * * * *")')
        ok = False
    timezone = value.get("timezone", "UTC")
    if not isinstance(timezone, str):
        out.add("schedule.timezone", f"must be a string, {got(timezone)}")
        ok = False
    else:
        reason = _timezone_problem(timezone)
        if reason:
            out.add("schedule.timezone", reason)
            ok = False
    return Schedule.from_cron(cron, timezone) if ok else None


def _cron_is_valid(expression: str) -> bool:
    try:
        from croniter import croniter
    except ImportError:  # croniter is a dependency; without it, leave the check to the scheduler
        return True
    try:
        return bool(expression.strip()) and bool(croniter.is_valid(expression))
    except Exception:  # croniter raises many kinds for a bad expression
        return False


def _timezone_problem(name: str) -> str | None:
    if is_timezone(name):
        return None
    reason = f'unknown time zone {show(name)}; use an IANA name like "UTC" or "Europe/Berlin"'
    try:
        names = zoneinfo.available_timezones()
    except Exception:  # no zone list (no tzdata): no suggestion, the reason stands
        names = set()
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.75)
    if close:
        reason += f"; did you mean {show(by_lower[close[0]])}?"
    return reason
