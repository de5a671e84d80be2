"""What the gateway offers venues and closers, so that they never reach the state store: the
session's books, the wallets and sessions that share an account, the orders a session placed and
booked, and booking fills a venue finds later. Through the sim venue (tests/sim_venue.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import sim_venue
from tickloop.actions import ORDER, Action, Fill
from tickloop.testing import T0

D = Decimal
WALLET = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


@pytest.fixture
def rt(make_runtime: Any, sim: Any) -> Any:
    return make_runtime(plugins=[sim_venue])


def start(rt: Any, agent_folder: Any, name: str, wallet: str = WALLET) -> Any:
    return rt.start_session(str(agent_folder(name=name)), wallet, now=T0)


def order(session: Any, coin: str, side: str, size: float, *, rest: bool = False) -> Action:
    """A sim order: a market order fills at the mid; ``rest``: a limit order far from it rests."""
    mid = sim_venue.MIDS[coin]
    away = D("0.5") if (side == "buy") == rest else D("1.5")
    params = {"coin": coin, "side": side, "size": size, "price": float(mid * away), "market": "perp",
              "type": "limit" if rest else "market"}
    return Action(venue="sim", kind=ORDER, method="place_order", params=params, session_id=session.id,
                  wallet=session.wallet)


def executed(rt: Any, session: Any, action: Action) -> str:
    """Execute ``action`` through the gateway; the venue's order id."""
    execution = rt.gateway.execute(session, action)
    assert execution.ok, execution.error
    return str(execution.data["orderId"])


def late_fill(coin: str, size: str, order_id: str) -> Fill:
    return Fill(venue="sim", network=sim_venue.NETWORK, asset_key=coin, coin=coin, size=D(size),
                price=sim_venue.MIDS[coin], contract="perp", cash_network=sim_venue.NETWORK,
                cash_asset=sim_venue.CASH, order_id=order_id)


def test_placed_orders_are_the_sessions_resting_orders_on_that_venue(rt, agent_folder):
    a, b = start(rt, agent_folder, "a"), start(rt, agent_folder, "b")
    executed(rt, a, order(a, "BTC", "buy", 0.01))
    resting = executed(rt, a, order(a, "ETH", "buy", 0.5, rest=True))
    other = executed(rt, b, order(b, "ETH", "sell", 0.5, rest=True))
    assert rt.gateway.placed_orders(a.id, "sim") == {resting}
    assert rt.gateway.placed_orders(b.id, "sim") == {other}
    assert rt.gateway.placed_orders(a.id, "hyperliquid") == set()
    # Cancelled or not, an order stays the session's: a late fill still finds its owner.
    rt.gateway.submit(a, Action(venue="sim", kind="cancel", method="delete_order",
                                params={"orderId": resting, "coin": "ETH"}, session_id=a.id, wallet=a.wallet))
    assert rt.gateway.placed_orders(a.id, "sim") == {resting}


def test_booked_orders_sum_each_orders_trades_over_the_sessions_given(rt, agent_folder):
    a, b = start(rt, agent_folder, "a"), start(rt, agent_folder, "b")
    bought = executed(rt, a, order(a, "BTC", "buy", 0.01))
    executed(rt, a, order(a, "ETH", "buy", 0.5, rest=True))  # resting: nothing booked
    sold = executed(rt, b, order(b, "ETH", "sell", 0.25))
    assert rt.gateway.booked_orders([a.id], "sim") == {bought: D("0.01")}
    assert rt.gateway.booked_orders([a.id, b.id], "sim") == {bought: D("0.01"), sold: D("-0.25")}
    assert rt.gateway.booked_orders([a.id, b.id], "hyperliquid") == {}
    assert rt.gateway.booked_orders([], "sim") == {}


def test_record_fills_books_late_fills_to_their_own_sessions_at_the_gateways_time(rt, agent_folder):
    a, b = start(rt, agent_folder, "a"), start(rt, agent_folder, "b")
    resting = executed(rt, a, order(a, "ETH", "buy", 1, rest=True))
    later = T0 + timedelta(minutes=7)
    gateway = rt.gateway.with_clock(lambda: later)
    assert gateway.record_fills([]) == 0
    booked = gateway.record_fills([(a, late_fill("ETH", "0.4", resting)), (a, late_fill("ETH", "0.6", resting)),
                                   (b, late_fill("BTC", "-0.01", "b-1"))])
    assert booked == 3
    assert gateway.booked_orders([a.id], "sim") == {resting: D(1)}
    assert gateway.book(a.id).holdings[(sim_venue.NETWORK, "ETH")].size == D(1)
    assert gateway.book(b.id).holdings[(sim_venue.NETWORK, "BTC")].size == D("-0.01")
    assert {e.at for e in rt.store.ledger([a.id, b.id]) if e.kind == "fill"} == {later}


def test_books_are_per_session_and_leave_out_sessions_without_entries(rt, agent_folder):
    a, b, idle = (start(rt, agent_folder, name) for name in ("a", "b", "idle"))
    executed(rt, a, order(a, "BTC", "buy", 0.02))
    executed(rt, b, order(b, "BTC", "sell", 0.01))
    books = rt.gateway.books([a.id, b.id, idle.id])
    assert set(books) == {a.id, b.id}
    assert books[a.id].holdings[(sim_venue.NETWORK, "BTC")].size == D("0.02")
    assert books[b.id].holdings[(sim_venue.NETWORK, "BTC")].size == D("-0.01")
    assert books[a.id].holdings == rt.gateway.book(a.id).holdings
    assert rt.gateway.books([]) == {}


def test_the_gateway_finds_a_wallet_and_every_session_sharing_it(rt, agent_folder):
    address = rt.add_wallet(paper=True)
    assert rt.gateway.wallet(OTHER) is None  # never added: no key
    assert rt.gateway.wallet(address.lower()).address == address
    a, b = start(rt, agent_folder, "a", address), start(rt, agent_folder, "b", address)
    elsewhere = start(rt, agent_folder, "c", OTHER)
    rt.stop(b.id, now=T0)
    assert [s.id for s in rt.gateway.wallet_sessions(address)] == [a.id, b.id]  # stopped ones too
    assert [s.id for s in rt.gateway.wallet_sessions(elsewhere.wallet)] == [elsewhere.id]
    assert rt.gateway.wallet_sessions(address.replace(address[2:6], "0000")) == []
