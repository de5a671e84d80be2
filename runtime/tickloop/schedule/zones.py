"""IANA time zones by name, for cron schedules: checked once, then kept."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tickloop.schedule.instants import UTC
from tickloop.schedule.model import ScheduleError

_ZONES: dict[str, tzinfo] = {}


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    if name in _ZONES:
        return True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def timezone_problem(name: Any) -> str | None:
    """Why a schedule cannot use ``name`` as its time zone, or None."""
    if not isinstance(name, str) or not name:
        return f"timezone must be an IANA name like 'Europe/Berlin', not {name!r}"
    if not is_timezone(name):
        return f"unknown timezone {name!r}"
    return None


def zone(name: str) -> tzinfo:
    """The time zone ``name``; ScheduleError when there is none of that name."""
    found = _ZONES.get(name)
    if found is None:
        reason = timezone_problem(name)
        if reason:
            raise ScheduleError(reason)
        found = UTC if name == "UTC" else ZoneInfo(name)
        _ZONES[name] = found
    return found
