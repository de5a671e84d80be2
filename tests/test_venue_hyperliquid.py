"""The hyperliquid venue and closer through tickloop's Runtime, on the in-process paper exchange.

With no ``[venues.hyperliquid]`` configured, the venue trades on the paper exchange tickloop
starts for the home (``tickloop_paper.local_exchanges``), through the official SDK: every
order below is signed by the paper wallet's key, checked by the paper exchange, and visible in
its request log, which is how these tests check what reached the exchange (and what did not).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from hyperliquid.info import Info

import tickloop_hyperliquid
from tickloop.actions import ORDER, Action
from tickloop.ledger import Book
from tickloop.testing import T0
from tickloop_paper import local_exchanges, start_exchanges
from tickloop_paper.server import Fault

D = Decimal
M = timedelta(minutes=1)
NULL = "0x0000000000000000000000000000000000000000"
STARTING_ASSET = {"network": "hypercore:perp", "address": NULL, "minimumAmount": "100000000"}
HL_TREND = Path(__file__).resolve().parents[1] / "agents" / "hl-trend"

# Each run places the orders of its "orders" setting and records every answer, and (with
# "reads") the answers of the reading methods, in session memory as JSON.
TRADER = """
import json

def run(agent):
    hl = agent.platforms.hyperliquid
    answers = [hl.place_order(order).to_dict() for order in json.loads(agent.settings["orders"])]
    agent.memory.set("answers", json.dumps(answers))
    for answer in answers:
        agent.log("answer " + json.dumps(answer))
    if agent.settings["reads"]:
        reads = {"positions": hl.positions().to_dict(), "open_orders": hl.open_orders().to_dict(),
                 "balances": hl.balances().to_dict(), "fills": hl.order_fills().to_dict(),
                 "orders": hl.orders().to_dict(), "mid": hl.midpoint_price("ETH").to_dict(),
                 "mids": hl.midpoint_price(["BTC", "ETH", "DOGE"]).to_dict(),
                 "no_mid": hl.midpoint_price("DOGE").to_dict()}
        mid = hl.midpoint_price("ETH")
        reads["mid_aliases"] = [mid.data.price_usd, mid.data.is_stale]
        for order in reads["open_orders"]["data"] or []:
            reads.setdefault("order", hl.order(order["orderId"]).to_dict())
        # Result.to_dict() leaves list items as Data mappings: serialise those too.
        agent.memory.set("reads", json.dumps(reads, default=lambda data: data.to_dict()))
    for order_id, coin in json.loads(agent.settings["cancel"]):
        agent.log("cancel " + json.dumps(hl.delete_order(order_id, coin).to_dict()))
"""
SETTINGS = {
    "orders": {"type": "text", "default": "[]", "description": "orders placed by every run"},
    "reads": {"type": "boolean", "default": False, "description": "record the reading methods' answers"},
    "cancel": {"type": "text", "default": "[]", "description": "[orderId, coin] pairs to cancel"},
}


def market(coin: str, side: str, size: float, **extra: Any) -> dict[str, Any]:
    """A market order with a 5% slippage bound around the paper exchange's default mid."""
    mid = {"BTC": 60000, "ETH": 3000, "SOL": 150, "HYPE": 25}[coin]
    price = mid * (1.05 if side == "buy" else 0.95)
    return {"coin": coin, "side": side, "size": size, "price": price, "market": "perp", "type": "market", **extra}


def settings(*orders: dict[str, Any], reads: bool = False, cancel: list[tuple[str, str]] = ()) -> dict[str, Any]:
    return {"orders": json.dumps(list(orders)), "reads": reads, "cancel": json.dumps(list(cancel))}


@pytest.fixture
def rt(make_runtime: Any) -> Any:
    return make_runtime(plugins=[tickloop_hyperliquid])


@pytest.fixture
def exchange(tickloop_home: Path) -> Any:
    """The home's paper Hyperliquid server: its request log and faults."""
    return local_exchanges(tickloop_home).hyperliquid


@pytest.fixture
def trader(agent_folder: Any) -> Any:
    def make(name: str = "trader") -> str:
        return str(agent_folder(TRADER, name=name, settings=SETTINGS, startingAsset=STARTING_ASSET))

    return make


def held(rt: Any, session_id: int) -> dict[str, Decimal]:
    return {p.coin: D(p.size) for p in rt.portfolio(session_id).positions}


def account(exchange: Any, wallet: str) -> dict[str, Decimal]:
    state = Info(exchange.url, skip_ws=True).user_state(wallet)
    return {p["position"]["coin"]: D(p["position"]["szi"]) for p in state["assetPositions"]}


def exchange_orders(exchange: Any, since: int = 0) -> list[dict[str, Any]]:
    """The order wires the exchange received (each /exchange order action), oldest first."""
    return [wire for r in exchange.requests("/exchange")[since:] if r.body["action"]["type"] == "order"
            for wire in r.body["action"]["orders"]]


def memory(rt: Any, session_id: int, key: str) -> Any:
    return json.loads(rt.memory(session_id).get(key).data.value)


def move_mid(exchange: Any, coin: str, px: float) -> None:
    requests.post(exchange.url + "/paper/mid", json={"coin": coin, "px": px}, timeout=5).raise_for_status()


# -- auto and manual ----------------------------------------------------------------------------


def test_auto_mode_fills_are_booked_to_the_ledger_and_the_portfolio(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.5), market("BTC", "sell", 0.01)),
                         now=T0)
    [run] = rt.tick(T0)
    assert (run.status, run.error) == ("succeeded", None)
    eth, btc = memory(rt, s.id, "answers")
    assert eth["success"] and btc["success"]
    assert {k: eth["data"][k] for k in ("coin", "side", "price", "size", "filled", "status", "market")} == \
        {"coin": "ETH", "side": "buy", "price": 3000.0, "size": 0.5, "filled": 0.5, "status": "filled",
         "market": "perp"}
    assert isinstance(eth["data"]["orderId"], str) and eth["data"]["orderId"].isdigit()
    assert held(rt, s.id) == {"ETH": D("0.5"), "BTC": D("-0.01")}
    # The paper wallet's account was funded on first use, and holds what the session holds.
    assert account(exchange, wallet) == {"ETH": D("0.5"), "BTC": D("-0.01")}
    fills = [e for e in rt.store.ledger([s.id]) if e.kind == "fill"]
    assert [(e.coin, e.amount, e.price, e.fee, e.order_id) for e in fills] == [
        ("ETH", D("0.5"), D(3000), D("0.675"), eth["data"]["orderId"]),
        ("BTC", D("-0.01"), D(60000), D("0.27"), btc["data"]["orderId"])]
    portfolio = rt.portfolio(s.id)
    [cash] = portfolio.balances
    assert (cash.network, cash.assetKey, cash.symbol, cash.amountRaw) == \
        ("hypercore:perp", NULL, "USDC", str(100_000_000 - 675_000 - 270_000))
    # Marked at the exchange's mid.
    move_mid(exchange, "ETH", 3100)
    eth_position = next(p for p in rt.portfolio(s.id).positions if p.coin == "ETH")
    assert (eth_position.markPriceUsd, eth_position.unrealizedPnlUsd) == ("3100", "50")


def test_manual_mode_sends_nothing_until_approval_then_exactly_one_order(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, mode="manual", settings=settings(market("ETH", "buy", 0.2)), now=T0)
    rt.tick(T0)
    [answer] = memory(rt, s.id, "answers")
    assert answer["success"] and answer["data"]["suggested"] is True
    details = answer["data"]["details"]
    assert (details["venue"], details["method"], details["coin"], details["size"]) == \
        ("hyperliquid", "place_order", "ETH", 0.2)
    assert exchange.requests("/exchange") == [] and held(rt, s.id) == {}
    [suggestion] = rt.suggestions(session_id=s.id)
    assert suggestion.action.notional_usd == D("0.2") * D("3150")

    done = rt.approve(suggestion.id)
    assert done.status == "executed"
    [sent] = exchange.requests("/exchange")
    [wire] = sent.body["action"]["orders"]
    assert (sent.body["action"]["type"], wire["b"], wire["s"], wire["r"], wire["t"]) == \
        ("order", True, "0.2", False, {"limit": {"tif": "Ioc"}})
    assert held(rt, s.id) == {"ETH": D("0.2")}
    assert account(exchange, wallet) == {"ETH": D("0.2")}


def test_the_agent_reads_its_own_share_in_circuits_shapes(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    limit = {"coin": "ETH", "side": "buy", "size": 0.1, "price": 2500, "market": "perp", "type": "limit"}
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.5), limit, reads=True), now=T0)
    other = rt.start_session(trader("other"), wallet, settings=settings(market("ETH", "buy", 0.3), limit), now=T0)
    assert [(r.status, r.error) for r in rt.tick(T0)] == [("succeeded", None)] * 2
    reads = memory(rt, s.id, "reads")
    [position] = reads["positions"]["data"]
    assert position == {"coin": "ETH", "side": "long", "size": "0.5", "entryPrice": "3000", "markPrice": "3000",
                        "liquidationPrice": position["liquidationPrice"], "unrealizedPnl": "0", "leverage": "20",
                        "marginUsed": "75"}
    resting_id = memory(rt, s.id, "answers")[1]["data"]["orderId"]
    # Only this session's order, although the other session's order rests on the same account.
    assert reads["open_orders"]["data"] == [{"orderId": resting_id, "coin": "ETH", "side": "buy", "price": 2500.0,
                                             "size": 0.1, "filled": 0.0, "status": "open", "market": "perp"}]
    assert reads["order"]["data"]["orderId"] == resting_id and reads["order"]["data"]["status"] == "open"
    perp = reads["balances"]["data"]["perp"]
    assert set(perp) == {"accountValue", "totalMarginUsed", "withdrawable"} and all(isinstance(v, str) for v in
                                                                                     perp.values())
    assert D(perp["accountValue"]) == D(100) - D("0.675")  # the session's allocation less its fee
    [fill] = reads["fills"]["data"]
    assert (fill["coin"], fill["side"], fill["size"], fill["price"], fill["fee"], fill["isCrossed"]) == \
        ("ETH", "buy", "0.5", "3000.0", "0.675", True)
    assert isinstance(fill["orderId"], str) and isinstance(fill["timestamp"], int)
    assert sorted(o["status"] for o in reads["orders"]["data"]) == ["filled", "open"]
    mid = reads["mid"]["data"]
    assert (mid["coin"], mid["network"], mid["priceUsd"], mid["isStale"]) == ("ETH", "hypercore:perp", "3000", False)
    assert reads["mid_aliases"] == ["3000", False]
    assert [m["coin"] for m in reads["mids"]["data"]] == ["BTC", "ETH"]
    assert reads["no_mid"] == {"success": False, "data": None,
                               "error": "midpoint_price: no midpoint price for DOGE on hypercore:perp"}
    assert account(exchange, wallet) == {"ETH": D("0.8")}
    assert len(Info(exchange.url, skip_ws=True).open_orders(wallet)) == 2
    assert held(rt, other.id) == {"ETH": D("0.3")}


def test_orders_are_rounded_to_the_lot_and_tick_and_refusals_are_results(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(
        {"coin": "ETH", "side": "buy", "size": 0.123456, "price": 3100.123, "market": "perp", "type": "market"},
        market("ETH", "buy", 0.001),  # $3: under the minimum
        {"coin": "DOGE", "side": "buy", "size": 100, "price": 1, "market": "perp", "type": "market"},
        {"coin": "HYPE/USDC", "side": "buy", "size": 1, "price": 30, "market": "spot"},
        market("ETH", "sell", 1, reduceOnly=True),  # would flip the position
    ), now=T0)
    [run] = rt.tick(T0)
    assert run.status == "succeeded"
    rounded, minimum, doge, spot, flip = memory(rt, s.id, "answers")
    assert rounded["success"] and rounded["data"]["size"] == 0.1235
    [wire, small, flipping] = exchange_orders(exchange)
    assert (wire["s"], wire["p"]) == ("0.1235", "3100.2")  # a buy's slippage bound rounds up
    assert minimum == {"success": False, "data": None, "error": "Order must have minimum value of $10."}
    assert doge["error"] == "place_order: unknown coin 'DOGE' on hypercore:perp"
    assert "spot orders are not supported" in spot["error"]
    assert flip["error"] == "Reduce only order would increase position."
    assert (small["s"], flipping["r"]) == ("0.001", True)
    assert held(rt, s.id) == {"ETH": D("0.1235")}


def test_a_session_cancels_only_its_own_orders(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    limit = {"coin": "SOL", "side": "sell", "size": 1, "price": 170, "market": "perp", "type": "limit"}
    s = rt.start_session(trader(), wallet, settings=settings(limit), now=T0)
    other = rt.start_session(trader("other"), wallet, settings=settings(limit), now=T0)
    rt.tick(T0)
    mine = memory(rt, s.id, "answers")[0]["data"]["orderId"]
    theirs = memory(rt, other.id, "answers")[0]["data"]["orderId"]
    # The object a run of this session gets as agent.platforms.hyperliquid.
    api = rt.gateway.venues.get("hyperliquid").agent_api(rt.session(s.id), rt.gateway)
    refused = api.delete_order(theirs, "SOL")
    assert refused.success is False
    assert refused.error == f"delete_order: order {theirs} was not placed by session {s.id}"
    assert api.delete_order(mine, "SOL").to_dict() == {"success": True, "data": None, "error": None}
    assert {str(o["oid"]) for o in Info(exchange.url, skip_ws=True).open_orders(wallet)} == {theirs}
    assert api.open_orders().data == []
    again = api.delete_order(mine, "SOL")
    assert again.error == "Order was never placed, already canceled, or filled. asset=2"


# -- late fills ---------------------------------------------------------------------------------


def test_a_resting_order_that_fills_later_is_booked_to_its_session(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    limit = {"coin": "ETH", "side": "buy", "size": 0.2, "price": 2900, "market": "perp", "type": "limit"}
    s = rt.start_session(trader(), wallet, settings=settings(limit), now=T0)
    rt.tick(T0)
    assert held(rt, s.id) == {}
    move_mid(exchange, "ETH", 2880)  # the resting buy fills at 2900
    assert account(exchange, wallet) == {"ETH": D("0.2")}
    api = rt.gateway.venues.get("hyperliquid").agent_api(rt.session(s.id), rt.gateway)
    [position] = api.positions().data
    assert (position.size, position.entryPrice) == ("0.2", "2900")
    assert held(rt, s.id) == {"ETH": D("0.2")}
    # Booked once: reading again adds nothing.
    api2 = rt.gateway.venues.get("hyperliquid").agent_api(rt.session(s.id), rt.gateway)
    api2.positions()
    fills = [e for e in rt.store.ledger([s.id]) if e.kind == "fill"]
    assert [(e.amount, e.price, e.fee) for e in fills] == [(D("0.2"), D(2900), D("0.087"))]


# -- unwinding a shared account -----------------------------------------------------------------


def test_unwinding_one_session_leaves_the_other_sessions_exposure(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    a = rt.start_session(trader("alpha"), wallet, settings=settings(market("ETH", "buy", 0.5), market("BTC", "buy",
                                                                                                        0.01)), now=T0)
    b = rt.start_session(trader("beta"), wallet, settings=settings(market("ETH", "buy", 0.3)), now=T0)
    rt.tick(T0)
    assert account(exchange, wallet) == {"ETH": D("0.8"), "BTC": D("0.01")}
    before = len(exchange.requests("/exchange"))

    done = rt.unwind(a.id, now=T0 + 5 * M)
    assert done.state == "stopped"
    run = rt.runs(a.id)[-1]
    assert (run.kind, run.status, run.error) == ("unwind", "succeeded", None)
    # One reduce-only IOC per coin, sized from alpha's ledger: never the account's whole position.
    closing = exchange_orders(exchange, before)
    assert sorted((w["a"], w["b"], w["s"], w["r"], w["t"]["limit"]["tif"]) for w in closing) == \
        [(0, False, "0.01", True, "Ioc"), (1, False, "0.5", True, "Ioc")]
    assert held(rt, a.id) == {}
    assert account(exchange, wallet) == {"ETH": D("0.3")} == held(rt, b.id)
    assert rt.session(b.id).state == "running"


def test_unwinding_against_an_offsetting_session_lands_on_the_others_exposure(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    a = rt.start_session(trader("alpha"), wallet, settings=settings(market("ETH", "buy", 0.5)), now=T0)
    b = rt.start_session(trader("beta"), wallet, settings=settings(market("ETH", "sell", 0.2)), now=T0)
    rt.tick(T0)
    assert account(exchange, wallet) == {"ETH": D("0.3")}
    before = len(exchange.requests("/exchange"))
    rt.unwind(a.id, now=T0 + 5 * M)
    # The account holds 0.3 but alpha's share is 0.5: a reduce-only order cannot close it; a
    # plain IOC for exactly 0.5 leaves beta's short.
    [wire] = exchange_orders(exchange, before)
    assert (wire["b"], wire["s"], wire["r"]) == (False, "0.5", False)
    assert account(exchange, wallet) == {"ETH": D("-0.2")} == held(rt, b.id)
    assert held(rt, a.id) == {}
    assert any("not reduce-only" in line.message for line in rt.runs(a.id)[-1].logs)


def test_the_closer_cancels_the_sessions_orders_and_never_the_others(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    limit = {"coin": "SOL", "side": "buy", "size": 1, "price": 120, "market": "perp", "type": "limit"}
    a = rt.start_session(trader("alpha"), wallet, settings=settings(market("ETH", "buy", 0.1), limit), now=T0)
    b = rt.start_session(trader("beta"), wallet, settings=settings(limit), now=T0)
    rt.tick(T0)
    theirs = memory(rt, b.id, "answers")[0]["data"]["orderId"]
    assert len(Info(exchange.url, skip_ws=True).open_orders(wallet)) == 2
    rt.unwind(a.id, now=T0 + 5 * M)
    assert [str(o["oid"]) for o in Info(exchange.url, skip_ws=True).open_orders(wallet)] == [theirs]
    cancels = [r.body["action"] for r in exchange.requests("/exchange") if r.body["action"]["type"] == "cancel"]
    assert len(cancels) == 1
    assert held(rt, a.id) == {} and account(exchange, wallet) == {}


def test_a_manual_unwind_suggests_the_closing_order_and_executes_it_on_approval(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, mode="manual", settings=settings(market("ETH", "buy", 0.4)), now=T0)
    rt.tick(T0)
    [opening] = rt.suggestions(session_id=s.id)
    rt.approve(opening.id, now=T0 + M)
    assert held(rt, s.id) == {"ETH": D("0.4")}
    sent = len(exchange.requests("/exchange"))

    unwinding = rt.unwind(s.id, now=T0 + 5 * M)
    assert unwinding.state == "unwinding"  # waiting for the closing order's approval
    assert len(exchange.requests("/exchange")) == sent  # nothing sent
    [closing] = rt.suggestions(session_id=s.id, status="pending")
    params = closing.action.params
    assert (params["coin"], params["side"], params["size"], params["reduceOnly"], params["type"]) == \
        ("ETH", "sell", 0.4, True, "market")
    assert closing.action.message == "unwind: close 0.4 ETH"

    rt.approve(closing.id, now=T0 + 6 * M)
    [wire] = exchange_orders(exchange, sent)
    assert (wire["b"], wire["s"], wire["r"]) == (False, "0.4", True)
    assert held(rt, s.id) == {} and account(exchange, wallet) == {}
    assert rt.session(s.id).state == "stopped"


# -- closers under faults -----------------------------------------------------------------------


def test_the_closer_retries_partial_fills_until_flat(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.5)), now=T0)
    rt.tick(T0)
    before = len(exchange.requests("/exchange"))
    exchange.faults.add(Fault("partial_fill", times=2, params={"fraction": 0.5}))
    assert rt.unwind(s.id, now=T0 + 5 * M).state == "stopped"
    assert [w["s"] for w in exchange_orders(exchange, before)] == ["0.5", "0.25", "0.125"]
    assert all(w["r"] for w in exchange_orders(exchange, before))
    assert held(rt, s.id) == {} and account(exchange, wallet) == {}
    assert rt.runs(s.id)[-1].error is None


def test_the_closer_retries_no_match_with_wider_slippage(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.5)), now=T0)
    rt.tick(T0)
    before = len(exchange.requests("/exchange"))
    exchange.faults.add(Fault("ioc_no_match", times=2))
    exchange.faults.add(Fault("status", path="/exchange", status=502, body="upstream down"))
    assert rt.unwind(s.id, now=T0 + 5 * M).state == "stopped"
    prices = [D(w["p"]) for w in exchange_orders(exchange, before)]
    assert len(prices) == 4 and prices == sorted(prices, reverse=True)  # each retry sells further below the mid
    assert prices[0] == D("2970")  # mid less 1%
    assert held(rt, s.id) == {} and account(exchange, wallet) == {}
    logs = [line.message for line in rt.runs(s.id)[-1].logs]
    assert any("could not immediately match" in m for m in logs) and any("server error 502" in m for m in logs)


def test_the_closer_reports_residue_when_its_budget_runs_out(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.5)), now=T0)
    rt.tick(T0)
    before = len(exchange.requests("/exchange"))
    exchange.faults.add(Fault("ioc_no_match", times=None))
    rt.unwind(s.id, now=T0 + 5 * M)
    run = rt.runs(s.id)[-1]
    assert len(exchange_orders(exchange, before)) == 5
    assert run.error == ("left open: hyperliquid ETH size 0.5 left open: still open after 5 attempts (last: Order"
                         " could not immediately match against any resting orders. asset=1)")
    assert any(line.level == "error" and "left open" in line.message for line in run.logs)
    # Reported, never hidden: the ledger and the account still hold it.
    assert held(rt, s.id) == {"ETH": D("0.5")} and account(exchange, wallet) == {"ETH": D("0.5")}


def test_the_closer_leaves_exposure_nobody_owns_alone(rt, exchange, trader, tickloop_home):
    """If the account no longer holds what the ledgers say (closed outside tickloop), the closer
    does not trade past the account's position."""
    from hyperliquid.exchange import Exchange

    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.5)), now=T0)
    rt.tick(T0)
    key = rt.wallet(wallet).account(tickloop_home)
    Exchange(key, exchange.url).market_close("ETH")  # someone closes the account by hand
    before = len(exchange.requests("/exchange"))
    rt.unwind(s.id, now=T0 + 5 * M)
    assert exchange_orders(exchange, before) == []
    assert "the account holds 0 ETH but the sessions' ledgers say 0.5" in rt.runs(s.id)[-1].error


# -- configuration ------------------------------------------------------------------------------


def test_a_paper_wallet_is_refused_on_a_configured_exchange(make_runtime, trader):
    rt = make_runtime(plugins=[tickloop_hyperliquid],
                      overrides={"venues": {"hyperliquid": {"base_url": "http://127.0.0.1:9/"}}})
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.1)), now=T0)
    rt.tick(T0)
    [answer] = memory(rt, s.id, "answers")
    assert answer["success"] is False and "is a paper wallet and cannot trade" in answer["error"]
    venue = rt.gateway.venues.get("hyperliquid")
    action = Action(venue="hyperliquid", kind=ORDER, method="place_order", params=market("ETH", "buy", 0.1),
                    session_id=s.id, wallet=wallet)
    execution = venue.execute(action, rt.wallet(wallet))
    assert not execution.ok and "paper wallet" in execution.error
    assert venue.execute(action, None).error.startswith(f"wallet {wallet} has not been added")


def test_a_url_marked_paper_takes_paper_wallets(make_runtime, trader):
    exchanges = start_exchanges(None)
    try:
        rt = make_runtime(plugins=[tickloop_hyperliquid],
                          overrides={"venues": {"hyperliquid": {"base_url": exchanges.hyperliquid.url,
                                                                "paper": True}}})
        wallet = rt.add_wallet(paper=True)
        s = rt.start_session(trader(), wallet, settings=settings(market("SOL", "buy", 1)), now=T0)
        rt.tick(T0)
        assert held(rt, s.id) == {"SOL": D(1)} == account(exchanges.hyperliquid, wallet)
        venue = rt.gateway.venues.get("hyperliquid")
        assert venue.balance(wallet, "hypercore:perp", NULL) == 10_000_000_000 - 67_500
        assert venue.balance(wallet, "ethereum:1", NULL) is None
        assert venue.account(wallet) == {"accountValue": "9999.9325", "totalMarginUsed": "7.5"}
        assert venue.marks([("hypercore:perp", "SOL"), ("ethereum:1", "SOL")]) == {("hypercore:perp", "SOL"): D(150)}
    finally:
        exchanges.stop()


# -- the example agent --------------------------------------------------------------------------


def test_hl_trend_follows_the_trend_and_unwinds_flat(rt, exchange):
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(str(HL_TREND), wallet, settings={"coin": "ETH", "size": 0.05, "window": 3, "band": 0.5},
                         now=T0)
    at = T0
    for px in (3000, 3000, 3000):
        move_mid(exchange, "ETH", px)
        [run] = rt.tick(at)
        assert run.status == "succeeded", run.error
        at += 15 * M
    assert held(rt, s.id) == {}
    move_mid(exchange, "ETH", 3100)  # above the average by more than the band: long
    rt.tick(at)
    assert held(rt, s.id) == {"ETH": D("0.05")}
    at += 15 * M
    move_mid(exchange, "ETH", 2900)  # below: flip short in one order
    [run] = rt.tick(at)
    assert held(rt, s.id) == {"ETH": D("-0.05")}
    assert any("trend down" in line.message for line in run.logs)
    rt.unwind(s.id, now=at + 5 * M)
    unwind = rt.runs(s.id)[-1]
    assert unwind.error is None and any("left to the closer" in line.message for line in unwind.logs)
    assert held(rt, s.id) == {} and account(exchange, wallet) == {}
    assert all(h.size == 0 for h in Book.replay(rt.store.ledger([s.id])).holdings.values())


def test_an_unwind_cancels_the_resting_orders_of_a_session_without_positions(rt, exchange, trader):
    wallet = rt.add_wallet(paper=True)
    limit = {"coin": "BTC", "side": "buy", "size": 0.001, "price": 50000, "market": "perp", "type": "limit"}
    s = rt.start_session(trader(), wallet, settings=settings(limit), now=T0)
    rt.tick(T0)
    assert len(Info(exchange.url, skip_ws=True).open_orders(wallet)) == 1 and held(rt, s.id) == {}
    assert rt.unwind(s.id, now=T0 + 5 * M).state == "stopped"
    assert Info(exchange.url, skip_ws=True).open_orders(wallet) == []
    assert any("cancelled BTC order" in line.message for line in rt.runs(s.id)[-1].logs)


def test_an_order_whose_answer_is_lost_is_looked_up_by_its_client_order_id(make_runtime, tickloop_home, trader):
    rt = make_runtime(plugins=[tickloop_hyperliquid], overrides={"venues": {"hyperliquid": {"timeout_seconds": 0.15}}})
    exchange = local_exchanges(tickloop_home).hyperliquid
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader(), wallet, settings=settings(market("ETH", "buy", 0.1)), now=T0)
    rt.gateway.venues.get("hyperliquid").api.ensure_paper_account(rt.wallet(wallet))
    # The order is slower than the client's timeout, but the exchange executes it.
    exchange.faults.add(Fault("latency", path="/exchange", seconds=0.3))
    rt.tick(T0)
    [answer] = memory(rt, s.id, "answers")
    assert answer["success"] and answer["data"]["filled"] == 0.1, answer
    assert held(rt, s.id) == {"ETH": D("0.1")} == account(exchange, wallet)
    [wire] = exchange_orders(exchange)
    assert wire["c"].startswith("0x") and len(wire["c"]) == 34
    # An order the exchange never saw (the server failed first) fails with the reason.
    exchange.faults.add(Fault("status", path="/exchange", status=503, body="down"))
    api = rt.gateway.venues.get("hyperliquid").agent_api(rt.session(s.id), rt.gateway)
    lost = api.place_order(market("ETH", "buy", 0.1))
    assert lost.success is False and "server error 503" in lost.error
    assert held(rt, s.id) == {"ETH": D("0.1")} == account(exchange, wallet)
