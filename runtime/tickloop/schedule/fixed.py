"""The boundaries of a ``fixed`` schedule: how they are computed for an interval (its plan, see
the table in :mod:`tickloop.schedule.series`), and the first boundary after an instant."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from tickloop.schedule.cron import croniter_after
from tickloop.schedule.instants import DAY_US, EPOCH, HOUR_US, MINUTE_US, US, UTC, from_us, require_aware, to_us
from tickloop.schedule.model import ScheduleError


class FixedPlan(enum.Enum):
    GRID = "grid"  # multiples of the step since the epoch; (GRID, step timedelta)
    CRON = "cron"  # croniter in UTC; (CRON, expression)
    DAILY = "daily"  # every step_us from each UTC midnight; (DAILY, step_us)


# Module globals: the hot path compares with `is`, without an attribute lookup on the enum.
GRID, CRON, DAILY = FixedPlan

#: Plans by interval, shared with the hot path of ``next_run``.
FIXED_PLANS: dict[timedelta | None, tuple[FixedPlan, Any]] = {}


def fixed_plan(interval: timedelta | None) -> tuple[FixedPlan, Any]:
    """How boundaries are computed for a fixed interval; cached per interval."""
    plan = FIXED_PLANS.get(interval)
    if plan is not None:
        return plan
    if interval is None or not isinstance(interval, timedelta) or interval <= timedelta(0):
        raise ScheduleError("a fixed schedule needs an interval greater than 0")
    us = interval // US
    if DAY_US % us == 0:
        plan = (GRID, interval)
    elif us % MINUTE_US == 0 and us < HOUR_US:
        plan = (CRON, f"*/{us // MINUTE_US} * * * *")
    elif us % HOUR_US == 0 and us < DAY_US:
        plan = (CRON, f"0 */{us // HOUR_US} * * *")
    elif us % DAY_US == 0:
        plan = (CRON, f"0 0 */{us // DAY_US} * *")
    else:
        plan = (DAILY, us)
    if len(FIXED_PLANS) > 4096:
        FIXED_PLANS.clear()
    FIXED_PLANS[interval] = plan
    return plan


def fixed_after(plan: tuple[FixedPlan, Any], t: datetime, *, inclusive: bool) -> datetime:
    """The first boundary after ``t`` (or at ``t`` when ``inclusive``)."""
    mode, arg = plan
    if mode is CRON:
        return croniter_after(arg, UTC, t, inclusive=inclusive, once_on_fall_back=False)
    require_aware(t, "time")
    if mode is GRID:
        step = arg  # a timedelta
        d = t - EPOCH
        return EPOCH + (-(-d // step) * step if inclusive else (d // step + 1) * step)
    x = to_us(t)
    step = arg  # DAILY: integer microseconds
    day, off = divmod(x, DAY_US)
    k = -(-off // step) if inclusive else off // step + 1
    within = k * step
    if within >= DAY_US:
        return from_us((day + 1) * DAY_US)
    return from_us(day * DAY_US + within)


def fixed_cron_expression(interval: timedelta) -> str | None:
    """The cron expression (evaluated in UTC) that gives the boundaries of a ``fixed`` schedule
    with this interval, or None when they are computed arithmetically (see :mod:`tickloop.schedule.series`)."""
    plan = fixed_plan(interval)
    return plan[1] if plan[0] is CRON else None
