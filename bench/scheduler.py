"""Scheduler throughput and dispatch lateness: tickloop against APScheduler 3.11 on the same load.

N sessions (jobs) of a no-op agent on a 1-second interval for D seconds. Every system runs in its
own child process, one after another (so peak RSS is per system and runs don't disturb each
other), and the parent prints one JSON document with each system's results and the ratios::

    .venv/bin/python bench/scheduler.py --sessions 5000 --seconds 20 [--schedule rolling|fixed]
        [--phases burst|spread] [--only tickloop|aps-memory|aps-sqlite|aps-sqlite-wal|all (or a comma list)]
        [--warmup 3] [--dump PREFIX] [--profile FILE]

Systems:

- ``tickloop``: a temporary home, ``Runtime.from_config(overrides={"runtime": {"executor":
  "inline"}, "memory": {"backend": "diskcache"}})``: durable state (the SQLite state store, every
  run record and session change committed, group commit per loop iteration) and diskcache
  memory. The agent is a folder agent whose ``run`` does nothing, ``runtimeIntervalMinutes =
  1/60``. N sessions are started (timed separately), then ``serve()`` runs in the main thread
  until a timer sets its ``stop`` event after D seconds. A plugin implementing
  ``tickloop_run_started`` records ``time.time() - run.scheduled_at`` for every run and
  ``tickloop_run_finished`` the time every run finished (into preallocated arrays). After the
  run the SQLite file is opened and its run rows are counted: they must equal the runs counted
  by the hooks, every run must be finished, and every session's ``last_scheduled_at`` must be
  that of its latest run (the durability check).
- ``aps-memory``: APScheduler 3.11 ``BackgroundScheduler``, ``MemoryJobStore``, the default
  thread pool executor (10 threads), N ``interval`` jobs of 1 s (``coalesce=True``,
  ``max_instances=1``, ``misfire_grace_time=3600`` so nothing is dropped). The job returns
  ``time.time()`` at its start; an ``EVENT_JOB_EXECUTED`` listener records
  ``retval - scheduled_run_time`` and the time the run finished.
- ``aps-sqlite``: the same with ``SQLAlchemyJobStore`` on a SQLite file (SQLite defaults:
  rollback journal, ``synchronous=FULL``); every fire updates the job's row in its own
  transaction.
- ``aps-sqlite-wal``: the same with ``PRAGMA journal_mode=WAL`` set on every connection.

Figures (each system): ``runs_per_s``, the runs finished inside the measurement window divided
by its length (``runs_per_s_by_period`` is a cross-check that waves of sessions due together
cannot skew: the sum of each session's own rate in the window); dispatch ``lateness_ms`` (actual
start - scheduled time) p50 / p90 / p99 / max of the runs started inside the window;
``peak_rss_mb`` (``ru_maxrss`` of the child); ``create_s`` (starting the N sessions / adding the
N jobs). The window starts ``--warmup`` seconds after the scheduler started (default 3) and, for
tickloop, not before two cycles after the last first run (the initial burst) was dispatched; it
ends when the stop timer fires.

Phases (``--phases``), the same shape for every system:

- ``burst`` (default): what creating N sessions/jobs in a loop with default settings gives.
  tickloop: every session's first run is due when it is started, so all N are overdue when
  ``serve()`` starts and run in one burst; rolling sessions then stay packed back to back (each
  group of runs is due one interval after the group before it finished). APScheduler: each
  job's first fire is 1 s after it was added, so the phases span the time adding took (0.03 s
  for 1,000 jobs in memory).
- ``spread``: the phases spread over the second. APScheduler: job ``i`` starts at ``i/N`` past
  a whole second (how the reference figure of 0.4 ms p99 at 5,000 jobs was obtained; nothing
  else gives it). tickloop: after starting the sessions (whose first runs are due at the times
  they were started, spread over the seconds that took), every session is paused and then
  resumed at one instant T a little in the future, which keeps its phase (a rolling session
  resumes at its next point at or after T) and leaves no burst; ``spread_s`` is how long that
  took.

Schedules (``--schedule``): ``rolling`` (tickloop's default: next run = completion + 1 s) or
``fixed`` (tickloop runs on whole UTC seconds: every session on the same boundary, a herd).
APScheduler's interval trigger is always fixed-rate from each job's start time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from datetime import UTC
from pathlib import Path
from typing import Any

DUMP: str | None = None  # --dump PATH (child): the raw records
SYSTEMS = ("tickloop", "aps-memory", "aps-sqlite", "aps-sqlite-wal")
#: The agent's main.py: a run that does nothing. Session i runs it on wallet 0x000...i.
AGENT_MAIN = "def run(agent):\n    pass\n"


def _manifest(schedule: str) -> str:
    return "\n".join([
        'name = "noop"',
        'tagline = "does nothing, every second"',
        'walletType = "ethereum"',
        'allowedExecutionModes = ["auto"]',
        f"runtimeIntervalMinutes = {1 / 60!r}",
        f'schedule = "{schedule}"',
        'version = "0.1.0"',
        "",
    ])


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


class Recorder:
    """Preallocated arrays of (scheduled, started) per started run and finish times per finished run."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.scheduled = array("d", bytes(8 * capacity))
        self.started = array("d", bytes(8 * capacity))
        self.finished = array("d", bytes(8 * capacity))
        self.session = array("q", bytes(8 * capacity))  # the session (job) of each started run
        self.n_started = 0
        self.n_finished = 0
        self.lock = threading.Lock()  # only for multi-threaded recorders (APScheduler's pool)


def dump(rec: Recorder, path: str, **times: float) -> None:
    """Write the raw records (for looking at a run's timeline); ``--dump PATH``."""
    n = min(rec.n_started, rec.capacity)
    with open(path, "w") as f:
        json.dump({**times, "scheduled": rec.scheduled[:n].tolist(), "started": rec.started[:n].tolist(),
                   "session": rec.session[:n].tolist(),
                   "finished": rec.finished[:min(rec.n_finished, rec.capacity)].tolist()}, f)


def summarize(rec: Recorder, *, t0: float, t_end: float, window_start: float) -> dict[str, Any]:
    n_s = min(rec.n_started, rec.capacity)
    n_f = min(rec.n_finished, rec.capacity)
    started, scheduled, session = rec.started, rec.scheduled, rec.session
    inside = [i for i in range(n_s) if window_start <= started[i] < t_end]
    late = sorted((started[i] - scheduled[i]) * 1000 for i in inside)
    done_in_window = sum(1 for i in range(n_f) if window_start <= rec.finished[i] < t_end)
    window = t_end - window_start
    # A cross-check: counting runs in a window is quantized when runs come in waves (a herd of
    # sessions due at the same instant: the window holds k or k + 1 waves); each session's own
    # period is not: (starts - 1) / (last start - first start) inside the window (a session with
    # fewer than two starts counts starts / window). It overestimates a saturated system, whose
    # sessions run irregularly and only a few times in the window.
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    count: dict[int, int] = {}
    for i in inside:
        sid, at = session[i], started[i]
        if sid not in first:
            first[sid] = at
        last[sid] = at
        count[sid] = count.get(sid, 0) + 1
    by_period = sum((k - 1) / (last[s] - first[s]) if k >= 2 and last[s] > first[s] else k / window
                    for s, k in count.items()) if window > 0 else None

    def pct(p: float) -> float | None:
        if not late:
            return None
        return round(late[min(len(late) - 1, int(p / 100 * len(late)))], 3)

    return {
        "runs_per_s": round(done_in_window / window, 1) if window > 0 else None,
        "runs_per_s_by_period": round(by_period, 1) if by_period is not None else None,
        "sessions_seen_in_window": len(count),
        "lateness_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "p99.9": pct(99.9),
                        "max": round(late[-1], 3) if late else None,
                        "mean": round(statistics.fmean(late), 3) if late else None},
        "window_s": round(window, 3),
        "runs_in_window": done_in_window,
        "runs_started_total": rec.n_started,
        "runs_finished_total": rec.n_finished,
        "recorder_overflow": rec.n_started > rec.capacity or rec.n_finished > rec.capacity,
        # The preallocated arrays are part of every system's RSS alike.
        "recorder_mb": round(4 * 8 * rec.capacity / 2**20, 1),
        "serve_s": round(t_end - t0, 3),
    }


# -- tickloop ------------------------------------------------------------------------------------


def child_tickloop(n: int, seconds: float, schedule: str, warmup: float, phases: str,
                   profile: str | None) -> dict[str, Any]:
    import tickloop
    from tickloop.runtime import Runtime
    from tickloop_sql.sqlite import parse_url

    rec = Recorder(int(n * (seconds + 5) * 1.2) + 1000)

    class Probe:
        """Records dispatch lateness and finish times; kept as cheap as possible."""

        @tickloop.hookimpl
        def tickloop_run_started(self, session: Any, run: Any) -> None:
            now = time.time()
            i = rec.n_started
            if i < rec.capacity:
                rec.started[i] = now
                rec.scheduled[i] = run.scheduled_at.timestamp()
                rec.session[i] = run.session_id
            rec.n_started = i + 1

        @tickloop.hookimpl
        def tickloop_run_finished(self, session: Any, run: Any) -> None:
            i = rec.n_finished
            if i < rec.capacity:
                rec.finished[i] = time.time()
            rec.n_finished = i + 1

    with tempfile.TemporaryDirectory(prefix="tickloop-bench-") as tmp:
        agent = Path(tmp) / "noop"
        agent.mkdir()
        (agent / "circuit.toml").write_text(_manifest(schedule))
        (agent / "main.py").write_text(AGENT_MAIN)
        home = Path(tmp) / "home"
        rt = Runtime.from_config(home=home, overrides={"runtime": {"executor": "inline"},
                                                       "memory": {"backend": "diskcache"}},
                                 plugins=[Probe()])
        interval = None
        try:
            rss_before = _rss_mb()
            c0 = time.perf_counter()
            ids = []
            for i in range(n):
                session = rt.start_session(str(agent), f"0x{i + 1:040x}")
                ids.append(session.id)
            create_s = time.perf_counter() - c0
            spread_s = None
            if phases == "spread":
                # Every session's first run is due at its start, so their phases are the times they
                # were started: spread over the seconds creating them took. Pausing them all and
                # resuming them all at one instant T keeps those phases (a rolling session resumes
                # at its next point at or after T) without the burst of first runs at serve().
                from datetime import datetime, timedelta

                s0 = time.perf_counter()
                for sid in ids:
                    rt.pause(sid)
                paused_s = time.perf_counter() - s0
                resume_at = datetime.now(UTC) + timedelta(seconds=1.5 * paused_s + 2)
                for sid in ids:
                    rt.resume(sid, now=resume_at)
                spread_s = time.perf_counter() - s0
            interval = session.schedule.interval.total_seconds() if session.schedule.interval else None
            rss_created = _rss_mb()
            stop = threading.Event()
            t: dict[str, float] = {}

            def ready() -> None:
                t["t0"] = time.time()
                timer = threading.Timer(seconds, finish)
                timer.daemon = True
                timer.start()

            def finish() -> None:
                t["end"] = time.time()
                stop.set()
                rt.wake()

            profiler = None
            if profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            rt.serve(stop=stop, ready=ready)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
            t_stopped = time.time()
            state_url = rt.config.state_url
        finally:
            rt.close()
        peak = _peak_rss_mb()
        t0, t_end = t["t0"], t["end"]
        # Every session's first run is due at once (at its start): that burst, and the cycles
        # right after it, are not the steady state.
        first = [rec.started[i] for i in range(min(rec.n_started, rec.capacity)) if rec.scheduled[i] < t0]
        burst_end = max(first) if first else t0
        window_start = max(t0 + warmup, burst_end + 2.0)
        result = summarize(rec, t0=t0, t_end=t_end, window_start=window_start)
        if DUMP:
            dump(rec, DUMP, t0=t0, t_end=t_end, window_start=window_start)
        result["initial_burst_s"] = round(burst_end - t0, 3)
        result["stop_latency_s"] = round(t_stopped - t_end, 3)
        result.update(durability_check(parse_url(state_url, base=home), rec, n))
    result.update({"create_s": round(create_s, 3), "create_per_s": round(n / create_s, 1),
                   "spread_s": round(spread_s, 3) if spread_s is not None else None, "interval_s": interval,
                   "rss_before_create_mb": rss_before, "rss_after_create_mb": rss_created, "peak_rss_mb": peak})
    return result


def durability_check(db: Path, rec: Recorder, n: int) -> dict[str, Any]:
    """Count what the SQLite file holds after the runtime closed: it must be what the hooks saw."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        unfinished = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]
        succeeded = conn.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()[0]
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
        # Each session's schedule was committed with its latest run.
        in_step = conn.execute(
            "SELECT count(*) FROM sessions s WHERE s.last_scheduled_at ="
            " (SELECT max(r.scheduled_at) FROM runs r WHERE r.session_id = s.id)"
            " AND s.last_finished_at = (SELECT max(r.finished_at) FROM runs r WHERE r.session_id = s.id)"
            " AND s.next_run_at > s.last_finished_at").fetchone()[0]
    finally:
        conn.close()
    ok = (rows == rec.n_started == rec.n_finished == succeeded and unfinished == 0 and sessions == n
          and in_step == n)
    return {"durable": {"ok": ok, "run_rows": rows, "runs_counted": rec.n_finished, "succeeded_rows": succeeded,
                        "unfinished_rows": unfinished, "sessions": sessions,
                        "sessions_schedule_committed_with_latest_run": in_step}}


# -- APScheduler 3.11 ----------------------------------------------------------------------------


def aps_noop() -> float:
    """The job: does nothing but say when it started (the listener computes its lateness)."""
    return time.time()


def child_aps(n: int, seconds: float, store: str, warmup: float, phases: str) -> dict[str, Any]:

    import apscheduler
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.schedulers.background import BackgroundScheduler

    rec = Recorder(int(n * (seconds + 5) * 1.2) + 1000)
    other = {"missed": 0, "max_instances": 0, "error": 0}
    lock = rec.lock

    def listener(event: Any) -> None:
        code = event.code
        if code == EVENT_JOB_EXECUTED:
            now = time.time()
            with lock:
                i = rec.n_started
                if i < rec.capacity:
                    rec.started[i] = event.retval
                    rec.scheduled[i] = event.scheduled_run_time.timestamp()
                    rec.finished[i] = now
                    rec.session[i] = int(event.job_id[1:])
                rec.n_started = rec.n_finished = i + 1
        elif code == EVENT_JOB_MISSED:
            other["missed"] += 1
        elif code == EVENT_JOB_MAX_INSTANCES:
            other["max_instances"] += 1
        else:
            other["error"] += 1

    with tempfile.TemporaryDirectory(prefix="aps-bench-") as tmp:
        db = Path(tmp) / "jobs.sqlite"
        if store == "memory":
            from apscheduler.jobstores.memory import MemoryJobStore

            jobstore: Any = MemoryJobStore()
        else:
            from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
            from sqlalchemy import create_engine, event

            engine = create_engine(f"sqlite:///{db}")
            if store == "sqlite-wal":
                @event.listens_for(engine, "connect")
                def _wal(dbapi_connection: Any, _record: Any) -> None:
                    cursor = dbapi_connection.cursor()
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.close()
            jobstore = SQLAlchemyJobStore(engine=engine)
        scheduler = BackgroundScheduler(
            jobstores={"default": jobstore}, timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
        scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
                               | EVENT_JOB_ERROR)
        scheduler.start(paused=True)
        rss_before = _rss_mb()
        c0 = time.perf_counter()
        if phases == "spread":
            # Job i fires at i/N past each second: the load spread evenly (the reference figures
            # were taken this way; nothing else gives a p99 lateness under a millisecond).
            from datetime import datetime, timedelta

            base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            for i in range(n):
                scheduler.add_job(aps_noop, "interval", seconds=1, id=f"j{i}",
                                  start_date=base + timedelta(seconds=i / n))
        else:  # burst: APScheduler's default, each job's first fire 1 s after it was added
            for i in range(n):
                scheduler.add_job(aps_noop, "interval", seconds=1, id=f"j{i}")
        create_s = time.perf_counter() - c0
        rss_created = _rss_mb()
        t0 = time.time()
        scheduler.resume()
        time.sleep(seconds)
        t_end = time.time()
        scheduler.shutdown(wait=True)
        peak = _peak_rss_mb()
        jobs_rows = None
        if store != "memory":
            conn = sqlite3.connect(db)
            try:
                jobs_rows = conn.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0]
                journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            finally:
                conn.close()
    result = summarize(rec, t0=t0, t_end=t_end, window_start=t0 + warmup)
    if DUMP:
        dump(rec, DUMP, t0=t0, t_end=t_end, window_start=t0 + warmup)
    result.update({"create_s": round(create_s, 3), "create_per_s": round(n / create_s, 1),
                   "rss_before_create_mb": rss_before, "rss_after_create_mb": rss_created,
                   "peak_rss_mb": peak, "apscheduler": apscheduler.__version__, "events": other})
    if jobs_rows is not None:
        result["store_check"] = {"job_rows": jobs_rows, "journal_mode": journal}
    return result


# -- the parent ----------------------------------------------------------------------------------


def run_child(system: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", system, "--sessions", str(args.sessions),
           "--seconds", str(args.seconds), "--schedule", args.schedule, "--warmup", str(args.warmup),
           "--phases", args.phases]
    if args.profile and system == "tickloop":
        cmd += ["--profile", args.profile]
    if args.dump:
        cmd += ["--dump", f"{args.dump}.{system}.json"]
    # Creating the jobs of a SQLite store is slow (a transaction each); everything is bounded.
    budget = args.seconds + 120 + args.sessions * (0.02 if system.startswith("aps-sqlite") else 0.005)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {budget:.0f} s"}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-3000:]}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1])
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def ratio(a: Any, b: Any, digits: int = 2) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return None
    return round(a / b, digits)


def machine() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlalchemy

    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "sqlite": sqlite3.sqlite_version, "sqlalchemy": sqlalchemy.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", "-n", type=int, default=1000, help="sessions / jobs (default 1000)")
    parser.add_argument("--seconds", "-d", type=float, default=20.0, help="how long each system runs (default 20)")
    parser.add_argument("--schedule", choices=("rolling", "fixed"), default="rolling",
                        help="tickloop's schedule kind (default rolling)")
    parser.add_argument("--only", default="all",
                        help=f"which systems: all, or a comma list of {', '.join(SYSTEMS)} (default all)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds discarded at the start (default 3)")
    parser.add_argument("--phases", choices=("burst", "spread"), default="burst",
                        help="burst (default): sessions/jobs created in one go with default settings;"
                             " spread: their phases spread over the second (see the module docstring)")
    parser.add_argument("--profile", default=None, help="write a cProfile of tickloop's serve() to this file")
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--dump", default=None, help="write each system's raw records to DUMP.<system>.json")
    args = parser.parse_args(argv)
    global DUMP
    DUMP = args.dump

    if args.child:
        if args.child == "tickloop":
            result = child_tickloop(args.sessions, args.seconds, args.schedule, args.warmup, args.phases,
                                    args.profile)
        else:
            result = child_aps(args.sessions, args.seconds, args.child.removeprefix("aps-"), args.warmup,
                               args.phases)
        print(json.dumps(result))
        return 0

    only = SYSTEMS if args.only == "all" else tuple(s.strip() for s in args.only.split(","))
    unknown = [s for s in only if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)} or all")
    results = {system: run_child(system, args) for system in only}
    tl = results.get("tickloop", {})
    ratios: dict[str, Any] = {}
    for system in only:
        if system == "tickloop" or not tl:
            continue
        other = results[system]
        ratios[f"tickloop_vs_{system}"] = {
            "runs_per_s": ratio(tl.get("runs_per_s"), other.get("runs_per_s")),
            "lateness_p99": ratio((tl.get("lateness_ms") or {}).get("p99"),
                                  (other.get("lateness_ms") or {}).get("p99")),
            "peak_rss": ratio(tl.get("peak_rss_mb"), other.get("peak_rss_mb")),
        }
    print(json.dumps({
        "what": "N sessions/jobs of a no-op on a 1 s interval for D seconds; steady-state runs/s, dispatch"
                " lateness (start - scheduled), peak RSS; each system in its own process",
        "sessions": args.sessions, "seconds": args.seconds, "schedule": args.schedule, "warmup_s": args.warmup,
        "phases": args.phases,
        "machine": machine(), "results": results, "ratios": ratios,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
