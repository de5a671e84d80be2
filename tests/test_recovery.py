"""Durable intents and recovery, in one process, on the in-process paper exchanges.

A process killed between sending an order and booking its answer is stood in for here by an
intent recorded with a dead owner (the pid of a reaped child process) and the order sent to the
paper exchange under that intent's client id without booking it, which is the exact state such a
kill leaves. tests/e2e/test_money_crash.py does it with real processes and SIGKILL.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
import requests
from hyperliquid.info import Info

import tickloop_hyperliquid
import tickloop_polymarket
from tickloop.actions import ORDER, Action
from tickloop.errors import TickloopError
from tickloop.intents import EXECUTED, FAILED, SENDING, NewIntent, Owner
from tickloop.ledger import Book
from tickloop.suggestions import APPROVED
from tickloop.testing import T0
from tickloop_paper import local_exchanges
from tickloop_paper.polymarket import SEED_MARKETS, condition_id, token_id

D = Decimal
NULL = "0x0000000000000000000000000000000000000000"
STARTING_ASSET = {"network": "hypercore:perp", "address": NULL, "minimumAmount": "100000000"}
ETH_BUY = {"coin": "ETH", "side": "buy", "size": 0.1, "price": 3150, "market": "perp", "type": "market"}
# Places the orders of its "orders" setting while the session holds nothing.
TRADER = """
import json

def run(agent):
    if agent.portfolio.positions:
        agent.log("holding " + ",".join(f"{p.coin} {p.size}" for p in agent.portfolio.positions))
        return
    for order in json.loads(agent.settings["orders"]):
        r = agent.platforms.hyperliquid.place_order(order)
        agent.log(f"order {r.success} {r.error}")
"""
SETTINGS = {"orders": {"type": "text", "default": "[]", "description": "orders placed while flat"}}


def dead_owner() -> Owner:
    """The owner of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return Owner(host=socket.gethostname(), pid=child.pid, started="0-0")


@pytest.fixture
def rt(make_runtime: Any) -> Any:
    return make_runtime(plugins=[tickloop_hyperliquid, tickloop_polymarket])


@pytest.fixture
def exchange(tickloop_home: Any) -> Any:
    return local_exchanges(tickloop_home).hyperliquid


def account(exchange: Any, wallet: str) -> dict[str, Decimal]:
    state = Info(exchange.url, skip_ws=True).user_state(wallet)
    return {p["position"]["coin"]: D(p["position"]["szi"]) for p in state["assetPositions"]}


def held(rt: Any, session_id: int) -> dict[str, Decimal]:
    return {h.coin: h.size for h in Book.replay(rt.store.ledger([session_id])).open_holdings()}


def start(rt: Any, agent_folder: Any, *, mode: str = "auto", orders: tuple[dict[str, Any], ...] = (ETH_BUY,)) -> Any:
    wallet = rt.add_wallet(paper=True)
    folder = agent_folder(TRADER, name=f"trader-{mode}", settings=SETTINGS, startingAsset=STARTING_ASSET)
    return rt.start_session(str(folder), wallet, mode=mode, settings={"orders": json.dumps(list(orders))}, now=T0)


def sent_by_a_dead_process(rt: Any, session: Any, action: Action, *, send: bool = True,
                           suggestion_id: int | None = None) -> Any:
    """What a process killed after sending ``action`` (before booking its answer) leaves behind."""
    venue = rt.gateway.venues.get(action.venue)
    wallet = rt.store.get_wallet(session.wallet)
    prepare = getattr(venue, "prepare", None)
    client_id = prepare(action, wallet) if prepare else "0x" + "5a" * 16
    intent = rt.store.begin_intent(NewIntent(session_id=session.id, wallet=session.wallet, venue=action.venue,
                                             action=action, client_id=client_id, owner=str(dead_owner()), at=T0,
                                             suggestion_id=suggestion_id))
    if send:
        assert venue.execute(action, wallet, client_id=client_id).ok
    return intent


def hl_order(session: Any, **params: Any) -> Action:
    return Action(venue="hyperliquid", kind=ORDER, method="place_order", params={**ETH_BUY, **params},
                  session_id=session.id, wallet=session.wallet)


def test_an_executed_order_is_recorded_as_an_intent_before_it_is_sent_and_ended_with_its_fill(rt, exchange,
                                                                                                agent_folder):
    s = start(rt, agent_folder)
    [run] = rt.tick(T0)
    assert [line.message for line in run.logs] == ["order True None"]
    [intent] = rt.store.intents(session_id=s.id)
    assert (intent.status, intent.venue, intent.action.params, intent.suggestion_id) == \
        (EXECUTED, "hyperliquid", ETH_BUY, None)
    assert Owner.parse(intent.owner) == Owner.current()
    # The order reached the exchange under the intent's client id.
    [sent] = exchange.requests("/exchange")
    assert sent.body["action"]["orders"][0]["c"] == intent.client_id
    [fill] = [e for e in rt.store.ledger([s.id]) if e.kind == "fill"]
    assert intent.result["orderId"] == fill.order_id and fill.amount == D("0.1")


def test_a_fill_sent_by_a_dead_process_is_booked_once_and_a_rerun_sees_it(rt, exchange, agent_folder):
    s = start(rt, agent_folder)
    intent = sent_by_a_dead_process(rt, s, hl_order(s))
    assert account(exchange, s.wallet) == {"ETH": D("0.1")} and held(rt, s.id) == {}

    report = rt.recover()
    [done] = report.intents
    assert (done.intent_id, done.status, done.detail) == (intent.id, EXECUTED, "booked 1 fill(s)")
    assert held(rt, s.id) == {"ETH": D("0.1")}
    [stored] = rt.store.intents(session_id=s.id)
    assert stored.status == EXECUTED and stored.result["filled"] == 0.1
    # Recovering again books nothing more; the next run sees the position and orders nothing.
    assert not rt.recover()
    [run] = rt.tick(T0)
    assert [line.message for line in run.logs] == ["holding ETH 0.1"]
    assert account(exchange, s.wallet) == {"ETH": D("0.1")} and held(rt, s.id) == {"ETH": D("0.1")}
    assert len(exchange.requests("/exchange")) == 1


def test_an_order_that_never_reached_the_venue_is_failed_with_the_reason(rt, exchange, agent_folder):
    s = start(rt, agent_folder)
    intent = sent_by_a_dead_process(rt, s, hl_order(s), send=False)
    [done] = rt.recover().intents
    assert done.status == FAILED
    [stored] = rt.store.intents(session_id=s.id)
    assert stored.status == FAILED
    assert stored.error == (f"{dead_owner_text(intent)} stopped while sending it; hyperliquid never received it"
                            f" (client id {intent.client_id})")
    assert held(rt, s.id) == {} and exchange.requests("/exchange") == []


def dead_owner_text(intent: Any) -> str:
    return Owner.parse(intent.owner).describe()


def test_a_resting_order_is_recovered_with_its_id_so_later_fills_find_their_session(rt, exchange, agent_folder):
    s = start(rt, agent_folder)
    intent = sent_by_a_dead_process(rt, s, hl_order(s, type="limit", price=2500))
    [done] = rt.recover().intents
    assert done.status == EXECUTED
    [(venue, _)] = rt.store.session_orders(s.id)
    assert venue == "hyperliquid" and rt.store.intents(session_id=s.id)[0].result["status"] == "open"
    # The order fills later: the venue's late-fill sync books it to the session.
    requests.post(exchange.url + "/paper/mid", json={"coin": "ETH", "px": 2400}, timeout=5).raise_for_status()
    assert rt.gateway.venues.get("hyperliquid").sync_fills([s], rt.gateway) == 1
    assert held(rt, s.id) == {"ETH": D("0.1")} and intent.client_id


def test_an_intent_of_a_live_process_is_left_alone(rt, exchange, agent_folder):
    s = start(rt, agent_folder)
    action = hl_order(s)
    rt.store.begin_intent(NewIntent(session_id=s.id, wallet=s.wallet, venue="hyperliquid", action=action,
                                    client_id="0x" + "11" * 16, owner=str(Owner.current()), at=T0))
    assert not rt.recover()
    assert [i.status for i in rt.store.intents(session_id=s.id)] == [SENDING]


def manual_suggestion(rt: Any, agent_folder: Any) -> tuple[Any, Any]:
    s = start(rt, agent_folder, mode="manual")
    rt.tick(T0)
    [suggestion] = rt.suggestions(session_id=s.id)
    return s, suggestion


def test_approving_a_suggestion_its_dead_approver_executed_books_it_and_says_so(rt, exchange, agent_folder):
    s, suggestion = manual_suggestion(rt, agent_folder)
    assert rt.gateway.suggestions.decide(suggestion.id, APPROVED, at=T0, by=str(dead_owner())) is not None
    sent_by_a_dead_process(rt, s, suggestion.action, suggestion_id=suggestion.id)

    with pytest.raises(TickloopError) as refused:
        rt.approve(suggestion.id)
    assert str(refused.value) == (f"cannot approve suggestion {suggestion.id}: it was already executed at"
                                  f" {T0.isoformat()} (its approving process had stopped; tickloop settled it by"
                                  " asking the venue)")
    done = rt.suggestion(suggestion.id)
    assert done.status == "executed" and done.result["filled"] == 0.1
    assert held(rt, s.id) == {"ETH": D("0.1")} and account(exchange, s.wallet) == {"ETH": D("0.1")}
    assert len(exchange.requests("/exchange")) == 1


def test_an_approval_whose_approver_died_before_sending_fails_and_is_never_stuck(rt, exchange, agent_folder):
    s, suggestion = manual_suggestion(rt, agent_folder)
    owner = dead_owner()
    rt.gateway.suggestions.decide(suggestion.id, APPROVED, at=T0, by=str(owner))
    [settled] = rt.recover().suggestions
    assert settled.status == "failed"
    done = rt.suggestion(suggestion.id)
    assert done.status == "failed"
    assert done.error == f"approved, nothing was sent: {owner.describe()} stopped before sending it"
    with pytest.raises(TickloopError, match=r"it was already approved and its execution failed .*nothing was sent"):
        rt.approve(suggestion.id)
    assert exchange.requests("/exchange") == [] and held(rt, s.id) == {}


def test_an_approval_still_executing_in_a_live_process_is_reported_as_such(rt, exchange, agent_folder):
    _, suggestion = manual_suggestion(rt, agent_folder)
    rt.gateway.suggestions.decide(suggestion.id, APPROVED, at=T0, by=str(Owner.current()))
    with pytest.raises(TickloopError) as refused:
        rt.approve(suggestion.id)
    assert str(refused.value) == (f"cannot approve suggestion {suggestion.id}: it was already approved at"
                                  f" {T0.isoformat()} by {Owner.current().describe()} and is executing")
    assert not rt.recover() and rt.suggestion(suggestion.id).status == "approved"


def test_a_polymarket_order_is_known_by_its_hash_before_it_is_posted_and_recovered_by_it(rt, agent_folder):
    lisbon_yes = token_id(condition_id(SEED_MARKETS[0][0]), 0)
    wallet = rt.add_wallet(paper=True)
    folder = agent_folder("def run(agent):\n    pass\n", name="pm")
    s = rt.start_session(str(folder), wallet, now=T0)
    action = Action(venue="polymarket", kind=ORDER, method="market_order",
                    params={"tokenId": lisbon_yes, "size": 10, "side": "BUY"}, session_id=s.id, wallet=wallet)
    # Executed normally: the intent's client id is the order id the CLOB answered with.
    assert rt.gateway.execute(s, action).ok
    [intent] = rt.store.intents(session_id=s.id)
    [fill] = [e for e in rt.store.ledger([s.id]) if e.kind == "fill"]
    assert intent.client_id == fill.order_id == intent.result["orderInfo"]["orderId"]
    # Sent by a process that died: found by its hash, booked once.
    lost = sent_by_a_dead_process(rt, s, action)
    [done] = rt.recover().intents
    assert (done.intent_id, done.status) == (lost.id, EXECUTED)
    fills = [e for e in rt.store.ledger([s.id]) if e.kind == "fill"]
    assert [e.order_id for e in fills] == [fill.order_id, lost.client_id]
    assert fills[1].amount == fills[0].amount and not rt.recover()
    # Never posted: the CLOB does not know the hash.
    never = sent_by_a_dead_process(rt, s, action, send=False)
    [failed] = rt.recover().intents
    assert failed.status == FAILED
    assert rt.store.intents(session_id=s.id)[-1].error.endswith(
        f"stopped while sending it; polymarket never received it (client id {never.client_id})")
