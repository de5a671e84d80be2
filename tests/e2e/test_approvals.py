"""Approvals racing across processes: one execution, the others refused with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

import sim_venue
from helpers import wait_until
from tickloop.testing import T0

TESTS = Path(__file__).resolve().parents[1]
WALLET = "0x" + "ab" * 20
MANUAL = """
def run(agent):
    r = agent.platforms.sim.place_order({"coin": "BTC", "side": "buy", "size": 0.01, "price": 60000,
                                         "market": "perp", "type": "market"})
    agent.log(f"suggested {r.data.suggestionId}")
"""
# Builds its own runtime on the shared home, says "ready", waits for the go file, approves.
APPROVER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tickloop.errors import TickloopError
    from tickloop.runtime import Runtime

    home, suggestion_id, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    rt = Runtime.from_config(home=home)
    rt.gateway.venues.get("sim")  # open the store and the venue before the race
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    try:
        print(json.dumps({"status": rt.approve(suggestion_id).status}), flush=True)
    except TickloopError as exc:
        print(json.dumps({"refused": str(exc)}), flush=True)
    rt.close()
""")


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_approving_one_suggestion_at_once_execute_it_once(tickloop_home, agent_folder, make_runtime,
                                                                    tmp_path, monkeypatch, processes):
    """Each process has its own runtime on the same home; they approve at the same moment."""
    journal, go = tmp_path / "journal.jsonl", tmp_path / "go"
    monkeypatch.setenv("SIM_VENUE_JOURNAL", str(journal))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    (tickloop_home / "tickloop.toml").write_text('[plugins]\nload = ["sim_venue"]\n')
    sim_venue.reset()
    rt = make_runtime()
    s = rt.start_session(str(agent_folder(MANUAL)), WALLET, mode="manual", now=T0)
    [run] = rt.tick(T0)
    [suggestion] = rt.suggestions(session_id=s.id)
    assert [line.message for line in run.logs] == [f"suggested {suggestion.id}"]
    assert sim_venue.journal() == []

    procs = [subprocess.Popen([sys.executable, "-c", APPROVER, str(tickloop_home), str(suggestion.id), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(processes)]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line == "ready\n", p.stderr.read() if p.stderr else line
        go.touch()
        answers = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            answers.append(json.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    assert sorted(a.get("status", "refused") for a in answers) == ["executed"] + ["refused"] * (processes - 1)
    for answer in answers:
        if "refused" in answer:
            assert answer["refused"].startswith(f"cannot approve suggestion {suggestion.id}: it was already ")
    assert sim_venue.journal() == [{"method": "place_order", "params": suggestion.action.params, "session_id": s.id}]
    assert rt.suggestion(suggestion.id).status == "executed"
    [position] = rt.portfolio(s.id).positions
    assert position.size == "0.01"


def test_approving_a_closing_order_elsewhere_lets_serve_finish_a_manual_unwind(tickloop_home, agent_folder, serve,
                                                                               make_runtime, tmp_path, monkeypatch):
    """serve runs a manual session's unwind; its closing order is approved from another process
    (executed there); serve then runs the close run and stops the session, flat."""
    journal = tmp_path / "journal.jsonl"
    monkeypatch.setenv("SIM_VENUE_JOURNAL", str(journal))
    env = {"SIM_VENUE_JOURNAL": str(journal),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    (tickloop_home / "tickloop.toml").write_text(
        '[runtime]\nexecutor = "inline"\n[memory]\nbackend = "diskcache"\n[plugins]\nload = ["sim_venue"]\n')
    sim_venue.reset()
    rt = make_runtime(memory="diskcache", clock=lambda: datetime.now(UTC))
    s = rt.start_session(str(agent_folder(MANUAL)), WALLET, mode="manual")
    server = serve(tickloop_home, env)
    server.ready()

    def pending() -> list:
        return rt.suggestions(session_id=s.id, status="pending")

    [opening] = wait_until(pending, timeout=20)
    rt.approve(opening.id)
    rt.unwind(s.id)  # serve owns the store: it runs the unwind
    [closing] = wait_until(pending, timeout=20)
    assert closing.action.params["reduceOnly"] is True
    assert rt.session(s.id).state == "unwinding"
    assert [e["params"]["side"] for e in sim_venue.journal()] == ["buy"]
    rt.approve(closing.id)
    wait_until(lambda: rt.session(s.id).state == "stopped", timeout=20)
    assert server.stop() == 0
    assert [e["params"]["side"] for e in sim_venue.journal()] == ["buy", "sell"]
    assert [r.kind for r in rt.runs(s.id)][-2:] == ["unwind", "close"]
    assert rt.portfolio(s.id).positions == ()
