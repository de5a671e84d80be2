"""Tests for tickloop.schedule: rolling, fixed and cron schedules, DST, resume and outages."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest
from croniter import croniter

from tickloop.schedule import (
    NEVER,
    Schedule,
    ScheduleError,
    first_run,
    fixed_cron_expression,
    next_run,
    resume_at,
    upcoming,
    validate,
)

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def u(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def t(h: int, mi: int = 0, s: int = 0, us: int = 0, *, day: int = 1) -> datetime:
    """A UTC time on 2025-01-<day>."""
    return u(2025, 1, day, h, mi, s, us)


def chain(schedule: Schedule, start: datetime, count: int, run_for=timedelta(seconds=5)) -> list:
    """``count`` successive next runs, each run taking ``run_for``."""
    out, at = [], start
    for _ in range(count):
        at = next_run(schedule, scheduled_at=at, finished_at=at + run_for)
        out.append(at)
    return out


# -- first run -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [Schedule.rolling(15), Schedule.fixed(15), Schedule.from_cron("30 2 * * *", "Europe/Berlin")],
)
def test_first_run_is_at_session_start_in_utc(schedule):
    """The first run is due at the session's start, returned in UTC whatever zone came in."""
    started = datetime(2025, 6, 1, 12, 7, 13, 250, tzinfo=BERLIN)
    got = first_run(schedule, started)
    assert got == u(2025, 6, 1, 10, 7, 13, 250)
    assert got.tzinfo is UTC


# -- rolling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "scheduled", "finished", "expected"),
    [
        (15, t(10), t(10, 3, 17), t(10, 18, 17)),
        (15, t(10), t(10, 0, 0, 1), t(10, 15, 0, 1)),
        (0.5, t(10), t(10, 0, 5, 250_000), t(10, 0, 35, 250_000)),
        (0.5, t(10), t(10), t(10, 0, 30)),
        (15, t(10), t(12, 41, 9), t(12, 56, 9)),  # a long run: no catch-up, just + interval
        (1440, t(23, 59, 59), t(23, 59, 59), t(23, 59, 59, day=2)),
    ],
)
def test_rolling_next_is_completion_plus_interval(minutes, scheduled, finished, expected):
    """A rolling schedule's next run is the previous completion plus the interval, exactly."""
    got = next_run(Schedule.rolling(minutes), scheduled_at=scheduled, finished_at=finished)
    assert got == expected
    assert got.tzinfo is UTC


def test_rolling_converts_other_zones_to_utc():
    """A completion given in another zone yields the same instant plus the interval, in UTC."""
    finished = datetime(2025, 10, 26, 2, 50, tzinfo=BERLIN, fold=1)  # 01:50 UTC, in the repeat
    got = next_run(Schedule.rolling(15), scheduled_at=finished, finished_at=finished)
    assert got == u(2025, 10, 26, 2, 5)
    assert got.tzinfo is UTC


# -- fixed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "scheduled", "finished", "expected"),
    [
        # 15 minutes: :00 :15 :30 :45
        (15, t(10), t(10, 0, 30), t(10, 15)),
        (15, t(10, 15), t(10, 29, 59), t(10, 30)),
        (15, t(10, 15), t(10, 15), t(10, 30)),  # zero-length run on a boundary
        (15, t(10, 15), t(10, 30), t(10, 30)),  # finished exactly on a boundary
        (15, t(10, 15), t(10, 30, 0, 1), t(10, 45)),  # one microsecond late: skipped
        (15, t(10, 15), t(10, 31), t(10, 45)),  # overran one boundary
        (15, t(10, 15), t(11, 2, 10), t(11, 15)),  # overran three boundaries
        (15, t(10, 7, 13), t(10, 7, 20), t(10, 15)),  # unaligned first run (session start)
        (15, t(23, 45), t(23, 50), t(0, day=2)),
        # 60 minutes
        (60, t(10), t(10, 0, 5), t(11)),
        (60, t(10), t(12), t(12)),
        (60, t(10), t(12, 0, 1), t(13)),
        (60, t(23), t(23, 10), t(0, day=2)),
        # 1440 minutes: UTC midnight
        (1440, t(0), t(0, 5), t(0, day=2)),
        (1440, t(0), t(1, day=3), t(0, day=4)),
        (1440, u(2024, 12, 31), u(2024, 12, 31, 0, 1), u(2025, 1, 1)),
        (1440, u(2024, 2, 28), u(2024, 2, 28, 0, 1), u(2024, 2, 29)),
        # 7 minutes: :00 :07 ... :56, then :00 of the next hour
        (7, t(10, 49), t(10, 50), t(10, 56)),
        (7, t(10, 56), t(10, 57), t(11)),  # the hour wrap: :56 -> :00 (not :03)
        (7, t(11), t(11, 1), t(11, 7)),
        (7, t(10, 49), t(10, 56), t(10, 56)),  # finished exactly on a boundary
        (7, t(10, 49), t(11, 3), t(11, 7)),  # overran :56 and :00
        (7, t(23, 56), t(23, 58), t(0, day=2)),
        # 0.5 minutes: every 30 seconds
        (0.5, t(10), t(10, 0, 10), t(10, 0, 30)),
        (0.5, t(10, 0, 30), t(10, 1), t(10, 1)),
        (0.5, t(10, 0, 30), t(10, 0, 59, 999_999), t(10, 1)),
        (0.5, t(10, 0, 30), t(10, 2, 15, 500_000), t(10, 2, 30)),  # overran 3 boundaries
        (0.5, t(23, 59, 30), t(23, 59, 45), t(0, day=2)),
        # 100 minutes does not divide a day: every 100 minutes from each UTC midnight
        (100, t(0), t(0, 1), t(1, 40)),
        (100, t(21, 40), t(21, 50), t(23, 20)),
        (100, t(23, 20), t(23, 25), t(0, day=2)),  # daily reset: 23:20 -> 00:00, not 01:00
        (100, t(23, 20), t(0, 10, day=2), t(1, 40, day=2)),  # overran midnight
        (100, t(1, 40), t(3, 20), t(3, 20)),  # finished exactly on a boundary
    ],
)
def test_fixed_next_boundary(minutes, scheduled, finished, expected):
    """A fixed schedule's next run is the first boundary after the scheduled time that has not
    passed by completion; boundaries passed during the run are skipped."""
    got = next_run(Schedule.fixed(minutes), scheduled_at=scheduled, finished_at=finished)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("minutes", "scheduled", "finished", "expected"),
    [
        (300, t(14, 50), t(14, 51), t(15)),  # 5 h: 00 05 10 15 20, then 00
        (300, t(20), t(20, 1), t(0, day=2)),
        (2880, t(0, day=29), t(0, 1, day=29), t(0, day=31)),  # 2 days: dom 1,3,...,29,31
        (2880, t(0, day=31), t(0, 1, day=31), u(2025, 2, 1)),  # reset every month
        (0.7, t(23, 59, 12), t(23, 59, 20), t(23, 59, 54)),  # 42 s steps from midnight
        (0.7, t(23, 59, 54), t(23, 59, 58), t(0, day=2)),  # 86400 % 42 != 0: daily reset
    ],
)
def test_fixed_other_intervals(minutes, scheduled, finished, expected):
    """Whole hours and whole days map to cron; other non-divisors reset at each UTC midnight."""
    got = next_run(Schedule.fixed(minutes), scheduled_at=scheduled, finished_at=finished)
    assert got == expected


@pytest.mark.parametrize(
    ("minutes", "expression"),
    [
        (15, None),
        (60, None),
        (1440, None),
        (0.5, None),
        (90, None),
        (7, "*/7 * * * *"),
        (25, "*/25 * * * *"),
        (300, "0 */5 * * *"),
        (2880, "0 0 */2 * *"),
        (100, None),
        (0.7, None),
    ],
)
def test_fixed_cron_mapping(minutes, expression):
    """Intervals that divide a day use arithmetic; whole minutes/hours/days map to cron."""
    assert fixed_cron_expression(timedelta(minutes=minutes)) == expression


def test_fixed_accepts_any_zone_and_returns_utc():
    """Fixed boundaries are UTC even when the inputs carry another zone."""
    scheduled = datetime(2025, 3, 30, 1, 55, tzinfo=BERLIN)  # 00:55 UTC
    got = next_run(Schedule.fixed(60), scheduled_at=scheduled, finished_at=scheduled)
    assert got == u(2025, 3, 30, 1)
    assert got.tzinfo is UTC


def test_fixed_chain_of_seven_minutes_wraps_each_hour():
    """Successive 7-minute runs go :49 :56 :00 :07 across the hour."""
    assert chain(Schedule.fixed(7), t(10, 42), 4) == [t(10, 49), t(10, 56), t(11), t(11, 7)]


@pytest.mark.parametrize(
    ("minutes", "expression"), [(15, "*/15 * * * *"), (60, "0 * * * *"), (1440, "0 0 * * *")]
)
def test_fast_path_agrees_with_croniter(minutes, expression):
    """For intervals that divide a day, the arithmetic fast path gives croniter's answers."""
    rng = random.Random(20250101 + minutes)
    schedule = Schedule.fixed(minutes)
    lo, hi = u(2000, 1, 1), u(2040, 1, 1)
    span = int((hi - lo).total_seconds())
    step = timedelta(minutes=minutes)
    for i in range(1500):
        at = lo + timedelta(seconds=rng.randrange(span))
        if i % 3 == 0:  # land exactly on a boundary a third of the time (lo is on one)
            at -= (at - lo) % step
        if i % 5 == 0:
            at += timedelta(microseconds=rng.randrange(1_000_000))
        # strictly after: next_run with an instant run, croniter get_next
        strict = croniter(expression, at).get_next(datetime)
        assert next_run(schedule, scheduled_at=at, finished_at=at) == strict, at
        # at or after: resume_at with an old anchor, against croniter iterated from well before
        it = croniter(expression, at - step - timedelta(seconds=1))
        inclusive = it.get_next(datetime)
        while inclusive < at:
            inclusive = it.get_next(datetime)
        assert resume_at(schedule, anchor=lo, now=at) == inclusive, at
        # a run that overran: scheduled at `at`, finished some time later
        finished = at + timedelta(seconds=rng.randrange(3 * int(step.total_seconds())))
        expected = strict if strict >= finished else resume_at(schedule, anchor=lo, now=finished)
        assert next_run(schedule, scheduled_at=at, finished_at=finished) == expected, (at, finished)


# -- cron and DST ----------------------------------------------------------------------------


def test_cron_berlin_fall_back_fixed_hour_fires_once():
    """`30 2 * * *` in Europe/Berlin fires once on 2025-10-26 (02:30+02:00), then daily at CET."""
    s = Schedule.from_cron("30 2 * * *", "Europe/Berlin")
    got = chain(s, datetime(2025, 10, 24, 2, 30, tzinfo=BERLIN), 3, run_for=timedelta(minutes=1))
    assert got == [
        u(2025, 10, 25, 0, 30),  # 02:30+02:00
        u(2025, 10, 26, 0, 30),  # 02:30+02:00, first occurrence; 02:30+01:00 does not fire
        u(2025, 10, 27, 1, 30),  # 02:30+01:00
    ]


def test_cron_berlin_fall_back_wildcard_hour_fires_both_folds():
    """`0 * * * *` in Europe/Berlin fires at 02:00+02:00 and again at 02:00+01:00 on fall-back."""
    s = Schedule.from_cron("0 * * * *", "Europe/Berlin")
    got = chain(s, datetime(2025, 10, 26, 1, 0, tzinfo=BERLIN), 4)
    assert got == [u(2025, 10, 26, 0), u(2025, 10, 26, 1), u(2025, 10, 26, 2), u(2025, 10, 26, 3)]
    assert [g.astimezone(BERLIN).isoformat() for g in got[:2]] == [
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:00:00+01:00",
    ]


def test_cron_berlin_fall_back_fixed_hour_range_fires_once():
    """A fixed hour range `0 1-3 * * *` fires 02:00 only on the first fold."""
    s = Schedule.from_cron("0 1-3 * * *", "Europe/Berlin")
    got = upcoming(s, after=datetime(2025, 10, 26, 0, 30, tzinfo=BERLIN), count=4)
    assert [g.astimezone(BERLIN).isoformat() for g in got] == [
        "2025-10-26T01:00:00+02:00",
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T03:00:00+01:00",
        "2025-10-27T01:00:00+01:00",
    ]


def test_cron_every_minute_of_a_fixed_hour_skips_the_whole_repeat():
    """`* 2 * * *` fires each minute of 02:xx once on fall-back, then the next day."""
    s = Schedule.from_cron("* 2 * * *", "Europe/Berlin")
    got = upcoming(s, after=datetime(2025, 10, 26, 1, 59, tzinfo=BERLIN), count=61)
    assert got[0] == u(2025, 10, 26, 0, 0)  # 02:00+02:00
    assert got[59] == u(2025, 10, 26, 0, 59)  # 02:59+02:00
    assert got[60] == u(2025, 10, 27, 1, 0)  # 02:00+01:00 on the next day


def test_cron_resume_inside_the_repeat_does_not_fire_the_second_fold():
    """Resuming between the two 02:30s of fall-back waits for the next day, not 02:30+01:00."""
    s = Schedule.from_cron("30 2 * * *", "Europe/Berlin")
    now = datetime(2025, 10, 26, 2, 45, tzinfo=BERLIN)  # first fold, after 02:30+02:00
    assert resume_at(s, anchor=u(2025, 10, 26, 0, 30), now=now) == u(2025, 10, 27, 1, 30)


def test_cron_berlin_spring_forward_fires_once_at_first_valid_instant():
    """`30 2 * * *` on 2025-03-30 in Berlin fires once at 03:00+02:00, then 02:30 daily."""
    s = Schedule.from_cron("30 2 * * *", "Europe/Berlin")
    got = chain(s, datetime(2025, 3, 29, 2, 30, tzinfo=BERLIN), 2, run_for=timedelta(minutes=1))
    assert got == [u(2025, 3, 30, 1, 0), u(2025, 3, 31, 0, 30)]
    assert got[0].astimezone(BERLIN).isoformat() == "2025-03-30T03:00:00+02:00"


def test_cron_berlin_spring_forward_half_hourly():
    """`*/30 * * * *` across Berlin's spring-forward gives 01:30, 03:00, 03:30."""
    s = Schedule.from_cron("*/30 * * * *", "Europe/Berlin")
    got = upcoming(s, after=datetime(2025, 3, 30, 1, 0, tzinfo=BERLIN), count=3)
    assert got == [u(2025, 3, 30, 0, 30), u(2025, 3, 30, 1, 0), u(2025, 3, 30, 1, 30)]


def test_cron_new_york_fall_back():
    """In New York on 2025-11-02, `30 1 * * *` fires once (EDT); `0 * * * *` fires 01:00 twice."""
    fixed = Schedule.from_cron("30 1 * * *", "America/New_York")
    start = datetime(2025, 11, 1, 1, 30, tzinfo=NEW_YORK)
    got = chain(fixed, start, 2, run_for=timedelta(minutes=1))
    assert got == [u(2025, 11, 2, 5, 30), u(2025, 11, 3, 6, 30)]  # 01:30-04:00, then 01:30-05:00
    hourly = Schedule.from_cron("0 * * * *", "America/New_York")
    got = upcoming(hourly, after=datetime(2025, 11, 2, 0, 30, tzinfo=NEW_YORK), count=3)
    assert [g.astimezone(NEW_YORK).isoformat() for g in got] == [
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T02:00:00-05:00",
    ]


def test_cron_new_york_spring_forward():
    """In New York on 2025-03-09, `30 2 * * *` fires once at 03:00-04:00, then 02:30 daily."""
    s = Schedule.from_cron("30 2 * * *", "America/New_York")
    got = chain(s, datetime(2025, 3, 8, 2, 30, tzinfo=NEW_YORK), 2, run_for=timedelta(minutes=1))
    assert got == [u(2025, 3, 9, 7, 0), u(2025, 3, 10, 6, 30)]
    assert got[0].astimezone(NEW_YORK).isoformat() == "2025-03-09T03:00:00-04:00"


def test_cron_next_skips_matches_passed_during_a_run():
    """A cron run that overran matches continues at the first match not yet passed."""
    s = Schedule.from_cron("*/10 * * * *", "Europe/Berlin")
    assert next_run(s, scheduled_at=t(10), finished_at=t(10, 25)) == t(10, 30)
    assert next_run(s, scheduled_at=t(10), finished_at=t(10, 30)) == t(10, 30)  # exactly on one
    assert next_run(s, scheduled_at=t(10), finished_at=t(10, 30, 0, 1)) == t(10, 40)
    assert next_run(s, scheduled_at=t(10), finished_at=t(10, 0, 1)) == t(10, 10)


def test_cron_seconds_field():
    """A 6-field expression (seconds last) is evaluated to the second."""
    s = Schedule.from_cron("* * * * * */20", "UTC")
    assert upcoming(s, after=t(10, 0, 5), count=3) == [t(10, 0, 20), t(10, 0, 40), t(10, 1)]
    assert resume_at(s, anchor=t(9), now=t(10, 0, 40)) == t(10, 0, 40)
    assert resume_at(s, anchor=t(9), now=t(10, 0, 40, 1)) == t(10, 1)


def _transition_days(zone: ZoneInfo, year: int) -> list[datetime]:
    """Instants 6 to 12 hours before each UTC offset change of ``zone`` in ``year``."""
    out, prev = [], None
    day = u(year, 1, 1)
    while day.year == year:
        off = day.astimezone(zone).utcoffset()
        if prev is not None and off != prev:
            out.append(day - timedelta(hours=12))
        prev = off
        day += timedelta(hours=6)
    return out


def test_cron_tzdata_sweep_terminates_and_never_repeats_a_fixed_wall_time():
    """Across every offset change of every tzdata zone in 2025, cron searches terminate, move
    forward, fire a fixed-hour wall time at most once, and keep both folds for wildcard hours."""
    fixed = "0,30 0-23 * * *"
    wildcard = "0,30 * * * *"
    checked, seen = 0, set()
    for name in sorted(available_timezones()):
        try:
            zone = ZoneInfo(name)
        except Exception:  # pragma: no cover - broken tzdata entries
            continue
        for start in _transition_days(zone, 2025):
            # zones with the same change at the same instant behave alike: check one of them
            later = start + timedelta(hours=12)
            key = (start, start.astimezone(zone).utcoffset(), later.astimezone(zone).utcoffset())
            if key in seen:
                continue
            seen.add(key)
            a = upcoming(Schedule.from_cron(fixed, name), after=start, count=48)
            b = upcoming(Schedule.from_cron(wildcard, name), after=start, count=48)
            for series in (a, b):
                assert all(x < y for x, y in pairwise(series)), name
            walls = [x.astimezone(zone).replace(tzinfo=None) for x in a]
            assert len(walls) == len(set(walls)), name
            # the wildcard series is the fixed one plus the repeated (fold=1) matches
            extra = [x for x in b if x not in set(a)]
            assert all(x.astimezone(zone).fold == 1 for x in extra), name
            checked += 1
    assert checked > 40


# -- resume after pause; outages -------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "anchor", "now", "expected"),
    [
        (15, t(10, 15), t(10, 40), t(10, 45)),
        (15, t(10, 15), t(10, 45), t(10, 45)),  # exactly on a point of the series
        (15, t(10, 15), t(10, 45, 0, 1), t(11)),
        (15, t(10, 15), t(10, 5), t(10, 15)),  # anchor still ahead: kept
        (15, t(10, 15), t(10, 15), t(10, 15)),
        (15, t(10, 3, 17), t(13, 2), t(13, 3, 17)),  # the series keeps its phase
        (0.5, t(10, 0, 10), t(10, 5, 41), t(10, 6, 10)),
        (15, t(10, 15), t(10, 15, 0, 1), t(10, 30)),  # never an immediate catch-up
    ],
)
def test_resume_rolling(minutes, anchor, now, expected):
    """Resuming a rolling session waits for anchor + k*interval at or after now (k >= 0)."""
    got = resume_at(Schedule.rolling(minutes), anchor=anchor, now=now)
    assert got == expected
    assert got >= now


@pytest.mark.parametrize(
    ("minutes", "anchor", "now", "expected"),
    [
        (15, t(10, 15), t(10, 40), t(10, 45)),
        (15, t(10, 15), t(11), t(11)),  # a boundary exactly at now counts
        (15, t(10, 15), t(11, 0, 0, 1), t(11, 15)),
        (15, t(10, 15), t(10, 5), t(10, 15)),  # anchor still ahead: kept
        (15, t(10, 7, 13), t(10, 5), t(10, 7, 13)),  # even when it is not on a boundary
        (7, t(10, 49), t(10, 57), t(11)),
        (100, t(21, 40), t(23, 21), t(0, day=2)),
        (0.5, t(10), t(10, 3, 0, 1), t(10, 3, 30)),
    ],
)
def test_resume_fixed(minutes, anchor, now, expected):
    """Resuming a fixed session waits for its anchor if ahead, else the first boundary >= now."""
    assert resume_at(Schedule.fixed(minutes), anchor=anchor, now=now) == expected


def test_resume_cron():
    """Resuming a cron session keeps a future anchor, else waits for the first match >= now."""
    s = Schedule.from_cron("30 2 * * *", "Europe/Berlin")
    anchor = u(2025, 6, 1, 0, 30)  # 02:30+02:00
    assert resume_at(s, anchor=anchor, now=u(2025, 6, 3, 12)) == u(2025, 6, 4, 0, 30)
    assert resume_at(s, anchor=anchor, now=u(2025, 6, 4, 0, 30)) == u(2025, 6, 4, 0, 30)
    assert resume_at(s, anchor=anchor, now=u(2025, 5, 31, 23)) == anchor


def test_resume_is_never_before_now():
    """For random anchors and instants, resume_at is >= now and on the schedule's series."""
    rng = random.Random(7)
    schedules = [Schedule.rolling(15), Schedule.fixed(15), Schedule.fixed(7), Schedule.fixed(100)]
    for _ in range(300):
        anchor = u(2025, 1, 1) + timedelta(seconds=rng.randrange(86_400 * 30))
        seconds, micros = rng.randrange(-3_600, 86_400 * 3), rng.randrange(10**6)
        offset = timedelta(seconds=seconds, microseconds=micros)
        now = anchor + offset
        for s in schedules:
            got = resume_at(s, anchor=anchor, now=now)
            assert got >= now
            if s.kind == "rolling":
                assert (got - anchor) % s.interval == timedelta(0)
                assert got - s.interval < now or got == anchor


def test_skip_after_outage_resumes_at_the_next_point():
    """With the skip policy, a session whose due time passed during an outage waits for the
    next scheduled point at or after restart; missed points are dropped."""
    restart = t(13, 7, 30)
    assert resume_at(Schedule.fixed(15), anchor=t(10, 15), now=restart) == t(13, 15)
    assert resume_at(Schedule.rolling(15), anchor=t(10, 3), now=restart) == t(13, 18)
    cron = Schedule.from_cron("0 9 * * 1-5", "America/New_York")
    friday = datetime(2025, 1, 3, 9, 0, tzinfo=NEW_YORK)
    saturday = datetime(2025, 1, 4, 12, 0, tzinfo=NEW_YORK)
    monday = datetime(2025, 1, 6, 9, 0, tzinfo=NEW_YORK)
    assert resume_at(cron, anchor=friday, now=saturday) == monday.astimezone(UTC)


def test_coalesce_after_outage_runs_once_then_continues():
    """With the coalesce policy, a session overdue after an outage runs once at restart (the loop
    runs it because next_run_at <= now), then next_run continues from that run."""
    restart = t(13, 7, 30)
    # fixed: due at 10:15, runtime down from 10:10 to 13:07:30; one run at restart
    fixed = Schedule.fixed(15)
    due = t(10, 15)
    assert due <= restart  # overdue: the loop runs it once now
    after = next_run(fixed, scheduled_at=due, finished_at=restart + timedelta(seconds=4))
    assert after == t(13, 15)  # the 12 boundaries passed during the outage are not replayed
    # rolling: the run at restart is followed by completion + interval
    rolling = Schedule.rolling(15)
    after = next_run(rolling, scheduled_at=t(10, 3), finished_at=restart + timedelta(seconds=4))
    assert after == t(13, 22, 34)
    # cron: likewise the first match not yet passed
    cron = Schedule.from_cron("0 * * * *", "Europe/Berlin")
    assert next_run(cron, scheduled_at=t(10), finished_at=restart) == t(14)


# -- upcoming --------------------------------------------------------------------------------


def test_upcoming():
    """upcoming lists the next points strictly after a time for every kind."""
    assert upcoming(Schedule.fixed(7), after=t(10, 49), count=3) == [t(10, 56), t(11), t(11, 7)]
    assert upcoming(Schedule.fixed(15), after=t(10, 5), count=2) == [t(10, 15), t(10, 30)]
    assert upcoming(Schedule.rolling(15), after=t(10, 5), count=2) == [t(10, 20), t(10, 35)]
    cron = Schedule.from_cron("30 2 * * *", "Europe/Berlin")
    got = upcoming(cron, after=u(2025, 6, 1, 0, 30), count=2)
    assert got == [u(2025, 6, 2, 0, 30), u(2025, 6, 3, 0, 30)]
    assert upcoming(Schedule.fixed(15), after=t(10), count=0) == []


# -- validation, errors, storage, display ----------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        (Schedule.from_cron("61 * * * *"), "invalid cron expression '61 * * * *': "),
        (Schedule.from_cron("every day"), "invalid cron expression 'every day': "),
        (Schedule.from_cron("0 0 30 2 *"), "invalid cron expression '0 0 30 2 *': it never"),
        (Schedule.from_cron("R * * * *"), "invalid cron expression 'R * * * *': random 'R'"),
        (Schedule.from_cron("H * * * *"), "invalid cron expression 'H * * * *': "),
        (Schedule.from_cron(""), "a cron schedule needs a cron expression"),
        (Schedule.from_cron("0 * * * *", "Mars/Base"), "unknown timezone 'Mars/Base'"),
        (Schedule.from_cron("0 * * * *", "../etc/passwd"), "unknown timezone '../etc/passwd'"),
        (Schedule.rolling(0), "interval must be greater than 0"),
        (Schedule.fixed(-5), "interval must be greater than 0"),
        (Schedule("fixed"), "a fixed schedule needs an interval"),
        (Schedule("hourly"), "unknown schedule kind 'hourly'"),  # type: ignore[arg-type]
    ],
)
def test_validate_reports_reasons(schedule, reason):
    """validate returns a human reason for a bad expression, zone, interval or kind."""
    got = validate(schedule)
    assert got is not None and got.startswith(reason), got


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule.rolling(15),
        Schedule.rolling(0.001),
        Schedule.fixed(7),
        Schedule.fixed(100),
        Schedule.from_cron("30 2 * * *", "Europe/Berlin"),
        Schedule.from_cron("@daily", "America/New_York"),
        Schedule.from_cron("0 9 * * mon-fri"),
    ],
)
def test_validate_accepts_good_schedules(schedule):
    """validate returns None for usable schedules."""
    assert validate(schedule) is None


def test_evaluating_an_invalid_schedule_raises_schedule_error():
    """Computing with an invalid schedule raises ScheduleError with the same reason."""
    with pytest.raises(ScheduleError, match="unknown timezone 'Mars/Base'"):
        mars = Schedule.from_cron("0 * * * *", "Mars/Base")
        next_run(mars, scheduled_at=t(10), finished_at=t(10))
    with pytest.raises(ScheduleError, match="invalid cron expression"):
        resume_at(Schedule.from_cron("61 * * * *"), anchor=t(10), now=t(11))
    with pytest.raises(ScheduleError, match="greater than 0"):
        next_run(Schedule.fixed(0), scheduled_at=t(10), finished_at=t(10))
    with pytest.raises(ScheduleError, match="greater than 0"):
        next_run(Schedule.rolling(0), scheduled_at=t(10), finished_at=t(10))


def test_naive_datetimes_are_refused():
    """Naive datetimes are refused rather than guessed."""
    naive = datetime(2025, 1, 1, 10)
    kinds = (
        Schedule.rolling(15),
        Schedule.fixed(15),
        Schedule.fixed(7),
        Schedule.from_cron("0 * * * *"),
    )
    for s in kinds:
        with pytest.raises((ValueError, TypeError)):
            next_run(s, scheduled_at=naive, finished_at=naive)
        with pytest.raises(ValueError):
            resume_at(s, anchor=naive, now=t(10))
    with pytest.raises(ValueError):
        first_run(Schedule.rolling(15), naive)


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule.rolling(15),
        Schedule.rolling(0.5),
        Schedule.rolling(1 / 3),
        Schedule.fixed(0.001),
        Schedule.fixed(1440),
        Schedule.fixed(100),
        Schedule.from_cron("30 2 * * *", "Europe/Berlin"),
    ],
)
def test_to_dict_from_dict_round_trip(schedule):
    """to_dict/from_dict round-trips a schedule, also through JSON."""
    d = schedule.to_dict()
    assert set(d) == {"kind", "interval_seconds", "cron", "timezone"}
    assert Schedule.from_dict(d) == schedule
    assert Schedule.from_dict(json.loads(json.dumps(d))) == schedule


def test_to_dict_shape():
    """to_dict stores the interval in seconds and the cron expression with its zone."""
    assert Schedule.fixed(15).to_dict() == {
        "kind": "fixed",
        "interval_seconds": 900.0,
        "cron": None,
        "timezone": "UTC",
    }
    assert Schedule.from_cron("0 * * * *", "Europe/Berlin").to_dict() == {
        "kind": "cron",
        "interval_seconds": None,
        "cron": "0 * * * *",
        "timezone": "Europe/Berlin",
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "weekly"},
        {"kind": "rolling", "interval_seconds": "900"},
        {"kind": "cron", "cron": 5},
        {"kind": "cron", "cron": "0 * * * *", "timezone": 3},
        [],
    ],
)
def test_from_dict_refuses_malformed_input(bad):
    """from_dict refuses a stored form with the wrong shape."""
    with pytest.raises(ScheduleError):
        Schedule.from_dict(bad)


def test_describe():
    """describe gives a short human text for each kind."""
    assert Schedule.rolling(15).describe() == "every 15 min after completion"
    assert Schedule.fixed(15).describe() == "every 15 min on the clock (UTC)"
    assert Schedule.rolling(0.5).describe() == "every 30 s after completion"
    assert Schedule.fixed(100).describe() == "every 100 min on the clock (UTC)"
    assert Schedule.from_cron("30 2 * * *", "Europe/Berlin").describe() == (
        "cron '30 2 * * *' in Europe/Berlin"
    )


def test_cron_is_safe_across_threads():
    """Threads sharing one expression in different zones get the same answers as one thread."""
    from concurrent.futures import ThreadPoolExecutor

    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"] * 4
    after = u(2025, 3, 1)

    def series(name: str) -> list:
        return upcoming(Schedule.from_cron("30 2 * * *", name), after=after, count=60)

    expected = {name: series(name) for name in set(zones)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(series, zones))
    assert got == [expected[name] for name in zones]


# -- the end of time (issue #8: runtimeIntervalMinutes = 1e12 crash-looped serve) --------------


@pytest.mark.parametrize("schedule", [Schedule.rolling(1e12), Schedule.fixed(1e12),
                                      Schedule.rolling(999_999_999 * 1440)])
def test_a_next_run_past_the_year_9999_is_never(schedule: Schedule) -> None:
    """next_run and resume_at return NEVER instead of raising OverflowError at a completion."""
    late = u(9999, 12, 31, 23)
    assert next_run(schedule, scheduled_at=late, finished_at=late) == NEVER
    assert resume_at(schedule, anchor=late - timedelta(days=1), now=late) in (NEVER, late)
    if schedule.kind == "rolling":
        assert next_run(schedule, scheduled_at=t(9), finished_at=t(9)) == NEVER


def test_upcoming_stops_at_the_end_of_time() -> None:
    assert upcoming(Schedule.rolling(1e9), after=t(9), count=5) == [t(9) + k * timedelta(minutes=1e9)
                                                                     for k in (1, 2, 3, 4)]


@pytest.mark.parametrize("minutes", [1e300, float(2**63 - 1)])
def test_an_interval_timedelta_cannot_hold_is_a_schedule_error(minutes: float) -> None:
    with pytest.raises(ScheduleError, match="is out of range"):
        Schedule.rolling(minutes)
    with pytest.raises(ScheduleError, match="is out of range"):
        Schedule.from_dict({"kind": "fixed", "interval_seconds": minutes * 60})


def test_a_stored_schedule_beyond_the_year_9999_does_not_crash_the_completion(make_runtime, agent_folder) -> None:
    """A session stored with a huge interval (manifests may no longer ask for one, older stores
    may hold one) completes its run and is never due again; the runtime goes on."""
    from sqlalchemy import update

    from tickloop.testing import T0
    from tickloop_sql.tables import sessions

    rt = make_runtime()
    session = rt.start_session(str(agent_folder()), "0x" + "ab" * 20)
    with rt.store.engine.begin() as conn:
        conn.execute(update(sessions).values(schedule_interval_seconds=6e13))  # 1e12 minutes
    rt.close()
    rt = make_runtime()
    assert [r.status for r in rt.tick(T0)] == ["succeeded"]
    assert rt.session(session.id).next_run_at == NEVER
    assert rt.tick(T0 + timedelta(days=3650)) == []
