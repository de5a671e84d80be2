"""Instants as the schedule computes with them: timezone-aware datetimes, and integer microseconds
since the Unix epoch where exact arithmetic is needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000

#: The next run of a series whose next point lies past the last datetime Python represents
#: (the year 9999): the session is not run again unless its schedule changes. Manifests cannot
#: ask for such an interval (at most a year); this keeps a run's completion from failing on one.
NEVER = datetime.max.replace(tzinfo=UTC)


def require_aware(dt: datetime, name: str) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)
