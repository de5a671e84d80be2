"""Time next-run computation in tickloop.schedule and print the figures as JSON.

    python bench/schedule_speed.py [--calls 20000] [--repeat 7]

Each case computes next runs for the same list of varied instants (random scheduled times
within a year, runs of 0-20 minutes), so no case benefits from repeating one input. Figures are
microseconds per call: ``best`` is the fastest of ``--repeat`` rounds, ``median`` the median
round; the loop overhead (iterating the list and unpacking a pair) is measured separately and
subtracted from both. Cases:

- ``datetime_add_baseline``: ``finished + timedelta`` (what a rolling next run costs at least);
- ``rolling``: ``next_run`` of a rolling schedule;
- ``fixed_fast_path``: ``next_run`` of a fixed 15-minute schedule (integer arithmetic, target
  <= 2 us);
- ``fixed_daily_reset``: ``next_run`` of a fixed 100-minute schedule (arithmetic, reset at
  midnight);
- ``fixed_via_croniter``: ``next_run`` of a fixed 7-minute schedule (``*/7 * * * *``, a reused
  croniter);
- ``cron_berlin``: ``next_run`` of ``30 2 * * *`` in Europe/Berlin (reused croniter + DST rule);
- ``croniter_reused``: bare ``get_next`` on one kept croniter (``*/15 * * * *``, UTC);
- ``croniter_fresh``: a new croniter plus one ``get_next`` (``*/15 * * * *``, UTC).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

from croniter import croniter

from tickloop.schedule import Schedule, next_run

UTC = UTC
FAST_PATH_TARGET_US = 2.0


def make_pairs(n: int, seed: int = 1) -> list[tuple[datetime, datetime]]:
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    pairs = []
    for _ in range(n):
        scheduled = base + timedelta(seconds=rng.randrange(365 * 86_400))
        run_for = timedelta(seconds=rng.randrange(1_200), microseconds=rng.randrange(10**6))
        finished = scheduled + run_for
        pairs.append((scheduled, finished))
    return pairs


def time_rounds(run: Callable[[], None], calls: int, repeat: int) -> list[float]:
    """Microseconds per call for each of ``repeat`` rounds."""
    run()  # warm up (caches, croniter construction)
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per case")
    args = parser.parse_args(argv)
    calls, repeat = args.calls, args.repeat
    pairs = make_pairs(calls)

    interval = timedelta(minutes=15)
    rolling, fixed15 = Schedule.rolling(15), Schedule.fixed(15)
    fixed100, fixed7 = Schedule.fixed(100), Schedule.fixed(7)
    cron_berlin = Schedule.from_cron("30 2 * * *", "Europe/Berlin")
    kept = croniter("*/15 * * * *", pairs[0][0])

    def loop_overhead() -> None:
        for _s, _f in pairs:
            pass

    def datetime_add() -> None:
        for _s, f in pairs:
            f + interval

    def schedule_case(schedule: Schedule) -> Callable[[], None]:
        def run() -> None:
            for s, f in pairs:
                next_run(schedule, scheduled_at=s, finished_at=f)

        return run

    def croniter_reused() -> None:
        for s, _f in pairs:
            kept.get_next(datetime, start_time=s)

    def croniter_fresh() -> None:
        for s, _f in pairs:
            croniter("*/15 * * * *", s).get_next(datetime)

    # croniter cases are ~50x slower: time them on a slice so the script stays quick.
    slow = max(1, calls // 10)
    slow_pairs = pairs[:slow]

    def on_slice(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            nonlocal pairs
            saved, pairs = pairs, slow_pairs
            try:
                fn()
            finally:
                pairs = saved

        return run

    overhead = statistics.median(time_rounds(loop_overhead, calls, repeat))
    cases: dict[str, tuple[Callable[[], None], int]] = {
        "datetime_add_baseline": (datetime_add, calls),
        "rolling": (schedule_case(rolling), calls),
        "fixed_fast_path": (schedule_case(fixed15), calls),
        "fixed_daily_reset": (schedule_case(fixed100), calls),
        "fixed_via_croniter": (on_slice(schedule_case(fixed7)), slow),
        "cron_berlin": (on_slice(schedule_case(cron_berlin)), slow),
        "croniter_reused": (on_slice(croniter_reused), slow),
        "croniter_fresh": (on_slice(croniter_fresh), slow),
    }
    results = {}
    for name, (fn, n) in cases.items():
        rounds = time_rounds(fn, n, repeat)
        results[name] = {
            "best_us": round(max(0.0, min(rounds) - overhead), 3),
            "median_us": round(max(0.0, statistics.median(rounds) - overhead), 3),
            "calls": n,
        }
    fast = results["fixed_fast_path"]["median_us"]
    report = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "croniter": version("croniter"),
        "repeat": repeat,
        "loop_overhead_us": round(overhead, 3),
        "us_per_call": results,
        "fast_path_target_us": FAST_PATH_TARGET_US,
        "fast_path_within_target": fast <= FAST_PATH_TARGET_US,
        "speedup_fast_path_vs_croniter_reused": round(
            results["croniter_reused"]["median_us"] / fast, 1
        )
        if fast
        else None,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
