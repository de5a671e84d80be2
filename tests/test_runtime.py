"""The runtime through its Python interface: schedules, lifecycle, runs, memory, hooks."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

import tickloop
from tickloop.errors import SettingsError, TickloopError, TransitionError, UnknownAgentError, UnknownBackendError
from tickloop.testing import T0

WALLET = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
M = timedelta(minutes=1)

COUNTER = """
def run(agent):
    n = int(agent.memory.get("n").data.value or 0) + 1
    agent.memory.set("n", str(n))
    agent.log(f"run {n}")

def unwind(agent, portfolio):
    agent.log(f"unwinding {len(portfolio.positions)} positions")
"""


def test_first_run_is_immediate_and_rolling_waits_for_completion(make_runtime, agent_folder):
    """A session's first run is due at start; the next is one interval after the run completes."""
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    assert rt.session(s.id).next_run_at == T0
    [run] = rt.tick(T0)
    assert (run.scheduled_at, run.started_at, run.finished_at, run.status) == (T0, T0, T0, "succeeded")
    assert rt.session(s.id).next_run_at == T0 + 15 * M
    assert rt.tick(T0 + 15 * M - timedelta(seconds=1)) == []
    [second] = rt.tick(T0 + 15 * M + timedelta(seconds=30))
    assert second.scheduled_at == T0 + 15 * M
    assert rt.session(s.id).next_run_at == T0 + 30 * M + timedelta(seconds=30)
    assert [line.message for r in rt.runs(s.id) for line in r.logs] == ["run 1", "run 2"]


def test_fixed_schedule_sits_on_clock_boundaries(make_runtime, agent_folder):
    """A fixed 15-minute session starts at once, then runs at :15, :30 … and skips boundaries it missed."""
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(COUNTER, schedule="fixed")), WALLET, now=T0 + 7 * M)
    assert [r.scheduled_at for r in rt.tick(T0 + 7 * M)] == [T0 + 7 * M]
    assert rt.session(s.id).next_run_at == T0 + 15 * M
    # The runtime was away past two boundaries: one run now, then the next boundary.
    [late] = rt.tick(T0 + 47 * M)
    assert late.scheduled_at == T0 + 15 * M
    assert rt.session(s.id).next_run_at == T0 + 60 * M


def test_failing_run_is_recorded_and_the_schedule_goes_on(make_runtime, agent_folder):
    """An exception in run is a failed run with its traceback; the session keeps its schedule."""
    rt = make_runtime()
    folder = agent_folder("def run(agent):\n    agent.log('before')\n    raise ValueError('boom')\n")
    s = rt.start_session(str(folder), WALLET, now=T0)
    [run] = rt.tick(T0)
    assert run.status == "failed"
    assert run.error == "ValueError: boom"
    assert "main.py" in run.traceback and "raise ValueError('boom')" in run.traceback
    assert [line.message for line in run.logs] == ["before"]
    assert rt.session(s.id).state == "running"
    assert [r.status for r in rt.tick(T0 + 15 * M)] == ["failed"]
    stored = rt.runs(s.id)
    assert [r.status for r in stored] == ["failed", "failed"] and stored[0].traceback == run.traceback


def test_context_carries_session_fields_and_settings(make_runtime, agent_folder):
    """run(agent) sees its session id, wallet, mode, resolved settings and an empty portfolio."""
    main = """
def run(agent):
    agent.log(f"{agent.sessionId}|{agent.sessionWalletAddress}|{agent.executionMode}|{agent.settings}")
    agent.log(f"{agent.session_id == agent.sessionId}|{len(agent.portfolio.balances)}|{len(agent.portfolio.positions)}")
"""
    settings = {"size": {"type": "number", "default": 1.5, "description": "d"},
                "coin": {"type": "single_select", "options": ["BTC", "ETH"], "default": "BTC", "description": "d"}}
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(main, settings=settings)), WALLET, mode="manual",
                         settings={"coin": "ETH"}, now=T0)
    [run] = rt.tick(T0)
    # The wallet in its canonical form: EIP-55 checksum, whatever letter case it was given in.
    assert s.wallet.lower() == WALLET.lower() and s.wallet != WALLET.lower()
    assert [line.message for line in run.logs] == [
        f"{s.id}|{s.wallet}|manual|{{'size': 1.5, 'coin': 'ETH'}}", "True|0|0"]


def test_pause_keeps_the_schedule_and_resume_never_catches_up(make_runtime, agent_folder):
    """Paused sessions do not run; resume continues at the next scheduled point at or after now."""
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    rt.tick(T0)
    rt.pause(s.id, T0 + 5 * M)
    assert rt.tick(T0 + 15 * M) == [] and rt.tick(T0 + 30 * M) == []
    resumed = rt.resume(s.id, T0 + 40 * M)
    assert resumed.state == "running"
    assert resumed.next_run_at == T0 + 45 * M  # completion + 3 intervals, not now
    assert rt.tick(T0 + 40 * M) == []
    assert [r.scheduled_at for r in rt.tick(T0 + 45 * M)] == [T0 + 45 * M]


def test_resume_before_the_next_point_keeps_it(make_runtime, agent_folder):
    """Resuming before the paused next run keeps that run's time, as if never paused."""
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(COUNTER, schedule="fixed")), WALLET, now=T0)
    rt.tick(T0)
    rt.pause(s.id, T0 + 1 * M)
    assert rt.resume(s.id, T0 + 2 * M).next_run_at == T0 + 15 * M


def test_stop_clears_session_memory_but_not_shared_memory(make_runtime, agent_folder):
    """Stopping ends the session and clears its memory; the agent's shared memory stays."""
    main = """
def run(agent):
    agent.memory.set("mine", "1")
    agent.memory.set("ours", "2", shared=True)
"""
    rt = make_runtime()
    folder = agent_folder(main)
    s = rt.start_session(str(folder), WALLET, now=T0)
    rt.tick(T0)
    assert rt.memory(s.id).get("mine").data.value == "1"
    stopped = rt.stop(s.id, T0 + M)
    assert stopped.state == "stopped" and stopped.next_run_at is None
    assert rt.memory(s.id).get("mine").data.value is None
    assert rt.memory(s.id).get("ours", shared=True).data.value == "2"
    assert rt.tick(T0 + 15 * M) == []
    with pytest.raises(TransitionError, match="cannot resume a session that is stopped"):
        rt.resume(s.id, T0 + 16 * M)


def test_unwind_calls_the_agent_then_stops(make_runtime, agent_folder):
    """Unwind runs the agent's unwind with the portfolio once, then the session is stopped."""
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    rt.tick(T0)
    done = rt.unwind(s.id, now=T0 + M)
    assert done.state == "stopped"
    last = rt.runs(s.id)[-1]
    assert (last.kind, last.status, [line.message for line in last.logs]) == (
        "unwind", "succeeded", ["unwinding 0 positions"])
    assert [(t.action, str(t.from_state), str(t.to_state)) for t in rt.transitions(s.id)] == [
        ("start", "created", "running"), ("unwind", "running", "unwinding"), ("unwound", "unwinding", "stopped")]
    assert rt.memory(s.id).get("n").data.value is None


def test_outage_coalesces_missed_runs_into_one(make_runtime, agent_folder):
    """After three hours without ticks, a rolling session runs once, then continues from that run."""
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    rt.tick(T0)
    runs = rt.tick(T0 + 180 * M)
    assert [(r.scheduled_at, r.status) for r in runs] == [(T0 + 15 * M, "succeeded")]
    assert rt.session(s.id).next_run_at == T0 + 195 * M


def test_outage_with_skip_policy_records_a_skipped_run(make_runtime, agent_folder):
    """With missed_runs = "skip", a run missed by more than the grace is skipped, not run."""
    missed = []

    class Recorder:
        @tickloop.hookimpl
        def tickloop_run_missed(self, session, scheduled_at, policy):
            missed.append((session.id, scheduled_at, policy))

    rt = make_runtime(overrides={"runtime": {"missed_runs": "skip", "misfire_grace_seconds": 60}},
                      plugins=[Recorder()])
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    rt.tick(T0)
    [skipped] = rt.tick(T0 + 181 * M)
    assert (skipped.status, skipped.scheduled_at) == ("skipped", T0 + 15 * M)
    assert missed == [(s.id, T0 + 15 * M, "skip")]
    assert rt.session(s.id).next_run_at == T0 + 195 * M
    assert rt.memory(s.id).get("n").data.value == "1"  # the skipped run did not call the agent
    # Lateness within the grace is not an outage.
    [ran] = rt.tick(T0 + 195 * M + timedelta(seconds=30))
    assert ran.status == "succeeded"


def test_hooks_see_the_lifecycle_in_order(make_runtime, agent_folder):
    """Session and run hooks fire in lifecycle order, and a run wrapper sees every outcome."""
    calls = []

    class Recorder:
        @tickloop.hookimpl
        def tickloop_session_transitioned(self, session, transition):
            calls.append(f"session:{transition.action}")

        @tickloop.hookimpl
        def tickloop_run_started(self, session, run):
            calls.append(f"started:{run.kind}")

        @tickloop.hookimpl
        def tickloop_run_finished(self, session, run):
            calls.append(f"finished:{run.kind}:{run.status}")

        @tickloop.hookimpl(wrapper=True)
        def tickloop_run_call(self, job, context, function):
            calls.append("wrap:before")
            outcome = yield
            calls.append(f"wrap:after:{outcome.status}")
            return outcome

    rt = make_runtime(plugins=[Recorder()])
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    rt.tick(T0)
    rt.pause(s.id, T0 + M)
    rt.resume(s.id, T0 + 2 * M)
    rt.unwind(s.id, now=T0 + 3 * M)
    assert calls == [
        "session:start", "started:run", "wrap:before", "wrap:after:succeeded", "finished:run:succeeded",
        "session:pause", "session:resume", "session:unwind", "started:unwind", "wrap:before",
        "wrap:after:succeeded", "finished:unwind:succeeded", "session:unwound"]


def test_a_change_made_elsewhere_reaches_the_loop(make_runtime, agent_folder, tickloop_home):
    """A pause written by another runtime on the same home stops the next tick from running it."""
    rt = make_runtime(memory="diskcache")
    other = make_runtime(memory="diskcache")
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    rt.tick(T0)
    other.pause(s.id, T0 + M)
    assert rt.tick(T0 + 15 * M) == []
    other.resume(s.id, T0 + 16 * M)
    assert [r.scheduled_at for r in rt.tick(T0 + 30 * M)] == [T0 + 30 * M]


def test_memory_survives_a_restart(make_runtime, agent_folder, tickloop_home):
    """Session memory written by one runtime is there for the next one on the same home."""
    folder = agent_folder(COUNTER)
    first = make_runtime(memory="diskcache")
    s = first.start_session(str(folder), WALLET, now=T0)
    first.tick(T0)
    first.close()
    second = make_runtime(memory="diskcache")
    assert second.memory(s.id).get("n").data.value == "1"
    [run] = second.tick(T0 + 15 * M)
    assert [line.message for line in run.logs] == ["run 2"]


def test_sessions_are_isolated_by_session_and_agent(make_runtime, agent_folder):
    """Two sessions of one agent share only shared memory; another agent sees neither."""
    main = """
def run(agent):
    agent.memory.set("who", str(agent.sessionId))
    seen = agent.memory.get("seen", shared=True).data.value or ""
    agent.memory.set("seen", seen + str(agent.sessionId), shared=True)
"""
    rt = make_runtime()
    a1 = rt.start_session(str(agent_folder(main, name="alpha")), WALLET, now=T0)
    a2 = rt.start_session(str(agent_folder(main, name="alpha")), OTHER, now=T0)
    b1 = rt.start_session(str(agent_folder(main, name="beta")), WALLET, now=T0)
    rt.tick(T0)
    assert [rt.memory(x.id).get("who").data.value for x in (a1, a2, b1)] == [str(a1.id), str(a2.id), str(b1.id)]
    assert sorted(rt.memory(a1.id).get("seen", shared=True).data.value) == sorted(f"{a1.id}{a2.id}")
    assert rt.memory(b1.id).get("seen", shared=True).data.value == str(b1.id)


def test_the_same_agent_twice_on_one_wallet_is_refused(make_runtime, agent_folder):
    """An open session of an agent blocks a second one on the same wallet, not on another wallet."""
    rt = make_runtime()
    folder = str(agent_folder(COUNTER))
    first = rt.start_session(folder, WALLET, now=T0)
    with pytest.raises(TickloopError, match=f"already has session {first.id} .* on wallet {first.wallet}"):
        rt.start_session(folder, WALLET, now=T0)
    with pytest.raises(TickloopError, match="already has session"):  # the same wallet in other letters
        rt.start_session(folder, WALLET.upper().replace("0X", "0x"), now=T0)
    rt.start_session(folder, OTHER, now=T0)
    rt.stop(first.id, T0)
    rt.start_session(folder, WALLET, now=T0)


def test_bad_start_requests_are_refused_with_the_reason(make_runtime, agent_folder):
    """Unknown agents, bad modes, bad wallets and bad settings are refused, naming what is wrong."""
    rt = make_runtime()
    folder = str(agent_folder(COUNTER, allowedExecutionModes=["auto"],
                              settings={"size": {"type": "integer", "default": 1, "description": "d"}}))
    with pytest.raises(UnknownAgentError, match="unknown agent 'nope'"):
        rt.start_session("nope", WALLET)
    with pytest.raises(SettingsError, match="mode 'manual' is not allowed"):
        rt.start_session(folder, WALLET, mode="manual")
    with pytest.raises(TickloopError, match="not a well-formed ethereum address"):
        rt.start_session(folder, "0x1234")
    with pytest.raises(SettingsError, match=re.escape("settings.size")):
        rt.start_session(folder, WALLET, settings={"size": "many"})
    assert rt.sessions() == []


def test_unknown_backend_lists_what_is_installed(make_runtime):
    """A backend name nobody provides is an error naming the key and the installed choices."""
    with pytest.raises(UnknownBackendError, match=r"memory.backend: unknown memory backend 'nosuch'; installed: "
                                                  r"diskcache, memory"):
        make_runtime(memory="nosuch")
    with pytest.raises(UnknownBackendError, match=r"runtime.executor: .*'warp'.*inline, process"):
        make_runtime(executor="warp")


def test_run_now_runs_one_session_outside_its_schedule(make_runtime, agent_folder):
    """run_now runs just that session and reschedules it from this run's completion."""
    rt = make_runtime()
    a = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    b = rt.start_session(str(agent_folder(COUNTER, name="other")), WALLET, now=T0)
    run = rt.run_now(a.id, T0 + M)
    assert (run.session_id, run.scheduled_at) == (a.id, T0 + M)
    assert rt.session(a.id).next_run_at == T0 + 16 * M
    assert [r.session_id for r in rt.tick(T0 + M)] == [b.id]


def test_a_failing_plugin_hook_does_not_break_the_loop(make_runtime, agent_folder, caplog):
    """An exception in a lifecycle hook is logged; runs are still recorded and rescheduled."""

    class Broken:
        @tickloop.hookimpl
        def tickloop_run_finished(self, session, run):
            raise RuntimeError("plugin bug")

        @tickloop.hookimpl
        def tickloop_session_transitioned(self, session, transition):
            raise RuntimeError("plugin bug")

    rt = make_runtime(plugins=[Broken()])
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    [run] = rt.tick(T0)
    assert run.status == "succeeded"
    assert rt.session(s.id).next_run_at == T0 + 15 * M
    assert [r.status for r in rt.tick(T0 + 15 * M)] == ["succeeded"]
    assert "tickloop_run_finished" in caplog.text and "plugin bug" in caplog.text


def test_memory_written_by_a_run_that_outlives_its_session_is_cleared(make_runtime, agent_folder):
    """A stop that lands while a run is in flight still leaves no session memory behind."""
    holder = {}

    class StopMidRun:
        @tickloop.hookimpl(wrapper=True)
        def tickloop_run_call(self, job, context, function):
            holder["rt"].stop(job.session_id, T0)  # the stop lands before the agent writes
            return (yield)

    rt = make_runtime(plugins=[StopMidRun()])
    holder["rt"] = rt
    s = rt.start_session(str(agent_folder(COUNTER)), WALLET, now=T0)
    [run] = rt.tick(T0)
    assert run.status == "succeeded" and rt.session(s.id).state == "stopped"
    assert rt.memory(s.id).get("n").data.value is None
