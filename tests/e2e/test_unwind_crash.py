"""Unwinds that do not finish in one go: serve killed mid-unwind, a hung unwind timed out."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import sim_venue
from helpers import wait_until
from tickloop.ledger import Book
from tickloop.testing import T0

TESTS = Path(__file__).resolve().parents[1]
WALLET = "0x" + "ab" * 20
CONFIG = ('[runtime]\nexecutor = "process"\nworkers = 2\nworker_env = ["TL_*"]\n'
          '[memory]\nbackend = "diskcache"\n'
          '[plugins]\nload = ["sim_venue"]\n')

# run: opens a long BTC position once. unwind: the first attempt marks a file and hangs (so the
# test can kill serve, or the timeout can kill it); a later attempt returns, leaving the
# position to the closers.
AGENT = """
import os, time

def run(agent):
    if agent.memory.get("opened").data.value is None:
        r = agent.platforms.sim.place_order({"coin": "BTC", "side": "buy", "size": 0.01, "price": 60000,
                                             "market": "perp", "type": "market"})
        agent.memory.set("opened", str(r.success))

def unwind(agent, portfolio):
    mark = os.environ["TL_MARK"]
    agent.log(f"unwind sees {[(p.coin, p.size) for p in portfolio.positions]}")
    if not os.path.exists(mark):
        open(mark, "w").close()
        time.sleep(600)
    agent.log("unwind returns")
"""


def _env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    env = {"SIM_VENUE_JOURNAL": str(tmp_path / "journal.jsonl"), "TL_MARK": str(tmp_path / "mark"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sim_venue.reset()
    return env


def _closing_orders() -> list[dict]:
    return [e for e in sim_venue.journal() if e["params"].get("reduceOnly")]


def test_an_unwind_resumes_after_serve_is_killed_and_closes_once(tickloop_home, agent_folder, serve, make_runtime,
                                                                 tmp_path, monkeypatch):
    """SIGKILL serve during the agent's unwind: after a restart the unwind runs again, the closers
    close the position exactly once, and the session ends stopped and flat."""
    env = _env(tmp_path, monkeypatch)
    (tickloop_home / "tickloop.toml").write_text(CONFIG)
    rt = make_runtime(memory="diskcache")  # the test's view; serve runs the sessions
    s = rt.start_session(str(agent_folder(AGENT)), WALLET, now=T0)

    first = serve(tickloop_home, env)
    first.ready()
    wait_until(lambda: rt.portfolio(s.id).positions, timeout=20)
    rt.unwind(s.id)  # serve owns the store: it runs the unwind
    wait_until(Path(env["TL_MARK"]).exists, timeout=20)
    first.kill()

    assert rt.session(s.id).state == "unwinding"
    assert _closing_orders() == []
    [interrupted] = [r for r in rt.runs(s.id) if r.kind == "unwind"]
    assert interrupted.status == "running"

    second = serve(tickloop_home, env)
    second.ready()
    wait_until(lambda: rt.session(s.id).state == "stopped", timeout=30)
    assert second.stop() == 0

    runs = [r for r in rt.runs(s.id) if r.kind != "run"]
    assert [(r.kind, r.status) for r in runs] == [("unwind", "failed"), ("unwind", "succeeded")]
    assert runs[0].error.startswith("interrupted")
    assert [line.message for line in runs[1].logs][:2] == ["unwind sees [('BTC', '0.01')]", "unwind returns"]
    [closing] = _closing_orders()
    assert (closing["session_id"], closing["params"]["coin"], closing["params"]["side"], closing["params"]["size"]) == (
        s.id, "BTC", "sell", 0.01)
    assert rt.portfolio(s.id).positions == ()
    assert all(h.size == 0 for h in Book.replay(rt.store.ledger([s.id])).holdings.values())
    assert rt.memory(s.id).get("opened").data.value is None
    assert [t.action for t in rt.transitions(s.id)] == ["start", "unwind", "unwound"]


def test_a_hung_unwind_is_timed_out_and_the_closers_still_close(tickloop_home, agent_folder, make_runtime, tmp_path,
                                                                 monkeypatch):
    """With the process executor, an unwind past its timeout is killed; a close run follows and
    the closers close the position."""
    _env(tmp_path, monkeypatch)
    (tickloop_home / "tickloop.toml").write_text(CONFIG)
    rt = make_runtime(executor="process", memory="diskcache", overrides={"runtime": {"run_timeout_seconds": 1.0}})
    s = rt.start_session(str(agent_folder(AGENT)), WALLET, now=T0)
    rt.tick(T0)
    [position] = rt.portfolio(s.id).positions
    assert Decimal(position.size) == Decimal("0.01")

    session = rt.unwind(s.id, now=T0)
    hung = rt.runs(s.id)[-1]
    assert (hung.kind, hung.status) == ("unwind", "timed_out")
    assert (session.state, session.unwind_stage) == ("unwinding", "close")
    assert _closing_orders() == []
    [close] = rt.tick(session.next_run_at)
    assert (close.kind, close.status) == ("close", "succeeded")
    assert len(_closing_orders()) == 1
    assert rt.session(s.id).state == "stopped" and rt.portfolio(s.id).positions == ()
