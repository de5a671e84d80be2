"""A real serve with the process executor survives agents that log and raise lone surrogates.

Issue #8: such an agent crashed ``serve`` with UnicodeEncodeError at the first completion (SQLite
cannot encode "\\udcff"), the other sessions' runs stayed ``running``, and every restart crashed
again. Now the text is stored escaped, serve keeps running, and a restart goes on the same way.
"""

from __future__ import annotations

import json

from helpers import tickloop, wait_until

WALLET = "0x" + "ab" * 20
HOSTILE = r"""
def run(agent):
    agent.log("said " + agent.settings["greeting"] + " \udcff")
    agent.memory.set("k\udcff", "v\udcff")
    raise ValueError("bad \udcff")
"""
PLAIN = "def run(agent):\n    agent.log('fine')\n"
GREETING = {"greeting": {"type": "text", "default": "hi", "description": "what to say"}}


def runs_of(home, sid):
    return json.loads(tickloop(home, "runs", "list", "--session", str(sid), "--limit", "1000", "--json",
                               check=True).stdout)


def test_serve_survives_lone_surrogates_and_restarts_cleanly(tickloop_home, agent_folder, serve):
    (tickloop_home / "tickloop.toml").write_text('[runtime]\nexecutor = "process"\nworkers = 2\n')
    hostile = agent_folder(HOSTILE, name="hostile", settings=GREETING, runtimeIntervalMinutes=0.01)  # 0.6 s
    plain = agent_folder(PLAIN, name="plain", runtimeIntervalMinutes=0.01)
    # The argument reaches tickloop as the byte 0xff, which click hands over as "\udcff".
    bad = json.loads(tickloop(tickloop_home, "sessions", "start", str(hostile), "--wallet", WALLET,
                              "--setting", "greeting=\udcff", "--json", check=True).stdout)
    assert bad["settings"] == {"greeting": "\\udcff"}
    good = json.loads(tickloop(tickloop_home, "sessions", "start", str(plain), "--wallet", WALLET, "--json",
                               check=True).stdout)

    def succeeded() -> list[dict]:
        return [r for r in runs_of(tickloop_home, good["id"]) if r["status"] == "succeeded"]

    for attempt in range(2):  # the second serve starts on the state the first one left
        s = serve(tickloop_home)
        s.ready()
        before = len(runs_of(tickloop_home, bad["id"]))
        wait_until(lambda s=s, before=before, attempt=attempt: (
            s.proc.poll() is not None or (len(runs_of(tickloop_home, bad["id"])) >= before + 2
                                          and len(succeeded()) >= 2 * (attempt + 1))), timeout=20)
        assert s.proc.poll() is None, f"serve exited {s.proc.returncode}: {s.proc.stderr.read()[-2000:]}"
        assert s.stop() == 0

    failed = [r for r in runs_of(tickloop_home, bad["id"]) if r["status"] != "running"]
    assert failed and all(r["status"] == "failed" and "ValueError: bad" in r["error"] for r in failed)
    assert all(r["status"] != "running" for r in runs_of(tickloop_home, good["id"]))
    logs = tickloop(tickloop_home, "logs", "--session", str(bad["id"]), check=True)
    assert "said \\udcff \\udcff" in logs.stdout and "Traceback" not in logs.stderr
    shown = tickloop(tickloop_home, "runs", "list", "--session", str(bad["id"]), check=True)
    assert "failed" in shown.stdout and "Traceback" not in shown.stderr
