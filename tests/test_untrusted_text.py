"""Untrusted text (lone surrogates) is stored, never a crash; out-of-range ids are "not found".

Issue #8: an agent that logged or raised "\\udcff" crashed serve with UnicodeEncodeError (SQLite
cannot encode it), and every restart crashed again; so did ``--setting greeting=$'\\xff'``. And
an id of 2**63 or more gave OverflowError from the SQLite driver.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tickloop.errors import NotFoundError
from tickloop.testing import T0
from tickloop.text import storable, storable_data

LONE = "\udcff"  # what os.fsdecode / click make of the byte 0xff
ESCAPED = "\\udcff"
WALLET = "0x" + "ab" * 20
M = timedelta(minutes=1)

# Agent source: the escapes are Python's, so the agent builds the lone surrogates itself.
HOSTILE = r"""
def run(agent):
    agent.log("log \udcff and {}".format(agent.settings["greeting"]))
    agent.log({"key \udcff": ["\udcff"]})
    agent.log("debug \ud800", debug=True)
    assert agent.memory.set("k\udcff", "v\udcff").success
    assert agent.memory.get("k\udcff").data.value == "v\\udcff"
    assert agent.memory.set("shared\udcff", "\udcff", shared=True).success
    assert [i["key"] for i in agent.memory.list("k").data["items"]] == ["k\\udcff"]
    raise RuntimeError("bad \udcff input")
"""
PLAIN = """
def run(agent):
    agent.log("fine")
"""
GREETING = {"greeting": {"type": "text", "default": "hi", "description": "what to say"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("Grüße, 東京 🚀", "Grüße, 東京 🚀"),  # valid text is kept as it is
    (LONE, ESCAPED),
    ("a\ud800b\udfffc", "a\\ud800b\\udfffc"),
    ("\ud83d\ude80", "\\ud83d\\ude80"),  # a surrogate pair in a str is two lone surrogates, not 🚀
])
def test_storable_escapes_lone_surrogates_only(text: str, expected: str) -> None:
    """storable() keeps every encodable character and escapes each lone surrogate."""
    got = storable(text)
    assert got == expected
    got.encode("utf-8")  # never raises


def test_storable_data_reaches_keys_and_nested_values() -> None:
    """JSON-like data is made storable throughout, keys included; other values are untouched."""
    data = {LONE: [LONE, 1, 2.5, None, True, (LONE,)], "ok": {"x": LONE}}
    assert storable_data(data) == {ESCAPED: [ESCAPED, 1, 2.5, None, True, (ESCAPED,)], "ok": {"x": ESCAPED}}
    assert storable("ascii") is storable("ascii")


def test_an_agent_logging_and_raising_lone_surrogates_is_recorded_and_the_runtime_goes_on(
        make_runtime, agent_folder) -> None:
    """The hostile run is recorded failed with its logs and error escaped; the session beside it
    runs; the next tick runs both again (no crash, no run left running)."""
    rt = make_runtime(memory="diskcache")
    hostile = rt.start_session(str(agent_folder(HOSTILE, name="hostile", settings=GREETING)), WALLET,
                               settings={"greeting": f"hi {LONE}"})
    plain = rt.start_session(str(agent_folder(PLAIN, name="plain")), WALLET)
    first = rt.tick(T0)
    assert sorted(r.status for r in first) == ["failed", "succeeded"]
    second = rt.tick(T0 + 16 * M)
    assert sorted(r.status for r in second) == ["failed", "succeeded"]
    assert rt.runs(status="running") == []

    stored = rt.runs(hostile.id)
    assert len(stored) == 2 and all(r.status == "failed" for r in stored)
    run = stored[0]
    assert run.error == f"RuntimeError: bad {ESCAPED} input" and f"RuntimeError: bad {ESCAPED} input" in run.traceback
    run.error.encode("utf-8")
    assert [line.message for line in run.logs] == [
        f"log {ESCAPED} and hi {ESCAPED}", json.dumps({f"key {LONE}": [LONE]}, separators=(",", ":")),
        "debug \\ud800"]
    assert [r.status for r in rt.runs(plain.id)] == ["succeeded", "succeeded"]
    assert rt.session(hostile.id).settings == {"greeting": f"hi {ESCAPED}"}
    assert rt.memory(hostile.id).get(f"k{LONE}").data.value == f"v{ESCAPED}"
    assert rt.memory(hostile.id).get(f"shared{LONE}", shared=True).data.value == ESCAPED
    for _, line in rt.logs(session_id=hostile.id):
        line.message.encode("utf-8")


def test_a_lone_surrogate_in_every_text_column_is_stored(make_runtime, agent_folder) -> None:
    """Reasons, labels and settings given through the Python API are stored escaped, so a later
    read, print or JSON encoding of them cannot fail."""
    rt = make_runtime()
    session = rt.start_session(str(agent_folder(PLAIN)), WALLET, reason=f"why {LONE}")
    rt.pause(session.id, reason=f"pause {LONE}")
    assert [t.reason for t in rt.transitions(session.id)] == [f"why {ESCAPED}", f"pause {ESCAPED}"]
    address = rt.add_wallet(paper=True, label=f"label {LONE}")
    assert rt.wallet(address).label == f"label {ESCAPED}"


@pytest.mark.parametrize("big", [2**63, 2**64 + 5, 10**30, -(2**63) - 1])
def test_out_of_range_ids_are_not_found(make_runtime, agent_folder, big: int) -> None:
    """Ids outside 64 bits are answered like any id that does not exist: NotFoundError or
    nothing found, never OverflowError from the driver."""
    rt = make_runtime()
    rt.start_session(str(agent_folder(PLAIN)), WALLET)
    rt.tick(T0)
    for call in (rt.session, rt.transitions, rt.pause, rt.resume, rt.stop, rt.unwind, rt.memory, rt.portfolio,
                 rt.suggestion, rt.approve, rt.reject, rt.store.get_run):
        with pytest.raises(NotFoundError, match=f"{big} "):
            call(big)
    assert rt.runs(big) == [] and rt.logs(session_id=big) == [] and rt.logs(run_id=big) == []
    assert rt.suggestions(big) == []


def test_run_once_with_a_setting_that_is_not_utf8(tickloop_home) -> None:
    """The issue's reproduction: `tickloop run hello --once --setting greeting=$'\\xff'` (the
    argument is the byte 0xff) runs, prints and stores the greeting escaped."""
    from helpers import tickloop

    hello = str(Path(__file__).resolve().parents[1] / "agents" / "hello")
    proc = tickloop(tickloop_home, "run", hello, "--once", "--setting", f"greeting={LONE}")
    assert proc.returncode == 0, proc.stderr
    assert f"{ESCAPED}! This is run 1" in proc.stdout and "Traceback" not in proc.stderr
    logs = tickloop(tickloop_home, "logs", "--json", check=True)
    assert json.loads(logs.stdout)[0]["message"].startswith(f"{ESCAPED}! This is run 1")
