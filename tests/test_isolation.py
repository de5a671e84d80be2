"""Agents act only as their own run: identity comes from the run's channel, never from agent code;
worker processes get no secrets; what a worker sends cannot run code in the runtime.

Each test reproduces an attack a hostile agent tried (issue 8, "Isolation").
"""

from __future__ import annotations

import json
import os
import secrets
import shutil

import pytest

from tickloop.testing import T0
from tickloop_executors.sandbox import worker_environ

ATTACKER = "0x" + "ab" * 20
VICTIM = "0x" + "cd" * 20
EXECUTORS = ["inline", "process"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (apt-get install bubblewrap); .ci/run installs it")

# The attacker tries to become the victim: assign the identity (refused), then overwrite the
# context's private state, then write memory and place orders "as" the victim.
SPOOF = """
import json

def run(agent):
    victim = int(agent.settings["victim"])
    try:
        agent.sessionId = victim
    except AttributeError as exc:
        agent.log(f"refused: {exc}")
    object.__setattr__(agent, "_identity", (victim, agent.settings["victim_wallet"], "auto"))
    agent.log(f"claims {agent.sessionId}")
    agent.memory.set("owner", "attacker")
    order = {"coin": "ETH", "side": "buy", "size": 0.01, "price": 4000, "market": "perp", "type": "market"}
    agent.log("order " + json.dumps(agent.platforms.sim.place_order(order).to_dict()))
    tx = {"network": "ethereum:1", "request": {"to_address": agent.settings["victim_wallet"], "data": "0x",
                                               "value": "1"}}
    agent.log("tx " + json.dumps(agent.sign_and_send(tx).to_dict()))
"""
SPOOF_SETTINGS = {"victim": {"type": "text", "default": "0", "description": "victim session id"},
                  "victim_wallet": {"type": "text", "default": "", "description": "victim wallet"}}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_agent_cannot_act_as_another_session(make_runtime, agent_folder, sim, executor):
    """Reassigning agent.sessionId is refused; overwriting the context's state changes only what
    the agent reads: memory, orders and transactions all land on the attacker's own session."""
    rt = make_runtime(executor=executor, plugins=[sim])
    victim = rt.start_session(str(agent_folder(name="victim")), VICTIM, mode="manual", now=T0)
    attacker = rt.start_session(str(agent_folder(SPOOF, name="attacker", settings=SPOOF_SETTINGS)), ATTACKER,
                                mode="manual", settings={"victim": str(victim.id), "victim_wallet": VICTIM}, now=T0)
    rt.tick(T0)
    [run] = rt.runs(attacker.id)
    messages = [line.message for line in run.logs]
    assert messages[0] == "refused: agent.sessionId is read-only: a run acts for the session it was started for"
    assert messages[1] == f"claims {victim.id}"
    order = json.loads(messages[2][len("order "):])
    assert order["success"] and order["data"]["suggested"]
    suggestions = rt.suggestions()
    assert [s.session_id for s in suggestions] == [attacker.id, attacker.id]
    assert {s.action.wallet for s in suggestions} == {rt.session(attacker.id).wallet}
    assert rt.memory(attacker.id).get("owner").data.value == "attacker"
    assert rt.memory(victim.id).get("owner").data.value is None


LINGER = """
import json, threading, time

def run(agent):
    if agent.settings["linger"] != "yes":
        time.sleep(float(agent.settings["nap"]))
        return
    def later():
        time.sleep(0.3)
        answer = agent.memory.set("late", "written after the run ended")
        with open(agent.settings["out"], "w") as f:
            json.dump(answer.to_dict(), f)
    threading.Thread(target=later, daemon=True).start()
"""
LINGER_SETTINGS = {"linger": {"type": "text", "default": "no", "description": "leave a thread behind"},
                   "nap": {"type": "text", "default": "0", "description": "seconds to sleep"},
                   "out": {"type": "text", "default": "", "description": "where the thread writes its answer"}}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_thread_left_behind_cannot_act_after_its_run(make_runtime, agent_folder, tmp_path, executor):
    """A run's permit ends with the run: a thread the agent left running is refused afterwards."""
    import time

    from helpers import wait_until

    rt = make_runtime(executor=executor, overrides={"runtime": {"workers": 1}})
    folder = str(agent_folder(LINGER, settings=LINGER_SETTINGS))
    out = tmp_path / "answer.json"
    first = rt.start_session(folder, ATTACKER, settings={"linger": "yes", "out": str(out)}, now=T0)
    rt.tick(T0)
    # Another run keeps the (only) worker busy while the thread calls: its call is answered then.
    second = rt.start_session(folder, VICTIM, settings={"nap": "1.0"}, now=T0)
    started = time.monotonic()
    rt.tick(T0)
    wait_until(out.exists, timeout=10)
    answer = json.loads(out.read_text())
    assert answer["success"] is False
    assert "ended" in answer["error"] or "refused" in answer["error"]
    assert rt.memory(first.id).get("late").data.value is None
    assert rt.memory(second.id).get("late").data.value is None
    assert time.monotonic() - started < 10


def test_worker_environment_is_an_allow_list_without_secrets():
    """Only what a Python program needs and what [runtime] worker_env names passes; key variables
    never do, whatever their name."""
    key = "0x" + secrets.token_hex(32)
    environ = {"PATH": "/usr/bin", "HOME": "/home/u", "LC_ALL": "C.UTF-8", "HL_KEY": key, "MY_API_URL": "http://x",
               "MY_KEY_COPY": key.removeprefix("0x"), "TICKLOOP_KEYSTORE_PASSWORD": "pw", "TICKLOOP_API_TOKEN": "t",
               "AWS_SECRET_ACCESS_KEY": "s", "VAULT_PASSWORD": "p", "TICKLOOP_PLUGINS": "sql"}
    passed = worker_environ(environ, allow=["MY_*", "VAULT_PASSWORD"], secret_names=["VAULT_PASSWORD"])
    assert passed == {"PATH": "/usr/bin", "HOME": "/home/u", "LC_ALL": "C.UTF-8", "MY_API_URL": "http://x",
                      "TICKLOOP_PLUGINS": "sql"}


SNOOP = """
import json, os

def run(agent):
    found = {"env": sorted(os.environ)}
    home = agent.settings["home"]
    for name, path in (("secret", os.path.join(home, "keys", ".secret")), ("db", os.path.join(home, "state.db"))):
        try:
            with open(path, "rb") as f:
                found[name] = len(f.read())
        except OSError as exc:
            found[name] = type(exc).__name__
    try:
        found["home"] = os.listdir(home)
    except OSError as exc:
        found["home"] = type(exc).__name__
    found["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    runtime = agent.settings["runtime_pid"]
    try:
        with open(f"/proc/{runtime}/environ", "rb") as f:
            found["runtime_environ"] = len(f.read())
    except OSError as exc:
        found["runtime_environ"] = type(exc).__name__
    agent.log(json.dumps(found))
"""
SNOOP_SETTINGS = {"home": {"type": "text", "default": "", "description": "the tickloop home"},
                  "runtime_pid": {"type": "text", "default": "0", "description": "the runtime's pid"}}


def test_agent_processes_get_no_key_variables(make_runtime, agent_folder, monkeypatch):
    """A wallet's --key-env variable and tickloop's secrets are not in an agent process's environment."""
    monkeypatch.setenv("HL_TEST_KEY", "0x" + secrets.token_hex(32))
    monkeypatch.setenv("TICKLOOP_KEYSTORE_PASSWORD", "hunter2")
    monkeypatch.setenv("HL_TEST_NOTE", "not a secret, but not allowed either")
    monkeypatch.setenv("AGENT_FEED_URL", "https://example.invalid/feed")
    rt = make_runtime(executor="process", overrides={"runtime": {"worker_env": ["AGENT_*"]}})
    rt.add_wallet(key_env="HL_TEST_KEY")
    session = rt.start_session(str(agent_folder(SNOOP, settings=SNOOP_SETTINGS)), ATTACKER,
                               settings={"home": str(rt.config.home), "runtime_pid": str(os.getpid())}, now=T0)
    rt.tick(T0)
    [run] = rt.runs(session.id)
    assert run.status == "succeeded", run.error
    env = json.loads(run.logs[0].message)["env"]
    assert "AGENT_FEED_URL" in env and "PATH" in env
    assert not {"HL_TEST_KEY", "TICKLOOP_KEYSTORE_PASSWORD", "HL_TEST_NOTE"} & set(env)


@needs_bwrap
def test_sandboxed_agents_cannot_see_the_home_or_the_runtime(make_runtime, agent_folder):
    """In the sandbox the home is an empty folder (no key store secret, no database) and /proc
    shows the sandbox's own processes only, not the runtime's environment."""
    rt = make_runtime(executor="process", overrides={"runtime": {"sandbox": "bwrap"}})
    rt.add_wallet(paper=True)  # creates <home>/keys/.secret
    assert (rt.config.home / "keys" / ".secret").exists()
    session = rt.start_session(str(agent_folder(SNOOP, settings=SNOOP_SETTINGS)), ATTACKER,
                               settings={"home": str(rt.config.home), "runtime_pid": str(os.getpid())}, now=T0)
    rt.tick(T0)
    [run] = rt.runs(session.id)
    assert run.status == "succeeded", run.error
    found = json.loads(run.logs[0].message)
    assert found["secret"] == "FileNotFoundError" and found["db"] == "FileNotFoundError"
    assert found["home"] == []
    assert os.getpid() not in found["pids"] and len(found["pids"]) <= 3
    assert found["runtime_environ"] in ("FileNotFoundError", "PermissionError")


def test_sandbox_bwrap_without_bubblewrap_is_a_config_error(make_runtime, monkeypatch):
    """Requiring the sandbox where bubblewrap is missing fails at start, naming the key."""
    from tickloop.errors import ConfigError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"runtime\.sandbox.*bubblewrap"):
        make_runtime(executor="process", overrides={"runtime": {"sandbox": "bwrap"}})


# The agent writes a pickle that would run a command when unpickled, straight to its worker's
# connection to the runtime (the worker's first argument is that socket's file descriptor).
FORGE = """
import os, pickle, sys
from multiprocessing.connection import Connection

class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))

def run(agent):
    conn = Connection(int(sys.argv[1]))
    conn.send_bytes(pickle.dumps(("log", 0, Payload())))
    conn.send_bytes(pickle.dumps(("done", 0, Payload())))
    import time
    time.sleep(5)
"""


def test_a_forged_message_cannot_run_code_in_the_runtime(make_runtime, agent_folder, tmp_path):
    """The runtime reads what a worker sends as untrusted data: a pickle naming os.system is
    refused, the worker is stopped, and nothing runs in the runtime."""
    marker = tmp_path / "pwned"
    main = FORGE.replace("MARKER", repr(str(marker)))
    rt = make_runtime(executor="process")
    session = rt.start_session(str(agent_folder(main)), ATTACKER, now=T0)
    rt.tick(T0)
    [run] = rt.runs(session.id)
    assert run.status == "failed"
    assert "may not contain posix.system" in run.error
    assert not marker.exists()


def test_inline_agents_keyboard_interrupt_does_not_stop_serve(make_runtime, agent_folder):
    """An inline agent raising KeyboardInterrupt or a bare BaseException fails its run; the other
    sessions run and nothing is left running."""
    main = ("class Escape(BaseException):\n    pass\n\n"
            "def run(agent):\n    kind = agent.settings['kind']\n"
            "    if kind == 'kbd':\n        raise KeyboardInterrupt('ctrl-c from an agent')\n"
            "    if kind == 'base':\n        raise Escape('past except Exception')\n")
    settings = {"kind": {"type": "text", "default": "ok", "description": "what to raise"}}
    rt = make_runtime()
    folder = str(agent_folder(main, settings=settings))
    ids = [rt.start_session(folder, w, settings={"kind": k}, now=T0).id
           for w, k in ((ATTACKER, "kbd"), (VICTIM, "base"), ("0x" + "ef" * 20, "ok"))]
    runs = {r.session_id: r for r in rt.tick(T0)}
    assert [runs[i].status for i in ids] == ["failed", "failed", "succeeded"]
    assert runs[ids[0]].error == "KeyboardInterrupt: ctrl-c from an agent"
    assert runs[ids[1]].error == "Escape: past except Exception"
    assert not [r for r in rt.runs() if r.status == "running"]
