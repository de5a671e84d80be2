"""Reconciliation, holds, adopt and close; unwind and stop that never hide open positions.

Sessions trade on the in-process paper Hyperliquid exchange; "outside tickloop" is the official
SDK signing with the same wallet's key, which is how a fill booked nowhere, a position opened by
hand or an order tickloop does not know end up on a real account.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

import tickloop_hyperliquid
from helpers import tickloop
from tickloop.errors import TickloopError
from tickloop.intents import NewIntent, Owner
from tickloop.ledger import Book
from tickloop.reconcile import AGREES, BUSY, DIFFERS, UNREACHABLE
from tickloop.testing import T0
from tickloop_paper import local_exchanges
from tickloop_paper.server import Fault

D = Decimal
M = timedelta(minutes=1)
NULL = "0x0000000000000000000000000000000000000000"
STARTING_ASSET = {"network": "hypercore:perp", "address": NULL, "minimumAmount": "100000000"}
# Buys its "size" of ETH on its first run, then logs each run.
TRADER = """
def run(agent):
    if agent.memory.get("bought").data.value is None:
        r = agent.platforms.hyperliquid.place_order({"coin": "ETH", "side": "buy", "size": agent.settings["size"],
                                                     "price": 3150, "market": "perp", "type": "market"})
        agent.memory.set("bought", str(r.success))
    agent.log("ran")
"""
SETTINGS = {"size": {"type": "number", "default": 0.1, "description": "ETH bought on the first run"}}


@pytest.fixture
def rt(make_runtime: Any) -> Any:
    return make_runtime(plugins=[tickloop_hyperliquid])


@pytest.fixture
def exchange(tickloop_home: Any) -> Any:
    return local_exchanges(tickloop_home).hyperliquid


def start(rt: Any, agent_folder: Any, wallet: str, *, name: str = "trader", mode: str = "auto",
          size: float = 0.1) -> Any:
    folder = agent_folder(TRADER, name=name, settings=SETTINGS, startingAsset=STARTING_ASSET)
    s = rt.start_session(str(folder), wallet, mode=mode, settings={"size": size}, now=T0)
    return s


def outside(rt: Any, exchange: Any, wallet: str) -> Any:
    """The official SDK signing with the wallet's key: trading outside tickloop."""
    return Exchange(rt.store.get_wallet(wallet).account(rt.config.home), exchange.url)


def account(exchange: Any, wallet: str) -> dict[str, Decimal]:
    state = Info(exchange.url, skip_ws=True).user_state(wallet)
    return {p["position"]["coin"]: D(p["position"]["szi"]) for p in state["assetPositions"]}


def held(rt: Any, session_id: int) -> dict[str, Decimal]:
    return {h.coin: h.size for h in Book.replay(rt.store.ledger([session_id])).open_holdings()}


def test_a_fill_no_ledger_has_holds_the_session_trading_it_until_adopted(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    assert rt.reconcile().clean and rt.holds() == {}
    outside(rt, exchange, wallet).market_open("ETH", True, 0.05)  # filled on the account, booked nowhere

    found = rt.reconcile()
    [report] = found.accounts
    assert (report.wallet, report.venue, report.status) == (wallet, "hyperliquid", DIFFERS)
    [difference] = report.differences
    assert (difference.coin, difference.venue_size, difference.ledger_size, difference.sessions) == \
        ("ETH", D("0.15"), D("0.1"), (s.id,))
    assert difference.describe() == (f"hyperliquid ETH on account {wallet}: the venue holds 0.15, the ledger of"
                                     f" session(s) {s.id} 0.1 (difference +0.05)")
    assert found.held == (s.id,) and rt.holds()[s.id].reason == difference.describe()
    # Held: the scheduler does not run it; it stays running.
    assert rt.tick(T0 + 20 * M) == [] and rt.session(s.id).state == "running"

    done = rt.adopt(s.id)
    assert done.released and rt.holds() == {}
    [adjustment] = [e for e in rt.store.ledger([s.id]) if e.kind == "adjustment"]
    assert (adjustment.amount, adjustment.price, adjustment.fee) == (D("0.05"), D(3000), D(0))
    assert adjustment.note == "adopted from the venue (tickloop reconcile adopt): venue 0.15, ledgers 0.1"
    assert held(rt, s.id) == {"ETH": D("0.15")} == account(exchange, wallet)
    assert [r.status for r in rt.tick(T0 + 20 * M)] == ["succeeded"]


def test_closing_a_difference_trades_it_away_and_books_it_so_both_agree(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("ETH", True, 0.05)
    rt.reconcile()
    done = rt.close_difference(s.id, "ETH")
    [(described, result)] = done.submitted
    assert result.success and result.data["filled"] == 0.05 and described.startswith("hyperliquid place_order")
    assert done.released and rt.holds() == {}
    assert account(exchange, wallet) == {"ETH": D("0.1")} == held(rt, s.id)
    assert [(e.kind, e.amount) for e in rt.store.ledger([s.id]) if e.kind != "allocation"] == \
        [("fill", D("0.1")), ("adjustment", D("0.05")), ("fill", D("-0.05"))]


def test_in_manual_mode_closing_a_difference_suggests_the_order(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet, mode="manual")
    rt.tick(T0)
    [buy] = rt.suggestions(session_id=s.id)
    rt.approve(buy.id)
    outside(rt, exchange, wallet).market_open("ETH", True, 0.02)
    done = rt.close_difference(s.id)
    [(_, result)] = done.submitted
    assert result.data["suggested"] is True
    # The difference is booked (the ledger holds what the account holds): released; nothing sent yet.
    assert done.released and held(rt, s.id) == {"ETH": D("0.12")} == account(exchange, wallet)
    rt.approve(result.data["suggestionId"])
    assert held(rt, s.id) == {"ETH": D("0.1")} == account(exchange, wallet)


def test_a_position_no_session_trades_is_unexplained_residue_and_holds_no_one(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("BTC", False, 0.001)
    found = rt.reconcile()
    [difference] = found.unexplained
    assert difference.describe() == (f"hyperliquid BTC -0.001 on account {wallet} is in no session's ledger; run"
                                     " tickloop reconcile")
    assert found.held == () and rt.holds() == {} and not found.clean
    with pytest.raises(TickloopError, match=f"session {s.id} has no difference with the venues; nothing was changed"):
        rt.adopt(s.id)
    # Named explicitly, the session may take it over.
    rt.adopt(s.id, "BTC")
    assert held(rt, s.id) == {"ETH": D("0.1"), "BTC": D("-0.001")} and rt.reconcile().clean


def test_an_order_tickloop_does_not_know_is_found_and_closing_cancels_it(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    answer = outside(rt, exchange, wallet).order("ETH", True, 0.01, 2500.0, {"limit": {"tif": "Gtc"}})
    oid = str(answer["response"]["data"]["statuses"][0]["resting"]["oid"])
    found = rt.reconcile()
    [difference] = found.differences
    assert (difference.order.order_id, difference.sessions) == (oid, (s.id,))
    assert found.held == (s.id,)
    done = rt.close_difference(s.id)
    assert done.released and Info(exchange.url, skip_ws=True).open_orders(wallet) == []
    assert ("hyperliquid", oid) in rt.store.session_orders(s.id, "hyperliquid")


def test_an_unreachable_venue_is_reported_and_changes_no_hold(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("ETH", True, 0.05)
    assert rt.reconcile().held == (s.id,)
    fault = exchange.faults.add(Fault("status", path="/info", times=None, status=502))
    try:
        [report] = rt.reconcile().accounts
        assert report.status == UNREACHABLE and "502" in report.error and report.differences == ()
        assert s.id in rt.holds()
        with pytest.raises(TickloopError, match=r"cannot compare hyperliquid account .* nothing was changed"):
            rt.adopt(s.id)
    finally:
        exchange.faults.clear()
    assert fault.times is None and s.id in rt.holds()


def test_an_account_with_an_order_in_flight_is_not_compared(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("ETH", True, 0.05)
    action = rt.store.intents(session_id=s.id)[0].action
    rt.store.begin_intent(NewIntent(session_id=s.id, wallet=wallet, venue="hyperliquid", action=action,
                                    client_id="0x" + "22" * 16, owner=str(Owner.current()), at=T0))
    [report] = rt.reconcile().accounts
    assert report.status == BUSY and "is in flight" in report.error and rt.holds() == {}


def test_two_sessions_on_one_account_each_agree_when_their_sum_does(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    a = start(rt, agent_folder, wallet, name="alpha", size=0.1)
    b = start(rt, agent_folder, wallet, name="beta", size=0.3)
    rt.tick(T0)
    [report] = rt.reconcile().accounts
    assert report.status == AGREES and account(exchange, wallet) == {"ETH": D("0.4")}
    rt.unwind(a.id, now=T0 + M)
    assert account(exchange, wallet) == {"ETH": D("0.3")} and held(rt, b.id) == {"ETH": D("0.3")}
    assert rt.reconcile().clean


def test_unwinding_an_asset_the_session_does_not_hold_is_refused_and_changes_nothing(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    with pytest.raises(TickloopError) as refused:
        rt.unwind(s.id, assets=["NOPE"], now=T0 + M)
    assert str(refused.value) == (f"session {s.id} holds no position 'NOPE'; its positions: ETH (hyperliquid,"
                                  " asset ETH, size 0.1); nothing was changed")
    assert rt.session(s.id).state == "running" and account(exchange, wallet) == {"ETH": D("0.1")}
    assert [t.action for t in rt.transitions(s.id)] == ["start"]


def test_stopping_a_session_with_open_positions_records_them(rt, exchange, agent_folder):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    rt.stop(s.id, now=T0 + M, reason="done")
    assert rt.transitions(s.id)[-1].reason == "done; left open: hyperliquid ETH 0.1"


# -- the CLI ------------------------------------------------------------------------------------


def test_the_cli_reconciles_holds_adopts_and_warns(rt, exchange, agent_folder, tickloop_home):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    other = start(rt, agent_folder, wallet, name="other", size=0.2)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("ETH", True, 0.05)

    proc = tickloop(tickloop_home, "reconcile")
    assert proc.returncode == 1, proc.stderr
    assert f"hyperliquid account {wallet}: differs" in proc.stdout
    assert f"the venue holds 0.35, the ledger of session(s) {s.id}, {other.id} 0.3 (difference +0.05)" in proc.stdout
    assert f"session {s.id} is held: it does not run until resolved with tickloop reconcile adopt {s.id}" in proc.stdout
    listed = json.loads(tickloop(tickloop_home, "sessions", "list", "--json", check=True).stdout)
    assert [(x["id"], x["hold"] is not None) for x in listed] == [(s.id, True), (other.id, True)]
    assert "(held)" in tickloop(tickloop_home, "sessions", "list", check=True).stdout
    shown = tickloop(tickloop_home, "sessions", "show", str(s.id), check=True).stdout
    assert "held       held since" in shown and f"resolve with tickloop reconcile adopt|close {s.id}" in shown

    adopted = json.loads(tickloop(tickloop_home, "reconcile", "adopt", str(other.id), "--asset", "eth", "--json",
                                  check=True).stdout)
    assert adopted["released"] is True and adopted["after"]["released"] == [s.id, other.id]
    again = json.loads(tickloop(tickloop_home, "reconcile", "--json", check=True).stdout)
    assert [a["status"] for a in again["accounts"]] == ["agrees"] and again["held"] == []

    nope = tickloop(tickloop_home, "sessions", "unwind", str(s.id), "--asset", "NOPE")
    assert nope.returncode == 1 and "Traceback" not in nope.stderr
    assert f"session {s.id} holds no position 'NOPE'" in nope.stderr and rt.session(s.id).state == "running"
    stopped = tickloop(tickloop_home, "sessions", "stop", str(s.id), check=True)
    assert f"session {s.id} is stopped" in stopped.stdout
    assert (f"warning: session {s.id} stopped with positions left open: hyperliquid ETH 0.1. They stay on the venue"
            in stopped.stderr)


def test_cli_unwind_reports_venue_residue_no_ledger_explains(rt, exchange, agent_folder, tickloop_home):
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("BTC", True, 0.001)
    proc = tickloop(tickloop_home, "sessions", "unwind", str(s.id), check=True)
    assert f"session {s.id} is stopped" in proc.stdout
    assert f"hyperliquid BTC 0.001 on account {wallet} is in no session's ledger; run tickloop reconcile" in proc.stdout
    assert account(exchange, wallet) == {"BTC": D("0.001")}


def test_an_unwind_run_by_serve_logs_venue_residue_no_ledger_explains(rt, exchange, agent_folder):
    """Whoever runs the unwind (serve, the CLI), its run's log says what the account holds that no
    ledger explains, at level error, instead of ending on "nothing left"."""
    wallet = rt.add_wallet(paper=True)
    s = start(rt, agent_folder, wallet)
    rt.tick(T0)
    outside(rt, exchange, wallet).market_open("BTC", True, 0.001)
    rt.unwind(s.id)
    [unwind] = [r for r in rt.runs(s.id) if r.kind == "unwind"]
    residue = [(line.level, line.message) for line in unwind.logs if line.message.startswith("venue residue: ")]
    assert residue == [("error", f"venue residue: hyperliquid BTC 0.001 on account {wallet} is in no session's"
                                 " ledger; run tickloop reconcile")]
