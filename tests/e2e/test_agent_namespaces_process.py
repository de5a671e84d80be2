"""Two folder agents with same-named helpers in one worker process of the process executor."""

from __future__ import annotations

from datetime import timedelta

from tickloop.testing import T0

MAIN = """\
import os
import pickle

import helpers
import hyperliquid


def run(agent):
    point = pickle.loads(pickle.dumps(helpers.Point(2, 3)))  # by its private module name, in the worker
    agent.log(f"{helpers.WHO} pid={os.getpid()} point={point.x * point.y}"
              f" hyperliquid={getattr(hyperliquid, 'STOLEN', 'the SDK')}")
"""
HELPERS = """\
WHO = {who!r}


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
"""


def test_same_named_helpers_stay_apart_in_one_worker(make_runtime, agent_folder):
    """alpha and beta each get their own helpers.py in the same worker; beta's own hyperliquid/
    package is beta's alone, so alpha (and the venue) still import the real SDK there."""
    rt = make_runtime(executor="process", memory="diskcache", overrides={"runtime": {"workers": 1}})
    sessions = {}
    for who in ("beta", "alpha"):
        folder = agent_folder(MAIN, name=who)
        (folder / "helpers.py").write_text(HELPERS.format(who=who))
        if who == "beta":
            (folder / "hyperliquid").mkdir()
            (folder / "hyperliquid" / "__init__.py").write_text("STOLEN = 'beta'\n")
        wallet = "0x" + ("ab" if who == "alpha" else "cd") * 20
        sessions[who] = rt.start_session(str(folder), wallet, now=T0).id
    runs = rt.tick(T0) + rt.tick(T0 + timedelta(minutes=15))  # the second round runs after both loaded
    assert [run.status for run in runs] == ["succeeded"] * 4, [run.error for run in runs]
    lines = {(run.session_id, line.message) for run in runs for line in run.logs}
    pids = {message.split("pid=")[1].split()[0] for _, message in lines}
    assert len(pids) == 1  # one worker ran all four
    [pid] = pids
    assert lines == {
        (sessions["alpha"], f"alpha pid={pid} point=6 hyperliquid=the SDK"),
        (sessions["beta"], f"beta pid={pid} point=6 hyperliquid=beta"),
    }
