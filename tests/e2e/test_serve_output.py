"""What a real ``tickloop serve`` prints while it works: a line per finished run and per
lifecycle change it makes, as plain text on a pipe or as JSON lines with ``--json``."""

from __future__ import annotations

import json
import re
import signal

import pytest

from helpers import tickloop, wait_until

WALLET = "0x" + "ab" * 20
SECRET = "tok-" + "s3cr3t" * 4
# The second run fails: its error is printed, its traceback is not.
FLAKY = """
def run(agent):
    n = int(agent.memory.get("n").data.value or 0) + 1
    agent.memory.set("n", str(n))
    agent.log(f"run {n}")
    if n == 2:
        raise ValueError("boom")

def unwind(agent, portfolio):
    agent.log("unwound")
"""


def _serve_a_session_through_its_life(home, agent_folder, serve, reader, *args: str) -> tuple[int, str, str]:
    """serve runs a session until one run succeeded and one failed, carries out an unwind asked
    for by the CLI, and is stopped; returns the session id, serve's stdout and stderr."""
    (home / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\n')
    folder = agent_folder(FLAKY, name="flaky", runtimeIntervalMinutes=0.01)  # every 0.6 s
    s = serve(home, {"TICKLOOP_API_TOKEN": SECRET}, *args)
    s.ready()
    sid = json.loads(tickloop(home, "sessions", "start", str(folder), "--wallet", WALLET, "--json",
                              check=True).stdout)["id"]
    wait_until(lambda: len([r for r in reader.runs(sid) if r.status != "running"]) >= 2, timeout=20)
    tickloop(home, "sessions", "unwind", str(sid), "--reason", "done for today", check=True)
    wait_until(lambda: reader.session(sid).state == "stopped", timeout=20)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.stdout is not None and s.proc.stderr is not None
    out, err = s.proc.stdout.read(), s.proc.stderr.read()
    assert s.stop() == 0, err
    assert SECRET not in out + err and "Traceback" not in out + err
    return sid, out, err


def test_serve_prints_a_plain_line_per_run_and_lifecycle_change(tickloop_home, agent_folder, serve, make_runtime):
    sid, out, err = _serve_a_session_through_its_life(tickloop_home, agent_folder, serve,
                                                      make_runtime(memory="diskcache"))
    assert "\x1b[" not in out  # a pipe gets plain text
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
    head = rf"^{stamp} session {sid} \(flaky\): "
    assert re.search(head + r"run 1 succeeded in \d+\.\d{3}s$", out, re.MULTILINE), out
    assert re.search(head + r"run 2 failed in \d+\.\d{3}s: ValueError: boom$", out, re.MULTILINE), out
    assert 'File "' not in out and "raise ValueError" not in out
    assert re.search(head + r"unwind \d+ succeeded in \d+\.\d{3}s$", out, re.MULTILINE), out
    assert re.search(head + r"unwound unwinding -> stopped", out, re.MULTILINE), out
    assert "tickloop serve: stopped" in err and "Ctrl-C" not in out


def test_serve_json_prints_one_event_object_per_line(tickloop_home, agent_folder, serve, make_runtime):
    sid, out, _ = _serve_a_session_through_its_life(tickloop_home, agent_folder, serve,
                                                    make_runtime(memory="diskcache"), "--json")
    events = [json.loads(line) for line in out.splitlines()]
    runs = [e for e in events if e["event"] == "run_finished"]
    assert {tuple(e) for e in runs} == {("event", "at", "session", "agent", "run", "kind", "status", "duration",
                                          "error")}
    first, second = runs[:2]
    assert (first["session"], first["agent"], first["kind"], first["status"], first["error"]) == \
        (sid, "flaky", "run", "succeeded", None)
    assert (second["status"], second["error"]) == ("failed", "ValueError: boom")
    assert isinstance(first["duration"], float) and first["at"].endswith("+00:00")
    assert [(e["kind"], e["status"]) for e in runs if e["kind"] != "run"] == [("unwind", "succeeded")]
    [changed] = [e for e in events if e["event"] == "session_transitioned"]
    assert (changed["session"], changed["action"], changed["from"], changed["to"]) == \
        (sid, "unwound", "unwinding", "stopped")


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_serve_with_nothing_to_do_prints_nothing_on_stdout(tickloop_home, serve, args):
    s = serve(tickloop_home, None, *args)
    s.ready()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.stdout is not None
    assert s.proc.stdout.read() == ""
    assert s.stop() == 0
