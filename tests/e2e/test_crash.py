"""Crash safety: SIGKILL a serve process in the middle of a run and restart it."""

from __future__ import annotations

from datetime import timedelta

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


# Every session logs and finishes, except the last one started, which hangs: with the inline
# executor all five runs are dispatched in one batch, so the four before it have finished (but
# the batch is not committed) when serve is killed.
BATCH = """
import os, time

def run(agent):
    agent.log(f"session {agent.sessionId} ran")
    if agent.settings["hang"] and not os.path.exists(os.environ["TL_MARK"]):
        open(os.environ["TL_MARK"], "w").close()
        time.sleep(600)
"""


def test_sigkill_mid_batch_keeps_every_finished_run(tickloop_home, agent_folder, serve, make_runtime, tmp_path):
    """A run whose agent finished is recorded with its outcome and log lines even when serve is
    killed before its group is committed; only the run in progress is interrupted, and the
    finished ones do not run again at restart."""
    mark = tmp_path / "mark"
    (tickloop_home / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\n')
    folder = agent_folder(BATCH, runtimeIntervalMinutes=60,
                          settings={"hang": {"type": "boolean", "default": False, "description": "hang"}})
    setup = make_runtime(memory="diskcache")
    wallets = ["0x" + f"{i:02x}" * 20 for i in range(1, 6)]
    ids = [setup.start_session(str(folder), w, settings={"hang": w == wallets[-1]}).id for w in wallets]
    setup.close()

    first = serve(tickloop_home, {"TL_MARK": str(mark)})
    first.ready()
    wait_until(mark.exists, timeout=20)
    reader = make_runtime(memory="diskcache")
    assert all(r.status == "running" for r in reader.runs())  # nothing of the batch is committed yet
    first.kill()

    second = serve(tickloop_home, {"TL_MARK": str(mark)})
    second.ready()
    wait_until(lambda: len(reader.runs()) == 6 and all(r.status != "running" for r in reader.runs()), timeout=10)
    runs = {r.session_id: r for r in reader.runs()[:5]}
    # Only the interrupted session runs again at restart; the finished ones are not due for an hour.
    assert [r.session_id for r in reader.runs()[5:]] == [ids[-1]]
    for sid in ids[:-1]:
        assert runs[sid].status == "succeeded"
        assert [line.message for line in runs[sid].logs] == [f"session {sid} ran"]
        assert reader.session(sid).next_run_at == runs[sid].finished_at + timedelta(minutes=60)
    assert runs[ids[-1]].status == "failed" and runs[ids[-1]].error.startswith("interrupted")
    assert second.stop() == 0
