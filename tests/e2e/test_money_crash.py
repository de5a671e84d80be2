"""SIGKILL while money moves: an approving CLI, serve during an auto run, serve during an unwind.

The exchanges are ``tickloop paper serve`` in their own process (the home's venues point at it
with ``paper = true``), so faults can be armed over HTTP for every client: ``stall`` holds the
answer to an order back after the exchange filled it, which is the worst moment to die (sent,
filled, not booked). After each kill, recovery (a second ``suggestions approve``, ``tickloop
reconcile``, a restarted ``serve``, or serve's periodic check) must leave: no suggestion stuck
``approved``, every exchange fill booked exactly once, no order sent twice.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from paper_helpers import (
    approve,
    arm,
    assert_books_match_the_exchange,
    configure,
    disarm,
    kill,
    ledger_holds,
    orders_placed,
    position,
)

from helpers import tickloop, wait_until
from tickloop.intents import SENDING, Owner
from tickloop.testing import T0
from tickloop_paper.polymarket import SEED_MARKETS, condition_id, token_id

D = Decimal
NULL = "0x0000000000000000000000000000000000000000"
HL_ASSET = {"network": "hypercore:perp", "address": NULL, "minimumAmount": "100000000"}
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
PM_ASSET = {"network": "ethereum:137", "address": PUSD, "minimumAmount": "50000000"}
LISBON_YES = token_id(condition_id(SEED_MARKETS[0][0]), 0)
# While flat, buys "size" ETH (auto: executed; manual: a suggestion); then says what it holds.
TRADER = """
def run(agent):
    if agent.portfolio.positions:
        agent.log("holding " + ",".join(f"{p.coin} {p.size}" for p in agent.portfolio.positions))
        return
    r = agent.platforms.hyperliquid.place_order({"coin": "ETH", "side": "buy", "size": agent.settings["size"],
                                                 "price": 3150, "market": "perp", "type": "market"})
    agent.log(f"order {r.success} {r.error}")
"""
SETTINGS = {"size": {"type": "number", "default": 0.1, "description": "ETH to buy"}}
PM_BUYER = f"""
def run(agent):
    agent.platforms.polymarket.market_order({{"tokenId": "{LISBON_YES}", "size": 10, "side": "BUY"}})
"""


def manual_session(rt: Any, agent_folder: Any, name: str = "trader") -> Any:
    wallet = rt.add_wallet(paper=True)
    folder = agent_folder(TRADER, name=name, settings=SETTINGS, startingAsset=HL_ASSET)
    return rt.start_session(str(folder), wallet, mode="manual", now=T0)


def the_suggestion(rt: Any, session_id: int, at: Any = T0) -> Any:
    rt.tick(at)
    return rt.suggestions(session_id=session_id, status="pending")[0]


def test_an_approval_killed_after_its_order_filled_is_booked_once_on_the_next_approve(
        tickloop_home, agent_folder, make_runtime, paper):
    configure(tickloop_home, paper)
    rt = make_runtime(memory="diskcache")
    s = manual_session(rt, agent_folder)
    suggestion = the_suggestion(rt, s.id)
    arm(paper["hyperliquid"], kind="stall", path="/exchange", seconds=60)
    proc = approve(tickloop_home, suggestion.id)
    try:
        wait_until(lambda: position(paper, s.wallet) == {"ETH": D("0.1")}, timeout=30)
    finally:
        kill(proc)
    # The attack's state: filled on the exchange, booked nowhere, the suggestion approved.
    assert rt.suggestion(suggestion.id).status == "approved" and ledger_holds(rt, s.id) == {}

    again = tickloop(tickloop_home, "suggestions", "approve", str(suggestion.id))
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert f"cannot approve suggestion {suggestion.id}: it was already executed at" in again.stderr
    assert "(its approving process had stopped; tickloop settled it by asking the venue)" in again.stderr
    assert rt.suggestion(suggestion.id).status == "executed"
    assert ledger_holds(rt, s.id) == {"ETH": D("0.1")}
    assert_books_match_the_exchange(rt, paper, s)
    assert len(orders_placed(paper, s.wallet)) == 1


def test_an_approval_killed_before_its_order_was_sent_fails_with_the_reason(tickloop_home, agent_folder,
                                                                             make_runtime, paper):
    """The approver records the intent, then waits for the signer's lock (held here): killed
    there, nothing reached the exchange."""
    configure(tickloop_home, paper)
    rt = make_runtime(memory="diskcache")
    s = manual_session(rt, agent_folder)
    suggestion = the_suggestion(rt, s.id)
    signers = tickloop_home / "hyperliquid" / "signers"
    signers.mkdir(parents=True, exist_ok=True)
    with open(signers / s.wallet.lower(), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = approve(tickloop_home, suggestion.id)
        try:
            [intent] = wait_until(lambda: rt.store.intents(session_id=s.id, status=SENDING), timeout=30)
        finally:
            kill(proc)
        fcntl.flock(lock, fcntl.LOCK_UN)
    reconciled = tickloop(tickloop_home, "reconcile")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert f"recovered intent {intent.id} (suggestion {suggestion.id}) of session {s.id}: failed:" in reconciled.stdout
    done = rt.suggestion(suggestion.id)
    assert done.status == "failed"
    assert done.error.endswith(f"stopped while sending it; hyperliquid never received it (client id"
                               f" {intent.client_id})")
    assert orders_placed(paper, s.wallet) == [] and ledger_holds(rt, s.id) == {}
    assert_books_match_the_exchange(rt, paper, s)


def test_an_approval_killed_before_recording_an_intent_fails_as_nothing_sent(tickloop_home, agent_folder,
                                                                              make_runtime, paper):
    """A Polymarket order is built and signed (its hash is its client id) before the intent is
    recorded; killed while the CLOB is slow to answer that, the approval sent nothing."""
    configure(tickloop_home, paper)
    rt = make_runtime(memory="diskcache")
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(str(agent_folder(PM_BUYER, name="pm", startingAsset=PM_ASSET)), wallet, mode="manual",
                         now=T0)
    suggestion = the_suggestion(rt, s.id)
    arm(paper["polymarket_clob"], kind="latency", path=f"/markets-by-token/{LISBON_YES}", seconds=30)
    proc = approve(tickloop_home, suggestion.id)
    try:
        wait_until(lambda: rt.suggestion(suggestion.id).status == "approved", timeout=30)
        time.sleep(1.0)  # inside the slow lookup
        assert rt.store.intents(session_id=s.id) == []
    finally:
        kill(proc)
        disarm(paper["polymarket_clob"])
    again = tickloop(tickloop_home, "suggestions", "approve", str(suggestion.id))
    assert again.returncode == 1
    assert "it was already approved and its execution failed" in again.stderr
    assert "approved, nothing was sent: process" in again.stderr
    assert rt.suggestion(suggestion.id).status == "failed"
    trades = requests.get(paper["polymarket_clob"] + "/paper/state", timeout=5).json()["trades"]
    assert trades == [] and rt.store.ledger([s.id])[-1].kind == "allocation"


def test_approvals_killed_at_random_moments_leave_nothing_stuck_unbooked_or_doubled(
        tickloop_home, agent_folder, make_runtime, paper):
    configure(tickloop_home, paper)
    rt = make_runtime(memory="diskcache")
    folder = agent_folder(TRADER.replace("if agent.portfolio.positions:", "if False:"), name="always",
                          settings=SETTINGS, startingAsset=HL_ASSET)
    s = rt.start_session(str(folder), rt.add_wallet(paper=True), mode="manual", settings={"size": 0.01}, now=T0)
    rng = random.Random(int(os.environ.get("TICKLOOP_KILL_SEED", "8")))
    outcomes = []
    for i in range(8):
        suggestion = the_suggestion(rt, s.id, T0 + i * timedelta(minutes=16))
        proc = approve(tickloop_home, suggestion.id)
        time.sleep(rng.uniform(0.3, 2.5))
        kill(proc)
        rt.recover()
        outcomes.append(rt.suggestion(suggestion.id).status)
        assert outcomes[-1] in ("pending", "executed", "failed"), outcomes
        assert_books_match_the_exchange(rt, paper, s)
    assert len(orders_placed(paper, s.wallet)) == outcomes.count("executed")


def test_serve_killed_during_an_auto_order_books_it_before_the_run_is_retried(
        tickloop_home, agent_folder, make_runtime, paper, serve):
    configure(tickloop_home, paper, executor="process")
    rt = make_runtime(memory="diskcache")
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(str(agent_folder(TRADER, settings=SETTINGS, startingAsset=HL_ASSET)), wallet)
    arm(paper["hyperliquid"], kind="stall", path="/exchange", seconds=60)
    first = serve(tickloop_home)
    first.ready()
    wait_until(lambda: position(paper, wallet) == {"ETH": D("0.1")}, timeout=30)
    [intent] = rt.store.intents(session_id=s.id)
    first.kill()
    wait_until(lambda: Owner.parse(intent.owner).alive() is False, timeout=15)  # its worker exits too
    assert ledger_holds(rt, s.id) == {} and rt.store.intents(session_id=s.id)[0].status == SENDING

    second = serve(tickloop_home)
    second.ready()
    wait_until(lambda: any(line.message == "holding ETH 0.1" for run in rt.runs(s.id) for line in run.logs),
               timeout=30)
    assert second.stop() == 0
    assert [r.status for r in rt.runs(s.id)][:2] == ["failed", "succeeded"]  # interrupted, then the re-run
    assert ledger_holds(rt, s.id) == {"ETH": D("0.1")} == position(paper, wallet)
    assert len(orders_placed(paper, wallet)) == 1
    assert_books_match_the_exchange(rt, paper, s)


def test_serve_killed_during_an_unwinds_closing_order_finishes_the_unwind_flat(
        tickloop_home, agent_folder, make_runtime, paper, serve):
    configure(tickloop_home, paper, executor="process")
    rt = make_runtime(memory="diskcache")
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(str(agent_folder(TRADER, settings=SETTINGS, startingAsset=HL_ASSET)), wallet)
    rt.tick(T0)
    assert position(paper, wallet) == {"ETH": D("0.1")}
    first = serve(tickloop_home)
    first.ready()
    arm(paper["hyperliquid"], kind="stall", path="/exchange", seconds=60)
    rt.unwind(s.id)  # serve owns the store: it runs the unwind, whose closer sells 0.1 ETH
    wait_until(lambda: position(paper, wallet) == {}, timeout=30)
    first.kill()
    assert rt.session(s.id).state == "unwinding" and ledger_holds(rt, s.id) == {"ETH": D("0.1")}

    second = serve(tickloop_home)
    second.ready()
    wait_until(lambda: rt.session(s.id).state == "stopped", timeout=30)
    assert second.stop() == 0
    assert ledger_holds(rt, s.id) == {} and position(paper, wallet) == {}
    assert [o["side"] for o in orders_placed(paper, wallet)] == ["B", "A"]  # one buy, one closing sell
    assert rt.runs(s.id)[-1].error is None
    assert_books_match_the_exchange(rt, paper, s)


def test_a_running_serve_recovers_an_approval_killed_elsewhere(tickloop_home, agent_folder, make_runtime, paper,
                                                              serve):
    configure(tickloop_home, paper, extra="recovery_interval_seconds = 0.5\n")
    # On the real clock: the suggestion's run is the latest, so serve's next run is 15 minutes away.
    rt = make_runtime(memory="diskcache", clock=lambda: datetime.now(UTC))
    s = manual_session(rt, agent_folder)
    suggestion = the_suggestion(rt, s.id, datetime.now(UTC))
    server = serve(tickloop_home)
    server.ready()
    arm(paper["hyperliquid"], kind="stall", path="/exchange", seconds=60)
    proc = approve(tickloop_home, suggestion.id)
    try:
        wait_until(lambda: position(paper, s.wallet) == {"ETH": D("0.1")}, timeout=30)
    finally:
        kill(proc)
    wait_until(lambda: rt.suggestion(suggestion.id).status == "executed", timeout=15)
    assert server.stop() == 0
    assert ledger_holds(rt, s.id) == {"ETH": D("0.1")}
    assert_books_match_the_exchange(rt, paper, s)
