"""The SQLite state store (plugin ``tickloop_sql``): records, lifecycle, runs, ownership, wake-ups."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import bindparam, func, literal, select, update

from tickloop.config import Config
from tickloop.errors import ConfigError, NotFoundError, StoreLockedError, TransitionError
from tickloop.pluginmanager import make_plugin_manager
from tickloop.registry import Registry
from tickloop.runs import FAILED, RUNNING, SUCCEEDED, TIMED_OUT, LogLine
from tickloop.schedule import Schedule
from tickloop.sessions import ACTIONS, TRANSITIONS, Session, State, Transition
from tickloop.store import UNCHANGED, NewSession, RunFinish, RunStart
from tickloop_sql import tables
from tickloop_sql.notifier import DatagramNotifier
from tickloop_sql.runwriter import INTERRUPTED
from tickloop_sql.sqlite import open_store
from tickloop_sql.store import SqlStateStore

T0 = datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
US = timedelta(microseconds=1)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def open_db(db: Path) -> Iterator[Any]:
    opened: list[SqlStateStore] = []

    def make(path: Path = db) -> SqlStateStore:
        store = open_store(f"sqlite:///{path}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_db: Any) -> SqlStateStore:
    return open_db()


def new(agent: str = "probe", wallet: str = "0xabc", *, at: datetime = T0, **overrides: Any) -> NewSession:
    values: dict[str, Any] = {"agent": agent, "agent_ref": f"/agents/{agent}", "wallet": wallet, "mode": "auto",
                              "schedule": Schedule.rolling(0.25), "settings": {"size": 1.5, "tags": ["a", "b"]},
                              "allocation": "1000000", "at": at, "next_run_at": at, "reason": "started by test"}
    values.update(overrides)
    return NewSession(**values)


def session_in(store: SqlStateStore, state: State) -> int:
    """A session brought to ``state`` through the store (``created`` has no way in but SQL)."""
    session, _ = store.create_session(new())
    path = {State.RUNNING: [], State.PAUSED: ["pause"], State.UNWINDING: ["unwind"], State.STOPPED: ["stop"]}
    if state is State.CREATED:
        with store.engine.begin() as conn:
            conn.execute(update(tables.sessions).where(tables.sessions.c.id == session.id).values(state="created"))
    for action in path.get(state, []):
        store.transition(session.id, action, at=T0)
    assert store.get_session(session.id).state is state
    return session.id


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def spawn_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# -- records -----------------------------------------------------------------------------------


def test_sessions_runs_logs_and_transitions_round_trip_exactly(store: SqlStateStore, db: Path) -> None:
    """Everything written comes back equal, with times as timezone-aware UTC exact to the microsecond."""
    at = datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=CET)
    session, start = store.create_session(new(at=at, next_run_at=at + US, schedule=Schedule.fixed(0.01)))
    assert db.exists() and session.id == 1 and session.state is State.RUNNING
    assert start.action == "start" and (start.from_state, start.to_state) == (State.CREATED, State.RUNNING)
    loaded = store.get_session(session.id)
    assert loaded == session
    assert loaded.created_at == at and loaded.created_at.tzinfo == UTC
    assert loaded.next_run_at == at + US and loaded.schedule == Schedule.fixed(0.01)
    assert loaded.settings == {"size": 1.5, "tags": ["a", "b"]} and loaded.allocation == "1000000"
    cron, _ = store.create_session(new("other", schedule=Schedule.from_cron("*/5 * * * *", "Europe/Berlin"),
                                       allocation=None, settings={}))
    assert store.get_session(cron.id).schedule == Schedule.from_cron("*/5 * * * *", "Europe/Berlin")

    paused, pause = store.transition(session.id, "pause", at=at + 2 * US, reason="by hand")
    assert paused.state is State.PAUSED and pause.at == at + 2 * US
    assert store.transitions(session.id) == [start, pause]
    assert [t.at.tzinfo for t in store.transitions(session.id)] == [UTC, UTC]

    started = datetime(2026, 1, 5, 12, 0, 1, 1, tzinfo=UTC)
    [run] = store.start_runs([RunStart(session.id, "run", at, started)])
    assert (run.status, run.finished_at, run.logs) == (RUNNING, None, ())
    assert store.get_run(run.id) == run
    lines = (LogLine(started + US, "info", "hello"), LogLine(started + 2 * US, "error", "héllo\nwörld"),
             LogLine(started + 3 * US, "debug", ""))
    store.finish_runs([RunFinish(run.id, session.id, FAILED, started + 4 * US, "boom", "Traceback ...", lines,
                                 next_run_at=started + 5 * US, last_scheduled_at=at)])
    done = store.get_run(run.id)
    assert (done.status, done.finished_at, done.error, done.traceback) == (FAILED, started + 4 * US, "boom",
                                                                          "Traceback ...")
    assert done.logs == lines and all(line.at.tzinfo == UTC for line in done.logs)
    assert store.runs(session_id=session.id, logs=True) == [done]
    assert store.runs(session_id=session.id) == [attrs.evolve(done, logs=())]
    assert store.logs(session_id=session.id) == [(run.id, line) for line in lines]
    assert store.logs(run_id=run.id, limit=2) == [(run.id, line) for line in lines[1:]]
    # Following: the lines after a given one, oldest first, at most limit of them.
    ids = [line.id for _, line in store.logs(session_id=session.id)]
    assert ids == sorted(ids) and len(set(ids)) == 3 and None not in ids
    assert store.logs(session_id=session.id, after=ids[0]) == [(run.id, line) for line in lines[1:]]
    assert [line.id for _, line in store.logs(run_id=run.id, after=ids[0], limit=1)] == [ids[1]]
    assert store.logs(session_id=session.id, after=ids[-1]) == []
    after = store.get_session(session.id)
    assert (after.next_run_at, after.last_scheduled_at, after.last_finished_at) == (started + 5 * US, at,
                                                                                   started + 4 * US)

    assert [s.id for s in store.list_sessions()] == [session.id, cron.id]
    assert [s.id for s in store.list_sessions(states=[State.RUNNING])] == [cron.id]
    assert [s.id for s in store.list_sessions(agent="probe", wallet="0xabc")] == [session.id]
    assert store.list_sessions(wallet="0xnone") == []


def test_unknown_ids_are_not_found(store: SqlStateStore) -> None:
    """Reading or changing a session or run that does not exist names it in a NotFoundError."""
    with pytest.raises(NotFoundError, match=r"^session 42 does not exist$"):
        store.get_session(42)
    with pytest.raises(NotFoundError, match=r"^session 42 does not exist$"):
        store.transition(42, "pause", at=T0)
    with pytest.raises(NotFoundError, match=r"^session 42 does not exist$"):
        store.transitions(42)
    with pytest.raises(NotFoundError, match=r"^run 7 does not exist$"):
        store.get_run(7)
    assert store.runs() == [] and store.logs() == [] and store.list_sessions() == []


def test_naive_datetimes_are_refused(store: SqlStateStore) -> None:
    """A time without a time zone is an error, never silently taken as local or UTC."""
    with pytest.raises(ValueError, match="naive datetime"):
        store.create_session(new(at=T0.replace(tzinfo=None)))
    session, _ = store.create_session(new())
    with pytest.raises(Exception, match="naive datetime"):
        store.start_runs([RunStart(session.id, "run", T0.replace(tzinfo=None), T0)])
    assert store.runs() == []


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "state"), sorted(TRANSITIONS, key=str))
def test_every_allowed_transition_is_applied_and_recorded(store: SqlStateStore, action: str, state: State) -> None:
    """Each transition in the table moves the state, appends one audit row and bumps the revision."""
    session_id = session_in(store, state)
    trail = store.transitions(session_id)
    revision = store.sessions_revision()
    at = T0 + timedelta(minutes=5)
    session, transition = store.transition(session_id, action, at=at, reason=f"{action} it")
    assert session.state is TRANSITIONS[(action, state)] and store.get_session(session_id) == session
    assert transition == Transition(session_id, action, state, TRANSITIONS[(action, state)], at, f"{action} it")
    assert store.transitions(session_id) == [*trail, transition]
    assert store.sessions_revision() != revision


REFUSED = [(action, state) for action, state in itertools.product((*ACTIONS, "explode"), State)
           if (action, state) not in TRANSITIONS]


@pytest.mark.parametrize(("action", "state"), REFUSED, ids=[f"{a}-{s}" for a, s in REFUSED])
def test_every_refused_transition_changes_nothing(store: SqlStateStore, action: str, state: State) -> None:
    """Every (action, state) pair not in the table raises TransitionError and writes nothing."""
    session_id = session_in(store, state)
    before = store.get_session(session_id)
    trail = store.transitions(session_id)
    revision = store.sessions_revision()
    with pytest.raises(TransitionError, match=f"session {session_id}: "):
        store.transition(session_id, action, at=T0 + timedelta(hours=1), next_run_at=None)
    assert store.get_session(session_id) == before
    assert store.transitions(session_id) == trail
    assert store.sessions_revision() == revision


def test_transition_writes_next_run_at_only_when_given(store: SqlStateStore) -> None:
    """next_run_at is left alone by default, set when given, and cleared by None."""
    session, _ = store.create_session(new())
    assert store.transition(session.id, "pause", at=T0)[0].next_run_at == T0
    later = T0 + timedelta(days=1, microseconds=7)
    assert store.transition(session.id, "resume", at=T0, next_run_at=later)[0].next_run_at == later
    assert store.transition(session.id, "pause", at=T0, next_run_at=UNCHANGED)[0].next_run_at == later
    assert store.transition(session.id, "stop", at=T0, next_run_at=None)[0].next_run_at is None
    assert store.get_session(session.id).next_run_at is None


@pytest.mark.parametrize("stores", [1, 2], ids=["one-store", "two-stores"])
def test_concurrent_pauses_of_one_session_let_exactly_one_win(open_db: Any, stores: int) -> None:
    """Two threads pausing the same running session: one succeeds, the other gets TransitionError."""
    handles = [open_db() for _ in range(stores)]
    for round_ in range(10):
        session, _ = handles[0].create_session(new(wallet=f"0x{round_}"))
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def pause(store: SqlStateStore, barrier: threading.Barrier = barrier, session: Session = session,
                  outcomes: list[str] = outcomes) -> None:
            barrier.wait()
            try:
                store.transition(session.id, "pause", at=T0)
                outcomes.append("ok")
            except TransitionError as exc:
                assert "cannot pause a session that is paused" in str(exc)
                outcomes.append("refused")

        threads = [threading.Thread(target=pause, args=(handles[i % stores],)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["ok", "refused"]
        assert [t.action for t in handles[0].transitions(session.id)] == ["start", "pause"]


def test_a_stale_read_never_overwrites_a_concurrent_change(store: SqlStateStore,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """When the state read is out of date the compare-and-set writes nothing and the refusal names
    the real state (or asks to try again when the action would be allowed from it)."""
    paused = session_in(store, State.PAUSED)
    # Every read of the state claims "running", as if another process had just paused it.
    stale = select(literal("running")).where(tables.sessions.c.id == bindparam("id"))
    monkeypatch.setattr(store, "_q_state", stale)
    with pytest.raises(TransitionError, match=f"session {paused}: cannot pause a session that is paused"):
        store.transition(paused, "pause", at=T0)
    with pytest.raises(TransitionError, match=f"session {paused}: changed by another process .* try again"):
        store.transition(paused, "stop", at=T0)
    assert store.get_session(paused).state is State.PAUSED
    assert [t.action for t in store.transitions(paused)] == ["start", "pause"]


# -- runs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["sqlite fast path", "core statements"])
def test_start_and_finish_batches_keep_ids_in_order_and_update_sessions(store: SqlStateStore, path: str) -> None:
    """Batches of runs get increasing ids in input order; finishing them updates each session.

    Both ways of feeding the hot statements are checked: the SQLite fast path and the Core path
    other dialects take.
    """
    if path == "core statements":
        store._fast = None
    else:
        assert store._fast is not None
    sessions = [store.create_session(new(wallet=f"0x{i}"))[0].id for i in range(5)]
    order = [sessions[(i * 3) % 5] for i in range(1200)]
    starts = [RunStart(sid, "unwind" if i % 7 == 0 else "run", T0 + i * US, T0 + (i + 1) * US)
              for i, sid in enumerate(order)]
    runs = store.start_runs(starts[:1000]) + store.start_runs(starts[1000:1001]) + store.start_runs(starts[1001:])
    ids = [run.id for run in runs]
    assert ids == list(range(1, 1201))
    assert [(r.session_id, r.kind, r.scheduled_at, r.started_at) for r in runs] == \
        [(s.session_id, s.kind, s.scheduled_at, s.started_at) for s in starts]
    assert store.get_run(ids[500]) == runs[500]
    assert store.runs(status=RUNNING, limit=3) == runs[::-1][:3]

    finishes = []
    for run in reversed(runs):  # finished in another order than started
        logs = tuple(LogLine(T0 + k * US, "info", f"run {run.id} line {k}") for k in range(run.id % 3))
        finishes.append(RunFinish(run.id, run.session_id, SUCCEEDED if run.id % 2 else TIMED_OUT,
                                  T0 + timedelta(seconds=run.id), "late" if run.id % 2 == 0 else None, None, logs,
                                  next_run_at=T0 + timedelta(hours=run.id), last_scheduled_at=run.scheduled_at))
    store.finish_runs(finishes)
    store.finish_runs([])
    assert store.start_runs([]) == []
    assert store.runs(status=RUNNING) == []
    for finish in finishes[:50]:
        got = store.get_run(finish.run_id)
        assert (got.status, got.finished_at, got.error, got.logs) == (finish.status, finish.finished_at,
                                                                      finish.error, finish.logs)
    # Each session ends with the schedule of its last finish in the batch (the lowest run id here).
    for sid in sessions:
        last = [f for f in finishes if f.session_id == sid][-1]
        got = store.get_session(sid)
        assert (got.next_run_at, got.last_scheduled_at, got.last_finished_at) == (
            last.next_run_at, last.last_scheduled_at, last.finished_at)

    everything = store.runs(limit=10_000, logs=True)
    assert [r.id for r in everything] == ids[::-1]
    assert {r.id: r.logs for r in everything} == {f.run_id: f.logs for f in finishes}
    mine = store.runs(session_id=sessions[1], status=TIMED_OUT, limit=5)
    assert [r.id for r in mine] == sorted((r.id for r in runs if r.session_id == sessions[1] and r.id % 2 == 0),
                                          reverse=True)[:5]
    expected = [(f.run_id, line) for f in sorted(finishes, key=lambda f: f.run_id)
                if f.session_id == sessions[2] for line in f.logs]
    # logs() returns lines in the order they were logged (this batch logged the newest run first).
    logged = [(f.run_id, line) for f in finishes if f.session_id == sessions[2] for line in f.logs]
    assert store.logs(session_id=sessions[2], limit=100_000) == logged and sorted(logged, key=str) == \
        sorted(expected, key=str)
    assert store.logs(session_id=sessions[2], limit=4) == logged[-4:]


@pytest.mark.parametrize(("state", "moves"), [(State.RUNNING, True), (State.PAUSED, True),
                                              (State.UNWINDING, False), (State.STOPPED, False)])
@pytest.mark.parametrize("fast", [True, False], ids=["sqlite fast path", "core statements"])
def test_a_finishing_run_moves_the_schedule_of_running_and_paused_sessions_only(store: SqlStateStore, state: State,
                                                                                 moves: bool, fast: bool) -> None:
    """An unwind or stop that happened while a run was in flight keeps its own next_run_at."""
    if not fast:
        store._fast = None
    session, _ = store.create_session(new())
    [run] = store.start_runs([RunStart(session.id, "run", T0, T0)])
    if state is not State.RUNNING:
        store.transition(session.id, "pause" if state is State.PAUSED else
                         "unwind" if state is State.UNWINDING else "stop", at=T0 + US, next_run_at=T0 + US)
    store.finish_runs([RunFinish(run.id, session.id, SUCCEEDED, T0 + 2 * US, next_run_at=T0 + 9 * US,
                                 last_scheduled_at=T0)])
    after = store.get_session(session.id)
    assert after.next_run_at == (T0 + 9 * US if moves else T0 + US)
    assert (after.last_scheduled_at, after.last_finished_at) == (T0, T0 + 2 * US)


def test_recover_interrupted_fails_the_runs_left_running(store: SqlStateStore) -> None:
    """Runs still running after a crash become failed with the interrupted error; finished ones stay."""
    session, _ = store.create_session(new())
    runs = store.start_runs([RunStart(session.id, "run", T0, T0) for _ in range(4)])
    store.finish_runs([RunFinish(runs[1].id, session.id, SUCCEEDED, T0 + US)])
    at = T0 + timedelta(minutes=3, microseconds=3)
    recovered = store.recover_interrupted(at=at)
    assert [r.id for r in recovered] == [runs[0].id, runs[2].id, runs[3].id]
    assert all((r.status, r.finished_at, r.error) == (FAILED, at, INTERRUPTED) for r in recovered)
    assert store.get_run(runs[2].id) == recovered[1]
    assert store.get_run(runs[1].id).status == SUCCEEDED
    assert store.recover_interrupted(at=at) == []


def test_revision_changes_on_create_and_transition_but_not_on_runs(store: SqlStateStore) -> None:
    """The sessions revision moves with session changes only, not with run bookkeeping."""
    seen = [store.sessions_revision()]
    session, _ = store.create_session(new())
    seen.append(store.sessions_revision())
    runs = store.start_runs([RunStart(session.id, "run", T0, T0)])
    store.finish_runs([RunFinish(runs[0].id, session.id, SUCCEEDED, T0, next_run_at=T0 + US)])
    store.recover_interrupted(at=T0)
    assert store.sessions_revision() == seen[-1]
    store.transition(session.id, "pause", at=T0)
    seen.append(store.sessions_revision())
    assert len(set(seen)) == 3


def test_threads_share_one_store_without_locking_errors(store: SqlStateStore) -> None:
    """Several threads writing and reading through one store never see 'database is locked'."""
    sessions = [store.create_session(new(wallet=f"0x{i}"))[0].id for i in range(4)]
    errors: list[BaseException] = []

    def work(sid: int) -> None:
        try:
            for i in range(30):
                runs = store.start_runs([RunStart(sid, "run", T0, T0) for _ in range(5)])
                store.finish_runs([RunFinish(r.id, sid, SUCCEEDED, T0, logs=(LogLine(T0, "info", "x"),))
                                   for r in runs])
                store.transition(sid, "pause" if i % 2 == 0 else "resume", at=T0)
                store.list_sessions()
                store.runs(session_id=sid, logs=True, limit=10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sid,)) for sid in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.runs(limit=10_000)) == 4 * 30 * 5
    assert all(len(store.transitions(sid)) == 31 for sid in sessions)


# -- ownership ---------------------------------------------------------------------------------

HOLD_OWNER = """
    import sys
    from tickloop_sql.sqlite import open_store
    store = open_store("sqlite:///" + sys.argv[1])
    store.acquire_owner()
    print("owner", flush=True)
    sys.stdin.read()  # hold it until killed
"""

TRY_OWNER = """
    import sys
    from tickloop.errors import StoreLockedError
    from tickloop_sql.sqlite import open_store
    store = open_store("sqlite:///" + sys.argv[1])
    try:
        store.acquire_owner()
    except StoreLockedError as exc:
        print(exc)
    else:
        print("acquired")
    store.close()
"""


def test_owner_lock_refuses_a_second_process_until_the_owner_is_killed(db: Path, store: SqlStateStore) -> None:
    """A second process cannot own the store while the first lives, and can at once after kill -9."""
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_OWNER), str(db)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "owner\n"
        refused = run_python(TRY_OWNER, str(db))
        assert refused.stdout.strip() == f"another tickloop serve (pid {owner.pid}) owns {db}; stop it first", \
            refused.stderr
        assert store.owned_by_other_process()
        with pytest.raises(StoreLockedError, match=f"pid {owner.pid}"):
            store.acquire_owner()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.communicate()
    assert owner.returncode == -signal.SIGKILL
    assert not store.owned_by_other_process()
    assert run_python(TRY_OWNER, str(db)).stdout.strip() == "acquired"


def test_owner_lock_is_released_by_close(open_db: Any, db: Path) -> None:
    """Within one process a second store object is refused until the owner closes."""
    first, second = open_db(), open_db()
    first.acquire_owner()
    first.acquire_owner()  # idempotent
    assert not first.owned_by_other_process() and second.owned_by_other_process()
    with pytest.raises(StoreLockedError, match=r"another tickloop serve \(pid \d+\) owns .*state.db; stop it first"):
        second.acquire_owner()
    first.close()
    first.close()  # idempotent
    second.acquire_owner()
    assert db.with_name("state.db.lock").exists()


# -- change notification -----------------------------------------------------------------------


def test_listener_wakes_on_a_change_made_through_another_store(open_db: Any) -> None:
    """The owner's callback fires (from its listener thread) after another store object transitions."""
    owner, other = open_db(), open_db()
    session, _ = other.create_session(new())
    owner.acquire_owner()
    woke = threading.Event()
    threads: list[str] = []

    def callback() -> None:
        threads.append(threading.current_thread().name)
        woke.set()

    owner.listen(lambda: None)
    owner.listen(callback)  # listening again (a second serve) only replaces the callback
    other.transition(session.id, "pause", at=T0)
    assert woke.wait(1.0)
    assert threads[0] != threading.current_thread().name
    woke.clear()
    other.create_session(new(wallet="0xdef"))
    assert woke.wait(1.0)
    owner.close()
    assert not any(t.name == "tickloop-store-listener" and t.is_alive() for t in threading.enumerate())
    other.transition(session.id, "resume", at=T0)  # nobody listens any more: no error, no wait


def test_listener_wakes_on_a_change_made_by_another_process(store: SqlStateStore, db: Path) -> None:
    """A transition made by another process wakes the owner within a second."""
    session, _ = store.create_session(new())
    store.acquire_owner()
    woke = threading.Event()
    store.listen(woke.set)
    woke.clear()
    done = run_python("""
        import sys
        from datetime import datetime, timezone
        from tickloop_sql.sqlite import open_store
        store = open_store("sqlite:///" + sys.argv[1])
        store.transition(int(sys.argv[2]), "pause", at=datetime.now(timezone.utc))
        store.close()
    """, str(db), str(session.id))
    assert done.returncode == 0, done.stderr
    assert woke.wait(1.0)
    assert store.get_session(session.id).state is State.PAUSED


def test_a_failing_callback_does_not_stop_later_notifications(open_db: Any) -> None:
    """An exception in the callback is logged and the listener keeps running."""
    owner, other = open_db(), open_db()
    owner.acquire_owner()
    calls: list[int] = []
    woke = threading.Event()

    def callback() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("callback bug")
        woke.set()

    owner.listen(callback)
    session, _ = other.create_session(new())
    other.transition(session.id, "pause", at=T0)
    assert woke.wait(1.0) and len(calls) == 2


def test_a_database_path_too_long_for_a_socket_uses_an_abstract_name(tmp_path: Path, open_db: Any) -> None:
    """Deep database paths still get notifications, through an abstract socket name."""
    path = tmp_path / ("d" * 60) / ("e" * 60) / "state.db"
    assert DatagramNotifier(path).address.startswith("\0tickloop-")
    owner, other = open_db(path), open_db(path)
    owner.acquire_owner()
    woke = threading.Event()
    owner.listen(woke.set)
    other.create_session(new())
    assert woke.wait(1.0)


def test_a_stale_socket_file_from_a_dead_owner_is_replaced(store: SqlStateStore, open_db: Any, db: Path) -> None:
    """A socket file left by a killed owner does not stop the next owner from listening."""
    killed = run_python("""
        import os, signal, sys
        from tickloop_sql.sqlite import open_store
        store = open_store("sqlite:///" + sys.argv[1])
        store.acquire_owner()
        store.listen(lambda: None)
        os.kill(os.getpid(), signal.SIGKILL)
    """, str(db))
    assert killed.returncode == -signal.SIGKILL
    assert db.with_name("state.db.sock").exists()
    store.acquire_owner()
    woke = threading.Event()
    store.listen(woke.set)
    open_db().create_session(new())
    assert woke.wait(1.0)


# -- durability and configuration --------------------------------------------------------------


def test_everything_committed_survives_the_writer_being_killed(db: Path, open_db: Any) -> None:
    """Data a child process reported committed is all there after it is SIGKILLed mid-stream."""
    writer = spawn_python("""
        import sys
        from datetime import datetime, timedelta, timezone
        from tickloop.runs import LogLine
        from tickloop.schedule import Schedule
        from tickloop.store import NewSession, RunFinish, RunStart
        from tickloop_sql.sqlite import open_store
        store = open_store("sqlite:///" + sys.argv[1])
        t = datetime(2026, 1, 5, tzinfo=timezone.utc)
        i = 0
        while True:
            i += 1
            s, _ = store.create_session(NewSession("a", "a", f"0x{i}", "auto", Schedule.rolling(1), {"i": i}, None,
                                                   t, t))
            runs = store.start_runs([RunStart(s.id, "run", t, t) for _ in range(3)])
            store.finish_runs([RunFinish(r.id, s.id, "succeeded", t, logs=(LogLine(t, "info", f"{r.id}"),),
                                         next_run_at=t + timedelta(minutes=1), last_scheduled_at=t) for r in runs])
            store.transition(s.id, "pause", at=t)
            print(s.id, *(r.id for r in runs), flush=True)
    """, str(db))
    reported: list[list[int]] = []
    try:
        assert writer.stdout is not None
        while len(reported) < 40:
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else ""
            reported.append([int(x) for x in line.split()])
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
    store = open_db()
    assert not store.owned_by_other_process()
    for session_id, *run_ids in reported:
        session = store.get_session(session_id)
        assert session.state is State.PAUSED and session.settings == {"i": session_id}
        assert [t.action for t in store.transitions(session_id)] == ["start", "pause"]
        assert [(r.id, r.status, r.logs[0].message) for r in store.runs(session_id=session_id, logs=True)] == \
            [(rid, SUCCEEDED, str(rid)) for rid in reversed(run_ids)]
    # Whatever the kill interrupted is either all there or not there at all.
    for session in store.list_sessions():
        assert store.transitions(session.id)[0].action == "start"
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.run_logs)).scalar_one() == \
            conn.execute(select(func.count()).select_from(tables.runs).where(tables.runs.c.status != RUNNING)).scalar()


def test_the_plugin_registers_sqlite_and_opens_the_default_url(tmp_path: Path) -> None:
    """The sql plugin offers the sqlite backend; its factory opens <home>/state.db, creating folders."""
    backend = Registry.from_plugin_manager(make_plugin_manager()).get("store", "sqlite", key="state.url")
    assert backend.plugin == "sql" and backend.description
    config = Config.load(home=tmp_path / "new-home", env={})
    store = backend.factory(config, config.state_url)
    try:
        assert isinstance(store, SqlStateStore) and store.url == config.state_url
        assert (tmp_path / "new-home" / "state.db").exists()
        assert store.sessions_revision() == 0
    finally:
        store.close()
    relative = Config.load(home=tmp_path / "h", env={}, overrides={"state": {"url": "sqlite:///data/s.db"}})
    backend.factory(relative, relative.state_url).close()
    assert (tmp_path / "h" / "data" / "s.db").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite://host/x.db", "sqlite:///x.db?mode=ro",
                                 "postgresql://localhost/db", "not a url"])
def test_a_bad_url_is_a_config_error_on_state_url(tmp_path: Path, url: str) -> None:
    """Anything but sqlite:///PATH is refused with the key and the reason."""
    backend = Registry.from_plugin_manager(make_plugin_manager()).get("store", "sqlite", key="state.url")
    with pytest.raises(ConfigError, match=r"^config: state\.url: .*expected sqlite:///PATH") as caught:
        backend.factory(Config.load(home=tmp_path, env={}), url)
    assert caught.value.problems[0].key == "state.url"


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    """Pointing state.url at some other file says which file and why, instead of a traceback."""
    other = tmp_path / "notes.txt"
    other.write_text("not a database, just some text that is long enough to have a header" * 20)
    with pytest.raises(ConfigError, match=f"state.url: cannot open {other}: file is not a database"):
        open_store(f"sqlite:///{other}")


def test_reopening_keeps_everything_and_counts_on(open_db: Any) -> None:
    """A second open of the same file sees the data, the revision and continues the ids."""
    first = open_db()
    session, _ = first.create_session(new())
    revision = first.sessions_revision()
    first.close()
    again = open_db()
    assert again.get_session(session.id) == session and again.sessions_revision() == revision
    assert again.create_session(new(wallet="0x2"))[0].id == session.id + 1
