"""A real serve process: ownership of the home, and changes from other processes."""

from __future__ import annotations

import json
import time

from helpers import tickloop, wait_until

WALLET = "0x" + "ab" * 20
TICKER = "def run(agent):\n    agent.log('tick')\n"


def runs_of(home, sid):
    return json.loads(tickloop(home, "runs", "list", "--session", str(sid), "--limit", "1000", "--json",
                               check=True).stdout)


def test_a_second_serve_says_so_and_exits(tickloop_home, serve):
    """Only one serve owns a home; the second names the owner's pid and exits 1."""
    first = serve(tickloop_home)
    first.ready()
    second = tickloop(tickloop_home, "serve", timeout=30)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"another tickloop serve (pid {first.proc.pid}) owns" in second.stderr


def test_changes_made_by_the_cli_reach_serve_within_a_second(tickloop_home, agent_folder, serve, make_runtime):
    """A session started, paused and resumed from another process is acted on by serve within a second."""
    (tickloop_home / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\n')
    folder = agent_folder(TICKER, runtimeIntervalMinutes=0.02)  # 1.2 s
    s = serve(tickloop_home)
    s.ready()
    reader = make_runtime(memory="diskcache")  # reads the same home from this process
    sid = json.loads(tickloop(tickloop_home, "sessions", "start", str(folder), "--wallet", WALLET, "--json",
                              check=True).stdout)["id"]
    wait_until(lambda: reader.runs(sid), timeout=1.0)
    tickloop(tickloop_home, "sessions", "pause", str(sid), check=True)
    time.sleep(1.0)  # the pause has reached serve by now
    frozen = len(reader.runs(sid))
    time.sleep(2.5)  # two intervals: a serve that missed the pause would have run again
    assert len(reader.runs(sid)) == frozen
    tickloop(tickloop_home, "sessions", "resume", str(sid), check=True)
    # Resume waits for the next point of the series (at most one interval), then runs.
    wait_until(lambda: len(reader.runs(sid)) > frozen, timeout=1.2 + 1.0)


def test_unwind_from_the_cli_is_carried_out_by_serve(tickloop_home, agent_folder, serve, make_runtime):
    """With serve running, `sessions unwind` hands the unwind to serve, which runs it and stops the session."""
    (tickloop_home / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\n')
    main = TICKER + "\ndef unwind(agent, portfolio):\n    agent.log('unwound by serve')\n"
    folder = agent_folder(main, runtimeIntervalMinutes=10)
    s = serve(tickloop_home)
    s.ready()
    reader = make_runtime(memory="diskcache")
    sid = json.loads(tickloop(tickloop_home, "sessions", "start", str(folder), "--wallet", WALLET, "--json",
                              check=True).stdout)["id"]
    wait_until(lambda: reader.runs(sid), timeout=1.0)
    out = tickloop(tickloop_home, "sessions", "unwind", str(sid), check=True).stdout
    assert "the running serve will unwind it now" in out
    wait_until(lambda: reader.session(sid).state == "stopped", timeout=1.0)
    last = reader.runs(sid)[-1]
    assert (last.kind, last.status, [line.message for line in last.logs]) == ("unwind", "succeeded",
                                                                             ["unwound by serve"])


def test_run_refuses_while_serve_owns_the_home(tickloop_home, agent_folder, serve):
    """`tickloop run` would race serve for the same session, so it refuses with the reason."""
    s = serve(tickloop_home)
    s.ready()
    proc = tickloop(tickloop_home, "run", str(agent_folder(TICKER)), "--once")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"another tickloop serve (pid {s.proc.pid}) owns" in proc.stderr


def test_stopping_serve_waits_for_the_run_in_flight(tickloop_home, agent_folder, serve, make_runtime):
    """SIGTERM during a run lets it finish and records it before serve exits."""
    main = "import time\n\ndef run(agent):\n    agent.log('start')\n    time.sleep(1.5)\n    agent.log('end')\n"
    folder = agent_folder(main, runtimeIntervalMinutes=10)
    s = serve(tickloop_home)  # the default process executor
    s.ready()
    reader = make_runtime(memory="diskcache")
    sid = json.loads(tickloop(tickloop_home, "sessions", "start", str(folder), "--wallet", WALLET, "--json",
                              check=True).stdout)["id"]
    wait_until(lambda: reader.runs(sid), timeout=5)
    assert s.stop() == 0
    [run] = reader.runs(sid)
    assert (run.status, [line.message for line in run.logs]) == ("succeeded", ["start", "end"])


def test_an_agent_thread_that_never_ends_does_not_keep_serve_alive(tickloop_home, agent_folder, serve, make_runtime):
    """An inline agent that starts a non-daemon thread running forever: serve still exits on SIGTERM."""
    (tickloop_home / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\n')
    main = ("import threading, time\n\n"
            "def run(agent):\n"
            "    threading.Thread(target=lambda: time.sleep(3600), name='agent-forever').start()\n"
            "    agent.log('started a thread')\n")
    folder = agent_folder(main, runtimeIntervalMinutes=60)
    reader = make_runtime(memory="diskcache")
    sid = reader.start_session(str(folder), WALLET).id
    s = serve(tickloop_home)
    s.ready()
    wait_until(lambda: [r for r in reader.runs(sid) if r.status == "succeeded"], timeout=10)
    started = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - started < 8
