"""A bounded torture test: SIGKILL ``serve`` and approving CLIs at random moments, again and again,
under both executors, and check after every kill what tickloop promises (docs/reliability.md).

Three sessions trade ETH on the paper Hyperliquid exchange (``tickloop paper serve`` in its own
process, so a kill never takes the exchange with it):

- ``auto``: every run writes a memory counter (acknowledged to a file once ``set`` returned),
  then buys 0.01 ETH when flat or sells it when holding;
- ``manual``: the same agent in manual mode; its suggestions are approved by
  ``tickloop suggestions approve`` processes, half of which are killed at a random moment;
- ``unwound``: auto mode, unwound in the second round while ``serve`` runs it.

Some rounds stall the exchange's answers just before the kill (the order is filled, its answer
is not back: the worst moment to die). After each kill, ``tickloop reconcile`` settles what the
dead processes left, and the checks are: no acknowledged memory write lost; no suggestion stuck
``approved``; nothing ``sending``; every exchange order sent exactly once and booked (each cloid
once, matching an executed intent; the account's position equals the ledger's); no session held
(nothing the ledgers do not explain); every state and recorded transition legal. A final clean
start and stop leaves no run ``running``.

``TICKLOOP_TORTURE_SEED`` and ``TICKLOOP_TORTURE_ROUNDS`` change the seed and the number of kills.
"""

from __future__ import annotations

import json
import os
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from paper_helpers import approve, arm, configure, disarm, kill, ledger_holds, orders_placed, position

from helpers import tickloop, wait_until
from tickloop.intents import SENDING
from tickloop.runs import STATUSES
from tickloop.sessions import TRANSITIONS, State

D = Decimal
NULL = "0x0000000000000000000000000000000000000000"
HL_ASSET = {"network": "hypercore:perp", "address": NULL, "minimumAmount": "100000000"}
AGENT = """
import os

def run(agent):
    n = int(agent.memory.get("n").data.value or 0) + 1
    agent.memory.set("n", str(n))
    with open(os.environ["TL_ACKS"], "a") as f:
        f.write(f"{agent.sessionId} {n}\\n"); f.flush(); os.fsync(f.fileno())
    side = "sell" if agent.portfolio.positions else "buy"
    r = agent.platforms.hyperliquid.place_order({"coin": "ETH", "side": side, "size": 0.01, "market": "perp",
                                                 "price": 3150 if side == "buy" else 2850, "type": "market"})
    agent.log(f"{side} {r.success} {r.error}")
"""
ROUNDS = int(os.environ.get("TICKLOOP_TORTURE_ROUNDS", "5"))


def acked(acks: Path) -> dict[int, int]:
    found: dict[int, int] = {}
    if acks.exists():
        for line in acks.read_text().splitlines():
            sid, n = map(int, line.split())
            found[sid] = max(found.get(sid, 0), n)
    return found


def check(rt: Any, paper: dict[str, str], acks: Path, home: Path, *, final: bool = False) -> list[str]:
    """Everything tickloop promises after a crash, once the dead processes' work is settled;
    returns what settling it recovered."""
    settled = json.loads(tickloop(home, "reconcile", "--json", check=True).stdout)
    assert settled["held"] == [], settled  # no difference the ledgers do not explain
    assert {a["status"] for a in settled["accounts"]} <= {"agrees"}, settled
    for sid, n in acked(acks).items():  # no acknowledged write lost (a stopped session's memory is cleared)
        if rt.session(sid).state is not State.STOPPED:
            assert int(rt.memory(sid).get("n").data.value or 0) >= n, (sid, n)
    assert rt.suggestions(status="approved") == []  # no suggestion stuck
    assert rt.store.intents(status=SENDING) == []
    for session in rt.sessions():
        intents = rt.store.intents(session_id=session.id)
        executed = sorted(i.client_id for i in intents if i.status == "executed")
        cloids = [o["cloid"] for o in orders_placed(paper, session.wallet)]
        assert len(cloids) == len(set(cloids)), cloids  # no order sent twice
        assert sorted(cloids) == executed  # every order the exchange has is booked, and only those
        assert position(paper, session.wallet) == {k: v for k, v in ledger_holds(rt, session.id).items() if v}
        by_suggestion = [i.suggestion_id for i in intents if i.suggestion_id is not None]
        assert len(by_suggestion) == len(set(by_suggestion))  # no suggestion executed twice
        assert session.state in set(State) - {State.CREATED}
        previous = State.CREATED
        for t in rt.transitions(session.id):  # the audit trail is a legal path
            assert t.from_state == previous and TRANSITIONS[(t.action, t.from_state)] == t.to_state, t
            previous = t.to_state
        assert previous == session.state
    for run in rt.runs():
        assert run.status in STATUSES
        assert not final or run.status != "running"
    assert not final or all(s.state is not State.UNWINDING for s in rt.sessions())
    return settled["recovered"]


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_sigkill_at_random_moments_breaks_no_promise(executor, tickloop_home, agent_folder, make_runtime, paper,
                                                     serve, tmp_path):
    seed = int(os.environ.get("TICKLOOP_TORTURE_SEED", "2026"))
    rng = random.Random(f"{seed}-{executor}")
    acks = tmp_path / "acks"
    env = {"TL_ACKS": str(acks)}
    configure(tickloop_home, paper, executor=executor, extra='worker_env = ["TL_*"]\n')
    rt = make_runtime(memory="diskcache", executor=executor)
    folder = str(agent_folder(AGENT, startingAsset=HL_ASSET, runtimeIntervalMinutes=0.01))  # every 0.6 s
    auto = rt.start_session(folder, rt.add_wallet(paper=True))
    manual = rt.start_session(folder, rt.add_wallet(paper=True), mode="manual")
    unwound = rt.start_session(folder, rt.add_wallet(paper=True))
    approving: list[Any] = []
    recovered: list[str] = []

    for round_ in range(ROUNDS):
        server = serve(tickloop_home, env)
        server.ready()
        if round_ == 1:
            tickloop(tickloop_home, "sessions", "unwind", str(unwound.id), check=True)  # serve runs it
        deadline = time.monotonic() + rng.uniform(1.0, 2.5)
        while time.monotonic() < deadline:
            pending = rt.suggestions(session_id=manual.id, status="pending")
            if pending:
                proc = approve(tickloop_home, pending[0].id)
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0.05, 1.0))
                    kill(proc)
                else:
                    approving.append(proc)
            time.sleep(rng.uniform(0.1, 0.4))
        stall = round_ % 2 == 1
        if stall:  # orders filled from here on get no answer: the kill lands after the fill
            arm(paper["hyperliquid"], kind="stall", path="/exchange", seconds=60)
            time.sleep(rng.uniform(0.3, 1.0))
        server.kill()
        for proc in approving:
            kill(proc)
        approving.clear()
        if stall:
            disarm(paper["hyperliquid"])
        recovered += check(rt, paper, acks, tickloop_home)

    final = serve(tickloop_home, env)
    final.ready()
    wait_until(lambda: rt.session(unwound.id).state is State.STOPPED, timeout=30)
    time.sleep(1.0)
    assert final.stop() == 0
    check(rt, paper, acks, tickloop_home, final=True)
    assert rt.session(auto.id).state is State.RUNNING and rt.session(manual.id).state is State.RUNNING
    assert position(paper, unwound.wallet) == {} and ledger_holds(rt, unwound.id) == {}
    assert acked(acks).get(auto.id, 0) >= ROUNDS  # it kept running through every kill
    orders = sum(len(orders_placed(paper, s.wallet)) for s in rt.sessions())
    print(f"\n{executor}: {ROUNDS} kills of serve, {orders} orders, {len(recovered)} intents or approvals"
          f" recovered, {len(rt.suggestions(status='executed'))} suggestions executed,"
          f" {len(rt.suggestions(status='failed'))} failed")
