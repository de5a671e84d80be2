"""The process executor inside the runtime: hung agents are timed out and the session goes on."""

from __future__ import annotations

from datetime import timedelta

from tickloop.testing import T0

WALLET = "0x" + "ab" * 20
HANGS_ONCE = """
import time

def run(agent):
    first = agent.memory.get("seen").data.value is None
    agent.memory.set("seen", "1")
    agent.log("first" if first else "again")
    if first:
        time.sleep(600)
"""


def test_a_hung_agent_is_timed_out_and_runs_again_next_time(make_runtime, agent_folder):
    """A run past its timeout is killed and recorded timed_out; the next scheduled run succeeds."""
    rt = make_runtime(executor="process", memory="diskcache",
                      overrides={"runtime": {"run_timeout_seconds": 1.0, "workers": 1}})
    s = rt.start_session(str(agent_folder(HANGS_ONCE)), WALLET, now=T0)
    [hung] = rt.tick(T0)
    assert hung.status == "timed_out" and "timed out after 1" in hung.error
    assert [line.message for line in hung.logs] == ["first"]
    assert rt.session(s.id).state == "running"
    assert rt.session(s.id).next_run_at == T0 + timedelta(minutes=15)
    [again] = rt.tick(T0 + timedelta(minutes=15))
    assert (again.status, [line.message for line in again.logs]) == ("succeeded", ["again"])
