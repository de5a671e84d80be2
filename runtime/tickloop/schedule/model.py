"""The Schedule value object: its kinds, its named constructors, its stored form and its text."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any

import attrs

from tickloop.errors import TickloopError
from tickloop.schedule.instants import MINUTE_US, US


class ScheduleKind(enum.StrEnum):
    ROLLING = "rolling"
    FIXED = "fixed"
    CRON = "cron"


ROLLING, FIXED, CRON = ScheduleKind
KINDS: tuple[ScheduleKind, ...] = tuple(ScheduleKind)
Kind = ScheduleKind


class ScheduleError(TickloopError, ValueError):
    """A schedule that cannot be evaluated (see :func:`validate` for the reasons)."""


@attrs.frozen
class Schedule:
    """How a session's runs are spaced.

    ``rolling``: the next run is ``interval`` after the previous run completed.
    ``fixed``: runs sit on UTC clock boundaries every ``interval`` (15 min -> :00 :15 :30 :45).
    ``cron``: runs at the matches of ``cron`` evaluated in ``timezone``.
    """

    kind: ScheduleKind
    interval: timedelta | None = None
    cron: str | None = None
    timezone: str = "UTC"

    @classmethod
    def rolling(cls, minutes: float) -> Schedule:
        return cls(ROLLING, interval=delta(minutes=minutes))

    @classmethod
    def fixed(cls, minutes: float) -> Schedule:
        return cls(FIXED, interval=delta(minutes=minutes))

    @classmethod
    def from_cron(cls, expression: str, timezone: str = "UTC") -> Schedule:
        return cls(CRON, cron=expression, timezone=timezone)

    # -- storage -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: ``{"kind", "interval_seconds", "cron", "timezone"}``."""
        return {
            "kind": str(self.kind),  # plain data: the enum's value
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
        interval = None if seconds is None else delta(seconds=seconds)
        return cls(ScheduleKind(kind), interval=interval, cron=expr, timezone=tz)

    # -- display -----------------------------------------------------------------------------

    def describe(self) -> str:
        """A short human text, e.g. ``every 15 min after completion``."""
        if self.kind == ROLLING:
            return f"every {_format_interval(self.interval)} after completion"
        if self.kind == FIXED:
            return f"every {_format_interval(self.interval)} on the clock (UTC)"
        if self.kind == CRON:
            return f"cron '{self.cron}' in {self.timezone}"
        return f"unknown schedule kind {self.kind!r}"


def delta(**amount: float) -> timedelta:
    """``timedelta(**amount)``, a ScheduleError naming the amount when it is out of range."""
    try:
        return timedelta(**amount)
    except OverflowError:
        (unit, value), = amount.items()
        raise ScheduleError(f"an interval of {value!r} {unit} is out of range") from None


def _format_interval(interval: timedelta | None) -> str:
    if interval is None:
        return "? min"
    us = interval // US
    if us % MINUTE_US == 0 or us >= MINUTE_US:
        return f"{us / MINUTE_US:g} min"
    return f"{us / 1_000_000:g} s"
