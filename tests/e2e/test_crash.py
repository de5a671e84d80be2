"""Crash safety: SIGKILL a serve process in the middle of a run and restart it."""

from __future__ import annotations


import pytest

from helpers import wait_until

WALLETS = ["0x" + f"{i:02x}" * 20 for i in (1, 2, 3)]

# Each run bumps a memory counter and, once the write has returned (acknowledged), appends it to
# an ack file. Session 1's third run then hangs, so the test can kill serve during a run.
WRITER = """
import os, time

def run(agent):
    n = int(agent.memory.get("n").data.value or 0) + 1
    agent.memory.set("n", str(n))
    with open(os.environ["TL_ACKS"], "a") as f:
        f.write(f"{agent.sessionId} {n}\\n"); f.flush(); os.fsync(f.fileno())
    agent.log(f"run {n}")
    if agent.settings["hang_at"] == n and not agent.memory.get("hung", shared=True).data.value:
        agent.memory.set("hung", "1", shared=True)
        open(os.environ["TL_MARK"], "w").close()
        time.sleep(600)
"""
SETTINGS = {"hang_at": {"type": "integer", "default": 0, "description": "run number that hangs"}}


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_sigkill_during_a_run_loses_nothing_acknowledged(tickloop_home, agent_folder, serve, make_runtime, tmp_path,
                                                         executor):
    """After SIGKILL mid-run, every session, committed run and acknowledged memory write is there."""
    acks, mark = tmp_path / "acks", tmp_path / "mark"
    env = {"TL_ACKS": str(acks), "TL_MARK": str(mark)}
    (tickloop_home / "tickloop.toml").write_text(f'[runtime]\nexecutor = "{executor}"\nworker_env = ["TL_*"]\n')
    folder = agent_folder(WRITER, runtimeIntervalMinutes=0.005, settings=SETTINGS)  # 0.3 s
    setup = make_runtime(memory="diskcache", executor=executor)
    ids = [setup.start_session(str(folder), w, settings={"hang_at": 3 if i == 0 else 0}).id
           for i, w in enumerate(WALLETS)]
    setup.close()

    first = serve(tickloop_home, env)
    first.ready()
    wait_until(mark.exists, timeout=20)
    reader = make_runtime(memory="diskcache")
    committed = {r.id: r for r in reader.runs() if r.status != "running"}
    first.kill()

    acked: dict[int, int] = {}
    for line in acks.read_text().splitlines():
        sid, n = map(int, line.split())
        acked[sid] = max(acked.get(sid, 0), n)

    after = make_runtime(memory="diskcache")
    assert [s.id for s in after.sessions()] == ids and all(s.state == "running" for s in after.sessions())
    stored = {r.id: r for r in after.runs()}
    for run_id, run in committed.items():
        assert stored[run_id] == run
    for sid, n in acked.items():
        assert int(after.memory(sid).get("n").data.value) >= n
    assert int(after.memory(ids[0]).get("n").data.value) == 3
    # The hung run is in flight; with the inline executor the rest of its batch is too.
    in_flight = [r for r in stored.values() if r.status == "running"]
    assert ids[0] in {r.session_id for r in in_flight}

    second = serve(tickloop_home, env)
    second.ready()
    wait_until(lambda: all(after.store.get_run(r.id).status == "failed" for r in in_flight), timeout=10)
    assert all(after.store.get_run(r.id).error.startswith("interrupted") for r in in_flight)
    # Every session keeps running after the restart, the interrupted one included.
    wait_until(lambda: all(int(after.memory(sid).get("n").data.value) > acked.get(sid, 0) + 1 for sid in ids),
               timeout=15)
    assert second.stop() == 0
