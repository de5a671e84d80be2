"""The per-session ledger and the portfolio derived from it: accounting units, snapshots, wallets
shared by sessions, allocations."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from sqlalchemy import func, select

import sim_venue
from tickloop.actions import Fill
from tickloop.errors import TickloopError
from tickloop.ledger import Book, LedgerEntry
from tickloop.portfolio import Balance, Portfolio, Position
from tickloop.testing import T0
from tickloop_sql import tables

D = Decimal
M = timedelta(minutes=1)
NET = "hypercore:perp"
USDC = "0xaf88d065e77c8cc2239327c5edb3a432268e5831"  # a cash asset tickloop knows (6 decimals)
WALLET = "0x" + "ab" * 20

# Circuit's SessionBalance and SessionPosition field names (reference/sdk.md, types/common.py).
CIRCUIT_BALANCE = {"network", "assetKey", "tokenAddress", "tokenId", "symbol", "decimals", "amountRaw", "valueUsd",
                   "assetClass"}
CIRCUIT_POSITION = {"network", "assetKey", "coin", "size", "averageEntryPrice", "markPriceUsd", "unrealizedPnlUsd",
                    "polymarketMetadata"}


def fill(size: str, price: str, *, coin: str = "BTC", fee: str = "0", contract: str = "perp",
         meta: dict[str, Any] | None = None) -> LedgerEntry:
    return LedgerEntry.from_fill(1, WALLET, Fill(venue="sim", network=NET, asset_key=coin, coin=coin, size=D(size),
                                                 price=D(price), fee=D(fee), contract=contract, cash_network=NET,
                                                 cash_asset=USDC, cash_symbol="USDC", cash_decimals=6, meta=meta),
                                 at=T0)


def allocation(raw: int, *, decimals: int | None = 6, asset: str = USDC) -> LedgerEntry:
    return LedgerEntry.allocation(1, WALLET, at=T0, network=NET, asset_key=asset, amount_raw=raw,
                                  symbol="USDC" if decimals else None, decimals=decimals)


def cash(book: Book) -> Decimal:
    [only] = book.cash.values()
    return only.amount


# -- accounting units ----------------------------------------------------------------------------


@pytest.mark.parametrize("sign", [1, -1], ids=["long", "short"])
def test_increasing_a_position_moves_the_average_entry_by_size(sign):
    """Adding to a position averages the entry price, weighted by size, on either side."""
    book = Book.replay([fill(str(sign * 1), "100"), fill(str(sign * 3), "200")])
    h = book.holdings[(NET, "BTC")]
    assert h.size == sign * 4
    assert h.average_price == (1 * D(100) + 3 * D(200)) / 4
    assert book.realized_pnl == 0 and h.last_price == 200


@pytest.mark.parametrize("sign", [1, -1], ids=["long", "short"])
def test_reducing_realises_pnl_against_the_average_and_keeps_it(sign):
    """A reduce realises (exit - average) x size x direction; the average entry stays."""
    entries = [fill(str(sign * 2), "100"), fill(str(sign * 2), "110"), fill(str(-sign * 1), "130")]
    book = Book.replay(entries)
    h = book.holdings[(NET, "BTC")]
    average = (2 * D(100) + 2 * D(110)) / 4
    assert h.size == sign * 3 and h.average_price == average
    assert book.realized_pnl == h.realized_pnl == (D(130) - average) * 1 * sign


def test_closing_to_flat_resets_the_average_and_drops_the_position():
    """A fully closed instrument has no average and is not an open position any more."""
    book = Book.replay([fill("0.5", "3000", coin="ETH"), fill("-0.5", "2900", coin="ETH")])
    h = book.holdings[(NET, "ETH")]
    assert (h.size, h.average_price) == (0, 0)
    assert book.open_holdings() == [] and Portfolio.from_book(book).positions == ()
    assert book.realized_pnl == (D(2900) - D(3000)) * D("0.5")


@pytest.mark.parametrize("sign", [1, -1], ids=["long-to-short", "short-to-long"])
def test_a_fill_across_zero_closes_the_old_side_and_opens_the_new_one_at_its_price(sign):
    """Flipping realises PnL on the old size only; the remainder opens at the flipping price."""
    book = Book.replay([fill(str(sign * 2), "100"), fill(str(-sign * 5), "120")])
    h = book.holdings[(NET, "BTC")]
    assert h.size == -sign * 3
    assert h.average_price == 120
    assert book.realized_pnl == (D(120) - D(100)) * 2 * sign
    # Growing the new side averages from the flip price.
    grown = Book.replay([fill(str(sign * 2), "100"), fill(str(-sign * 5), "120"), fill(str(-sign * 1), "80")])
    assert grown.holdings[(NET, "BTC")].average_price == (3 * D(120) + 1 * D(80)) / 4


def test_perp_cash_moves_by_realised_pnl_less_fees():
    """On margin only realised PnL and fees move cash; the notional does not."""
    entries = [allocation(1_000_000_000), fill("1", "100", fee="0.05"), fill("-1", "150", fee="0.07")]
    book = Book.replay(entries)
    assert book.fees == D("0.05") + D("0.07")
    assert cash(book) == D(1000) + (D(150) - D(100)) - book.fees
    opened = Book.replay(entries[:2])
    assert cash(opened) == D(1000) - D("0.05")  # opening spends only the fee


def test_spot_and_outcome_shares_move_cash_by_the_traded_value_and_fees():
    """Buying shares spends size x price + fee; selling brings size x price - fee back."""
    meta = {"question": "Will it rain?", "outcome": "Yes"}
    bought = [allocation(100_000_000), fill("10", "0.4", coin="tok-yes", fee="0.01", contract="spot", meta=meta)]
    book = Book.replay(bought)
    assert cash(book) == D(100) - 10 * D("0.4") - D("0.01")
    [position] = Portfolio.from_book(book).positions
    assert (position.coin, D(position.size), position.polymarketMetadata) == ("tok-yes", 10, meta)
    sold = Book.replay([*bought, fill("-10", "0.6", coin="tok-yes", fee="0.02", contract="spot")])
    assert cash(sold) == D(100) - 10 * D("0.4") - D("0.01") + 10 * D("0.6") - D("0.02")
    assert sold.realized_pnl == 10 * (D("0.6") - D("0.4"))
    assert sold.open_holdings() == []


def test_instruments_are_accounted_apart():
    """Fills of one coin never move another coin's position or average."""
    book = Book.replay([fill("1", "100", coin="BTC"), fill("-2", "10", coin="ETH"), fill("1", "200", coin="BTC")])
    assert (book.holdings[(NET, "BTC")].size, book.holdings[(NET, "BTC")].average_price) == (2, 150)
    assert (book.holdings[(NET, "ETH")].size, book.holdings[(NET, "ETH")].average_price) == (-2, 10)


def test_an_allocation_in_an_unknown_asset_is_scaled_once_a_fill_names_its_decimals():
    """Raw units are kept until a venue's fill tells the cash asset's decimals; then they are units."""
    raw = 250_000_000
    before = Book.replay([allocation(raw, decimals=None)])
    assert cash(before) == raw  # raw units: nothing is known yet
    [balance] = Portfolio.from_book(before).balances
    assert (balance.amountRaw, balance.valueUsd, balance.symbol) == (str(raw), None, None)
    after = Book.replay([allocation(raw, decimals=None), fill("1", "100", fee="1")])
    assert cash(after) == D(raw).scaleb(-6) - 1
    [balance] = Portfolio.from_book(after).balances
    assert (balance.decimals, balance.symbol, balance.amountRaw) == (6, "USDC", str(raw - 1_000_000))


def test_the_portfolio_uses_circuits_field_names_and_marks():
    """Balances and positions carry Circuit's fields as strings; marks give the unrealised PnL."""
    book = Book.replay([allocation(500_000_000), fill("-0.5", "3000", coin="ETH", fee="0.5")])
    marked = Portfolio.from_book(book, {(NET, "ETH"): D(2900)})
    assert {f.name for f in attrs.fields(Balance)} >= CIRCUIT_BALANCE
    assert {f.name for f in attrs.fields(Position)} >= CIRCUIT_POSITION
    as_dict = marked.to_dict()
    assert set(as_dict["balances"][0]) >= CIRCUIT_BALANCE and set(as_dict["positions"][0]) >= CIRCUIT_POSITION
    [balance] = marked.balances
    assert (balance.network, balance.assetKey, balance.tokenAddress, balance.assetClass) == (NET, USDC, USDC, "cash")
    assert D(balance.amountRaw) == (D(500) - D("0.5")).scaleb(6) and D(balance.valueUsd) == D(500) - D("0.5")
    [p] = marked.positions
    assert (p.network, p.assetKey, p.coin, p.polymarketMetadata) == (NET, "ETH", "ETH", None)
    assert all(isinstance(v, str) for v in (p.size, p.averageEntryPrice, p.markPriceUsd, p.unrealizedPnlUsd))
    assert (D(p.size), D(p.averageEntryPrice), D(p.markPriceUsd)) == (D("-0.5"), 3000, 2900)
    assert D(p.unrealizedPnlUsd) == (D(2900) - D(3000)) * D("-0.5")
    # Without marks the last fill price stands in.
    assert D(Portfolio.from_book(book).positions[0].markPriceUsd) == 3000


# -- the ledger in a runtime ---------------------------------------------------------------------

SNAPSHOT = """
import json

def show(portfolio):
    return json.dumps({"positions": [[p.coin, p.size, p.averageEntryPrice, p.markPriceUsd, p.unrealizedPnlUsd]
                                     for p in portfolio.positions],
                       "cash": [[b.assetKey, b.amountRaw, b.assetClass] for b in portfolio.balances]})

def run(agent):
    agent.log("before " + show(agent.portfolio))
    s = agent.settings
    r = agent.platforms.sim.place_order({"coin": s["coin"], "side": s["side"], "size": s["size"],
                                         "price": s["limit"], "market": "perp", "type": "market"})
    agent.log(f"placed {r.success} {r.error}")
    agent.log("after " + show(agent.portfolio))
"""
SNAPSHOT_SETTINGS = {
    "coin": {"type": "text", "default": "BTC", "description": "coin"},
    "side": {"type": "text", "default": "buy", "description": "buy or sell"},
    "size": {"type": "number", "default": 0.01, "description": "size"},
    "limit": {"type": "number", "default": 100000, "description": "limit price (crossing the mid)"},
}
MINIMUM = 5_000_000
CASH = sim_venue.CASH  # the sim venue's collateral: its fills move this balance


@pytest.fixture
def funded_agent(agent_folder: Any) -> Any:
    """An agent folder whose sessions need an allocation of the sim venue's collateral."""

    def make(name: str = "probe", minimum: int = MINIMUM) -> str:
        return str(agent_folder(SNAPSHOT, name=name, settings=SNAPSHOT_SETTINGS,
                                startingAsset={"network": NET, "address": CASH, "minimumAmount": str(minimum)}))

    return make


def logged(run: Any, prefix: str) -> Any:
    [line] = [line.message for line in run.logs if line.message.startswith(prefix + " ")]
    return json.loads(line[len(prefix) + 1:])


def test_agent_portfolio_is_the_snapshot_taken_at_run_start(make_runtime, funded_agent, sim):
    """A fill during a run is not in that run's agent.portfolio; the next run sees it."""
    rt = make_runtime(plugins=[sim])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(funded_agent(), wallet, allocation=100_000_000, now=T0)
    [first] = rt.tick(T0)
    assert "placed True None" in [line.message for line in first.logs]
    start = {"positions": [], "cash": [[CASH, "100000000", "cash"]]}
    assert logged(first, "before") == logged(first, "after") == start
    # The runtime sees the fill at once.
    [now_held] = rt.portfolio(s.id).positions
    mid = sim.MIDS["BTC"]
    assert (now_held.coin, D(now_held.size), D(now_held.averageEntryPrice)) == ("BTC", D("0.01"), mid)

    sim.MIDS["BTC"] = mid + 1000
    [second] = rt.tick(T0 + 15 * M)
    seen = logged(second, "before")
    assert seen == logged(second, "after")  # still the snapshot after the second fill
    [[coin, size, entry, mark, unrealized]] = seen["positions"]
    assert (coin, D(size), D(entry), D(mark)) == ("BTC", D("0.01"), mid, mid + 1000)
    assert D(unrealized) == 1000 * D("0.01")
    fee = D("0.01") * mid * sim.FEE_RATE
    assert seen["cash"] == [[CASH, str(100_000_000 - int(fee.scaleb(6))), "cash"]]
    [position] = rt.portfolio(s.id).positions
    assert D(position.size) == D("0.02")
    assert D(position.averageEntryPrice) == (mid + (mid + 1000)) / 2


def test_sessions_sharing_a_wallet_each_see_only_their_own_fills(make_runtime, funded_agent, sim):
    """Two agents on one wallet (one netted account): each fill is booked to the session that made it."""
    rt = make_runtime(plugins=[sim])
    wallet = rt.add_wallet(paper=True)
    longs = rt.start_session(funded_agent("longs"), wallet, allocation=20_000_000, now=T0)
    shorts = rt.start_session(funded_agent("shorts"), wallet, allocation=30_000_000, now=T0,
                              settings={"side": "sell", "size": 0.03, "limit": 1})
    rt.tick(T0)
    rt.tick(T0 + 15 * M)
    mid = sim.MIDS["BTC"]
    for session, size, allocated in ((longs, D("0.02"), 20), (shorts, D("-0.06"), 30)):
        portfolio = rt.portfolio(session.id)
        [position] = portfolio.positions
        assert (position.coin, D(position.size), D(position.averageEntryPrice)) == ("BTC", size, mid)
        [balance] = portfolio.balances
        assert D(balance.valueUsd) == allocated - abs(size) * mid * sim.FEE_RATE
    by_session: dict[int, list[float]] = {}
    for entry in sim.journal():
        by_session.setdefault(entry["session_id"], []).append(entry["params"]["size"])
    assert by_session == {longs.id: [0.01, 0.01], shorts.id: [0.03, 0.03]}


def _rows(rt: Any) -> dict[str, int]:
    with rt.store.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (tables.sessions, tables.transitions, tables.ledger, tables.wallet_funds)}


def test_over_allocation_is_refused_with_the_free_balance_and_writes_nothing(make_runtime, funded_agent):
    """Allocations on one wallet may not exceed its free balance; a stopped session frees its share."""
    funding = 50_000_000
    rt = make_runtime(overrides={"wallets": {"paper_funding": str(funding)}})
    wallet = rt.add_wallet(paper=True)
    first = rt.start_session(funded_agent("first"), wallet, allocation=30_000_000, now=T0)
    before = _rows(rt)
    free = funding - 30_000_000
    with pytest.raises(TickloopError) as refused:
        rt.start_session(funded_agent("second"), wallet, allocation=free + 1, now=T0)
    message = str(refused.value)
    assert f"allocation {free + 1} exceeds the free balance of wallet {wallet}: {free} of {funding}" in message
    assert _rows(rt) == before
    assert [s.id for s in rt.sessions()] == [first.id]
    # Exactly the free balance fits; then nothing is free.
    second = rt.start_session(funded_agent("second"), wallet, allocation=free, now=T0)
    with pytest.raises(TickloopError, match=f"free balance of wallet {wallet}: 0 of {funding}"):
        rt.start_session(funded_agent("third"), wallet, now=T0)
    rt.stop(first.id, now=T0 + M)
    third = rt.start_session(funded_agent("third"), wallet, allocation=30_000_000, now=T0 + M)
    assert {s.id for s in rt.sessions(states=["running"])} == {second.id, third.id}


def test_the_same_agent_twice_on_one_wallet_is_refused_even_with_funds(make_runtime, funded_agent):
    """One wallet, one session per agent, whatever the balance; another agent may share it."""
    rt = make_runtime()
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(funded_agent("alpha"), wallet, now=T0)
    before = _rows(rt)
    with pytest.raises(TickloopError, match=f"agent 'alpha' already has session {s.id} \\(running\\) on wallet"):
        rt.start_session(funded_agent("alpha"), wallet.lower(), now=T0)
    assert _rows(rt) == before
    rt.start_session(funded_agent("beta"), wallet, now=T0)
    rt.pause(s.id, now=T0 + M)
    with pytest.raises(TickloopError, match="\\(paused\\)"):
        rt.start_session(funded_agent("alpha"), wallet, now=T0 + M)


def test_a_wallet_must_be_added_when_the_session_needs_a_balance(make_runtime, funded_agent, agent_folder):
    """An unknown wallet is refused for an agent with a starting asset, with what to do; an agent
    without one may start on any well-formed address."""
    rt = make_runtime()
    unknown = "0x" + "12" * 20
    with pytest.raises(TickloopError) as refused:
        rt.start_session(funded_agent(), unknown, now=T0)
    message = str(refused.value)
    assert f"wallet {unknown} has not been added" in message and "tickloop wallets add" in message
    assert f"{CASH} on {NET}" in message
    assert rt.sessions() == []
    free = rt.start_session(str(agent_folder("def run(agent):\n    pass\n", name="free")), unknown, now=T0)
    assert free.state == "running" and free.allocation is None


def test_a_paper_wallet_is_funded_once_on_first_use(make_runtime, funded_agent):
    """The first session needing a balance funds a paper wallet with [wallets] paper_funding, once."""
    funding = 12_000_000
    rt = make_runtime(overrides={"wallets": {"paper_funding": str(funding)}})
    wallet = rt.add_wallet(paper=True)
    assert rt.store.wallet_funds(wallet) == {}
    rt.start_session(funded_agent("one"), wallet, allocation=funding // 2, now=T0)
    assert rt.store.wallet_funds(wallet) == {(NET, CASH): funding}
    rt.start_session(funded_agent("two"), wallet, allocation=funding // 2, now=T0)
    assert rt.store.wallet_funds(wallet) == {(NET, CASH): funding}
    with pytest.raises(TickloopError, match=f"free balance of wallet {wallet}: 0 of {funding}"):
        rt.start_session(funded_agent("three"), wallet, now=T0)
    # Funding it explicitly makes room.
    assert rt.fund_wallet(wallet, NET, CASH, MINIMUM) == funding + MINIMUM
    rt.start_session(funded_agent("three"), wallet, now=T0)


def test_allocation_must_reach_the_minimum_and_defaults_to_it(make_runtime, funded_agent, agent_folder):
    """Below startingAsset.minimumAmount is refused; no allocation means the minimum; an agent
    without a starting asset cannot be given one."""
    rt = make_runtime()
    wallet = rt.add_wallet(paper=True)
    with pytest.raises(TickloopError, match=f"allocation {MINIMUM - 1} is below the agent's startingAsset"
                                            f".minimumAmount {MINIMUM}"):
        rt.start_session(funded_agent(), wallet, allocation=MINIMUM - 1, now=T0)
    assert rt.sessions() == []
    s = rt.start_session(funded_agent(), wallet, now=T0)
    assert int(s.allocation) == MINIMUM
    [balance] = rt.portfolio(s.id).balances
    assert (balance.assetKey, int(balance.amountRaw)) == (CASH, MINIMUM)
    with pytest.raises(TickloopError, match="declares no \\[startingAsset\\]"):
        rt.start_session(str(agent_folder("def run(agent):\n    pass\n", name="bare")), wallet, allocation=1, now=T0)
