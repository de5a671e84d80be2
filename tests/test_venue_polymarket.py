"""The Polymarket venue and closer through tickloop's Runtime, against the paper exchange.

The venue runs the real client (py-clob-client-v2) and Data API calls; with no [venues.polymarket]
configured it trades on the paper exchange running in-process for the home, whose request log
tells what reached the exchange (``POST /order``) and when.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import tickloop_polymarket
from tickloop.errors import ConfigError, TickloopError
from tickloop.testing import T0
from tickloop_paper import local_exchanges, start_exchanges
from tickloop_paper.polymarket import SEED_MARKETS, condition_id, token_id
from tickloop_paper.server import Fault

D = Decimal
M = timedelta(minutes=1)
LISBON, BTC, FED, ARSENAL = (condition_id(m[0]) for m in SEED_MARKETS)
LISBON_YES, BTC_YES, FED_YES, ARSENAL_YES = (token_id(c, 0) for c in (LISBON, BTC, FED, ARSENAL))
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
AGENTS = Path(__file__).resolve().parents[1] / "agents"

# Run n sends the requests of the n-th list of its "calls" setting ({"method": ..., ...rest is the
# request}; nothing once the lists run out), logs every answer on a "result ..." line, then logs
# positions() on a "positions ..." line.
TRADER = """
import json

def run(agent):
    n = int(agent.memory.get("n").data.value or 0)
    agent.memory.set("n", str(n + 1))
    plan = json.loads(agent.settings["calls"])
    pm = agent.platforms.polymarket
    for call in (plan[n] if n < len(plan) else []):
        call = dict(call)
        method = getattr(pm, call.pop("method", "market_order"))
        result = method(call) if call else method()
        agent.log("result " + json.dumps(result.to_dict(), default=plain))
    agent.log("positions " + json.dumps(pm.positions().to_dict(), default=plain))

def plain(value):
    return value.to_dict() if hasattr(value, "to_dict") else str(value)  # list items stay Data
"""
SETTINGS = {"calls": {"type": "text", "default": "[]", "description": "polymarket calls made by every run"}}
STARTING = {"network": "ethereum:137", "address": PUSD, "minimumAmount": "50000000"}


def buy(token: str, usd: float) -> dict[str, Any]:
    return {"tokenId": token, "size": usd, "side": "BUY"}


def sell(token: str, shares: float) -> dict[str, Any]:
    return {"tokenId": token, "size": shares, "side": "SELL"}


def calls(*items: dict[str, Any]) -> dict[str, str]:
    """Settings: the first run makes these calls."""
    return plan(list(items))


def plan(*runs: list[dict[str, Any]]) -> dict[str, str]:
    """Settings: run n makes the calls of the n-th list."""
    return {"calls": json.dumps([list(r) for r in runs])}


def lines(run: Any, prefix: str) -> list[Any]:
    return [json.loads(line.message[len(prefix) + 1:]) for line in run.logs if line.message.startswith(prefix + " ")]


def held(rt: Any, session_id: int) -> dict[str, D]:
    return {p.assetKey: D(p.size) for p in rt.portfolio(session_id).positions}


@pytest.fixture
def trader(agent_folder: Any) -> str:
    return str(agent_folder(TRADER, settings=SETTINGS, startingAsset=STARTING))


@pytest.fixture
def paper(tickloop_home: Path) -> Iterator[Any]:
    """The paper exchanges the venue starts for the test's home (stopped afterwards)."""
    exchanges = local_exchanges(tickloop_home)
    yield exchanges
    stop(exchanges)


def stop(exchanges: Any) -> None:
    """Stop the servers in the background: each stop waits up to the server loop's poll interval
    (0.5 s), which the next test need not wait for."""
    for server in (exchanges.hyperliquid, exchanges.polymarket_clob, exchanges.polymarket_data):
        threading.Thread(target=server.stop, daemon=True).start()


def orders_sent(paper: Any) -> list[dict[str, Any]]:
    return [r.body for r in paper.polymarket_clob.requests("/order", "POST")]


def test_an_auto_market_buy_lands_in_the_ledger_and_portfolio(make_runtime, trader, paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader, wallet, settings=calls(buy(LISBON_YES, 10)), now=T0)
    [run] = rt.tick(T0)
    assert run.status == "succeeded", run.error
    [result] = lines(run, "result")
    assert result["success"] and result["data"]["success"] is True
    info = result["data"]["orderInfo"]
    assert (info["side"], info["size"], info["priceUsd"], info["totalPriceUsd"]) == ("BUY", "24.39", "0.41", "9.9999")
    assert info["orderId"].startswith("0x") and len(info["txHashes"]) == 1
    [sent] = orders_sent(paper)
    assert (sent["orderType"], sent["order"]["side"], sent["order"]["maker"], sent["order"]["signatureType"]) == (
        "FOK", "BUY", wallet, 0)

    portfolio = rt.portfolio(s.id)
    [position] = portfolio.positions
    assert (position.network, position.assetKey, position.coin, position.size, position.averageEntryPrice,
            position.markPriceUsd, position.venue) == ("ethereum:137", LISBON_YES, "Yes", "24.39", "0.41", "0.4",
                                                       "polymarket")
    meta = position.polymarketMetadata
    assert (meta["conditionId"], meta["question"], meta["outcome"], meta["isNegativeRisk"], meta["tokenId"]) == (
        LISBON, SEED_MARKETS[0][1], "Yes", False, LISBON_YES)
    assert meta["endDate"].startswith("2026-03-01") and meta["decimals"] == 6
    [cash] = portfolio.balances
    assert (cash.network, cash.assetKey.lower(), cash.symbol, cash.amountRaw) == (
        "ethereum:137", PUSD.lower(), "pUSD", str(50_000_000 - 9_999_900))

    # The agent's positions(): the session's holdings as PolymarketPosition.
    [positions] = lines(run, "positions")
    assert positions["success"] and positions["data"]["totalValue"] == pytest.approx(24.39 * 0.4)
    [p] = positions["data"]["positions"]
    assert (p["tokenId"], p["shares"], p["formattedShares"], p["priceUsd"], p["averagePriceUsd"], p["outcome"]) == (
        LISBON_YES, "24390000", "24.39", "0.4", "0.41", "Yes")
    assert (p["isRedeemable"], p["isNegativeRisk"], p["decimals"], p["conditionId"]) == (False, False, 6, LISBON)
    assert all(isinstance(p[k], str) for k in ("valueUsd", "pnlUsd", "initialValue", "pnlPercent", "endDate"))
    # Marks follow the venue's book.
    httpx.post(f"{paper.polymarket_clob.url}/paper/book", json={"token_id": LISBON_YES, "mid": "0.5"})
    [moved] = rt.portfolio(s.id).positions
    assert (moved.markPriceUsd, moved.unrealizedPnlUsd) == ("0.5", "2.1951")


def test_manual_mode_sends_no_order_until_approval(make_runtime, trader, paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    expiry = (T0 + 30 * M).isoformat().replace("+00:00", "Z")
    s = rt.start_session(trader, wallet, mode="manual", settings=calls({**buy(ARSENAL_YES, 5), "expiresAt": expiry}),
                         now=T0)
    [run] = rt.tick(T0)
    [result] = lines(run, "result")
    assert result["success"] and result["data"]["suggested"] is True
    details = result["data"]["details"]
    assert (details["venue"], details["method"], details["tokenId"], details["size"], details["side"]) == (
        "polymarket", "market_order", ARSENAL_YES, 5.0, "BUY")
    assert orders_sent(paper) == []
    [pending] = rt.suggestions(session_id=s.id, status="pending")
    assert pending.action.notional_usd == D(5) and "Arsenal" in pending.action.message
    assert pending.expires_at == T0 + 30 * M and details["expiresAt"] == (T0 + 30 * M).isoformat()
    assert held(rt, s.id) == {}

    done = rt.approve(pending.id, now=T0 + M)
    assert done.status == "executed", done.error
    assert done.result["orderInfo"]["size"] == "26.31"  # $5 at 0.19
    [sent] = orders_sent(paper)
    assert (sent["orderType"], sent["order"]["side"]) == ("FOK", "BUY")
    assert held(rt, s.id) == {ARSENAL_YES: D("26.31")}
    assert rt.portfolio(s.id).positions[0].polymarketMetadata["isNegativeRisk"] is True


def test_a_session_sells_only_what_it_holds_and_bad_requests_fail_without_raising(make_runtime, trader, paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader, wallet, settings=calls(
        buy(LISBON_YES, 10), sell(LISBON_YES, 10), sell(LISBON_YES, 9.29), sell(LISBON_YES, 100), sell(FED_YES, 5),
        {"tokenId": LISBON_YES, "size": 10, "side": "HOLD"}, {"tokenId": "0xabc", "size": 1, "side": "BUY"},
        {"tokenId": "12345", "size": 10, "side": "BUY"}, {"token_id": LISBON_YES, "size": 0.5, "side": "BUY"},
        {"method": "redeem_positions", "tokenIds": []}), now=T0)
    [run] = rt.tick(T0)
    results = lines(run, "result")
    assert [r["success"] for r in results] == [True, True, True, False, False, False, False, False, False, False]
    assert results[1]["data"]["orderInfo"]["totalPriceUsd"] == "3.9"  # 10 shares at the 0.39 bid
    # 9.29 shares sell as 9.29 (the client's float floor alone would make it 9.28).
    assert results[2]["data"]["orderInfo"]["size"] == "9.29"
    assert "holds 5.1 shares of 'Yes'" in results[3]["error"] and "cannot sell 100" in results[3]["error"]
    assert "holds 0 shares" in results[4]["error"]
    assert "side must be 'BUY' or 'SELL'" in results[5]["error"]
    assert "tokenId must be an outcome token id" in results[6]["error"]
    assert "unknown Polymarket token id 12345" in results[7]["error"]
    assert "Size (1.2195) lower than the minimum: 5" in results[8]["error"]  # refused by the exchange
    assert "tokenIds must be a non-empty list" in results[9]["error"]
    assert [o["order"]["makerAmount"] for o in orders_sent(paper)] == ["10000000", "10000000", "9290000", "500000"]
    assert held(rt, s.id) == {LISBON_YES: D("5.1")}


def test_a_paper_wallet_is_refused_on_a_real_venue(make_runtime, trader):
    exchanges = start_exchanges(None)  # standing in for a real exchange: configured, not marked paper
    try:
        venue = {"clob_url": exchanges.polymarket_clob.url, "data_url": exchanges.polymarket_data.url}
        rt = make_runtime(plugins=[tickloop_polymarket], overrides={"venues": {"polymarket": venue}})
        wallet = rt.add_wallet(paper=True)
        rt.start_session(trader, wallet, settings=calls(buy(LISBON_YES, 10)), now=T0)
        [run] = rt.tick(T0)
        [result] = lines(run, "result")
        assert not result["success"]
        assert f"wallet {wallet} is a paper wallet and [venues.polymarket] points at a real exchange" in result["error"]
        assert exchanges.polymarket_clob.requests("/order", "POST") == []
        # Marked as paper (e.g. `tickloop paper serve`), the same URLs take paper wallets.
        marked = make_runtime(plugins=[tickloop_polymarket], home=rt.config.home.parent / "marked",
                              overrides={"venues": {"polymarket": {**venue, "paper": True}}})
        other = marked.add_wallet(paper=True)
        marked.start_session(trader, other, settings=calls(buy(LISBON_YES, 10)), now=T0)
        [run] = marked.tick(T0)
        assert lines(run, "result")[0]["success"]
        assert len(exchanges.polymarket_clob.requests("/order", "POST")) == 1
    finally:
        stop(exchanges)


def test_venue_configuration_is_checked(tmp_path):
    from tickloop.config import Config
    from tickloop_polymarket.venue import factory

    with pytest.raises(ConfigError, match=r"venues.polymarket.data_url: set clob_url and data_url together"):
        factory(Config.load(home=tmp_path, overrides={"venues": {"polymarket": {"clob_url": "http://127.0.0.1:1"}}}))



def test_venue_tables_are_checked_when_the_runtime_starts(tmp_path):
    """[venues.*] must name installed venues and only the keys each declares, at start (exit 1
    from the CLI), not at an agent's first call."""
    from tickloop.runtime import Runtime

    cases = [({"polymarket": {"base_url": "x"}}, r"venues.polymarket.base_url: unknown key \(known: clob_url"),
             ({"hyperliquid": {"timeout": 3}}, r"venues.hyperliquid.timeout: unknown key \(known: base_url"),
             ({"binance": {"api_url": "x"}}, r"venues.binance: no installed venue is called 'binance'"
                                              r" \(installed: hyperliquid, polymarket\)")]
    for tables, message in cases:
        with pytest.raises(ConfigError, match=message):
            Runtime.from_config(home=tmp_path, overrides={"venues": tables})
    Runtime.from_config(home=tmp_path, overrides={"venues": {"hyperliquid": {"timeout_seconds": 3}}}).close()


def test_unwind_sells_with_fak_retries_partial_fills_and_reports_dust_and_resolved_markets(make_runtime, trader,
                                                                                           paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader, wallet, settings=calls(
        buy(LISBON_YES, 10), buy(BTC_YES, 10), buy(FED_YES, 5), sell(FED_YES, 5)), now=T0)
    [run] = rt.tick(T0)
    assert all(r["success"] for r in lines(run, "result"))
    assert held(rt, s.id) == {LISBON_YES: D("24.39"), BTC_YES: D("38.46"), FED_YES: D("2.93")}
    clob = paper.polymarket_clob.url
    httpx.post(f"{clob}/paper/resolve", json={"condition_id": BTC, "winner": "No"}).raise_for_status()
    paper.polymarket_clob.faults.add(Fault("partial_fill", path="/order", params={"fraction": 0.5}))
    before = len(orders_sent(paper))

    done = rt.unwind(s.id, now=T0 + M)
    assert done.state == "stopped"
    unwind = rt.runs(s.id)[-1]
    assert (unwind.kind, unwind.status) == ("unwind", "failed")  # positions were left open
    closing = orders_sent(paper)[before:]
    assert [(o["orderType"], o["order"]["side"], o["order"]["makerAmount"]) for o in closing] == [
        ("FAK", "SELL", "24390000"), ("FAK", "SELL", "12200000")]  # half filled, then the rest
    assert held(rt, s.id) == {BTC_YES: D("38.46"), FED_YES: D("2.93")}
    assert unwind.error.startswith("left open: ")
    assert "polymarket Yes size 2.93 left open: dust below the minimum order size 5" in unwind.error
    assert "polymarket Yes size 38.46 left open: market resolved: redeem with redeem_positions" in unwind.error
    messages = [line.message for line in unwind.logs]
    assert any(m.startswith("polymarket: sold part of 'Yes' on 'Will it rain in Lisbon") for m in messages)
    assert any(m.startswith("polymarket: sold 24.39 shares of 'Yes' on") and m.endswith("flat") for m in messages)
    errors = [line.message for line in unwind.logs if line.level == "error"]
    assert len(errors) == 2 and all("left open" in e for e in errors)


def test_a_manual_unwind_suggests_fak_sells_and_stops_once_they_are_approved(make_runtime, trader, paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader, wallet, mode="manual", settings=calls(buy(LISBON_YES, 10), buy(FED_YES, 10)),
                         now=T0)
    rt.tick(T0)
    for pending in rt.suggestions(session_id=s.id, status="pending"):
        assert rt.approve(pending.id, now=T0 + M).status == "executed"
    assert held(rt, s.id) == {LISBON_YES: D("24.39"), FED_YES: D("15.87")}
    before = len(orders_sent(paper))

    session = rt.unwind(s.id, now=T0 + 2 * M)
    assert session.state == "unwinding"
    pending = sorted(rt.suggestions(session_id=s.id, status="pending"), key=lambda x: x.action.params["tokenId"])
    assert sorted((p.action.params["tokenId"], p.action.params["side"], p.action.params["orderType"],
                   p.action.params["size"]) for p in pending) == sorted(
        [(LISBON_YES, "SELL", "FAK", 24.39), (FED_YES, "SELL", "FAK", 15.87)])
    assert len(orders_sent(paper)) == before  # nothing sent before approval
    for p in pending:
        assert rt.approve(p.id, now=T0 + 3 * M).status == "executed"
    assert len(orders_sent(paper)) == before + 2
    assert rt.session(s.id).state == "stopped" and held(rt, s.id) == {}


def test_redeem_positions_pays_winners_on_paper(make_runtime, trader, paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader, wallet, settings=plan(
        [buy(BTC_YES, 10), buy(LISBON_YES, 10)],
        [{"method": "positions"}, {"method": "redeem_positions", "tokenIds": [BTC_YES, LISBON_YES]}]), now=T0)
    rt.tick(T0)
    assert held(rt, s.id) == {BTC_YES: D("38.46"), LISBON_YES: D("24.39")}
    httpx.post(f"{paper.polymarket_clob.url}/paper/resolve", json={"condition_id": BTC, "winner": "Yes"})
    [run] = rt.tick(T0 + 15 * M)
    positions, redeemed = lines(run, "result")
    by_token = {p["tokenId"]: p for p in positions["data"]["positions"]}
    assert (by_token[BTC_YES]["isRedeemable"], by_token[BTC_YES]["priceUsd"]) == (True, "1")
    assert by_token[LISBON_YES]["isRedeemable"] is False
    won, skipped = redeemed["data"]
    assert won["success"] and won["transactionHash"].startswith("0x")
    assert (won["position"]["tokenId"], won["position"]["formattedShares"]) == (BTC_YES, "38.46")
    assert (skipped["success"], skipped["tokenId"], skipped["error"]) == (
        False, LISBON_YES, "the market is not resolved")
    assert held(rt, s.id) == {LISBON_YES: D("24.39")}
    cash = next(b for b in rt.portfolio(s.id).balances if b.symbol == "pUSD")
    # 50 allocated, 9.9996 + 9.9999 spent, 38.46 redeemed at $1.
    assert cash.amountRaw == str(50_000_000 - 9_999_600 - 9_999_900 + 38_460_000)


def test_the_pm_basket_example_agent_buys_cheap_outcomes_and_unwinds_flat(make_runtime, paper):
    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    agent = str(AGENTS / "pm-basket")
    s = rt.start_session(agent, wallet, settings={"max_price": 0.5, "amount_usd": 10, "basket_size": 2}, now=T0)
    [run] = rt.tick(T0)
    assert run.status == "succeeded", run.error
    # The two cheapest Yes outcomes under 0.5: Arsenal (0.18) and Bitcoin (0.25).
    assert set(held(rt, s.id)) == {ARSENAL_YES, BTC_YES}
    [again] = rt.tick(T0 + 60 * M)
    assert any("basket is full" in line.message for line in again.logs)
    assert len(orders_sent(paper)) == 2
    rt.unwind(s.id, now=T0 + 61 * M)
    unwind = rt.runs(s.id)[-1]
    assert (unwind.status, unwind.error) == ("succeeded", None)
    assert rt.session(s.id).state == "stopped" and held(rt, s.id) == {}


def test_the_closer_cancels_the_sessions_resting_orders_before_selling(make_runtime, trader, paper):
    from py_clob_client_v2.clob_types import OrderArgsV2

    rt = make_runtime(plugins=[tickloop_polymarket])
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(trader, wallet, settings=calls(buy(LISBON_YES, 10)), now=T0)
    rt.tick(T0)
    # A resting sell of the session (placed with the venue's client: the agent API has no limit
    # orders) reserves 20 of its 24.39 shares, so selling them all fails until it is cancelled.
    venue = rt.gateway.venues.get("polymarket")
    client = venue.api.client(rt.wallet(wallet))
    resting = client.create_and_post_order(OrderArgsV2(token_id=LISBON_YES, price=0.9, size=20, side="SELL"))
    assert resting["status"] == "live"
    rt.store.record_ledger([], orders=[("polymarket", resting["orderID"], s.id)])

    rt.unwind(s.id, now=T0 + M)
    assert rt.session(s.id).state == "stopped" and held(rt, s.id) == {}
    log = [(r.method, r.path, r.body) for r in paper.polymarket_clob.requests() if r.method in ("POST", "DELETE")
           and r.path in ("/order", "/orders")]
    cancel = log.index(("DELETE", "/orders", [resting["orderID"]]))
    assert [body["orderType"] for method, path, body in log[cancel + 1:]] == ["FAK"]
    assert client.get_open_orders() == []
    # The exchange's pUSD: the paper funding, less the buy, plus the sale at the 0.39 bid.
    assert venue.balance(wallet, "ethereum:137", PUSD) == 10_000_000_000 - 9_999_900 + 9_512_100


def test_a_real_wallet_trades_on_a_configured_venue_and_redeeming_needs_an_rpc(make_runtime, agent_folder,
                                                                             monkeypatch):
    from eth_account import Account

    exchanges = start_exchanges(None)  # standing in for the real CLOB and Data API
    try:
        key = Account.create()
        monkeypatch.setenv("PM_TEST_KEY", "0x" + bytes(key.key).hex())
        venue_urls = {"clob_url": exchanges.polymarket_clob.url, "data_url": exchanges.polymarket_data.url}
        rt = make_runtime(plugins=[tickloop_polymarket], overrides={"venues": {"polymarket": venue_urls}})
        wallet = rt.add_wallet(key_env="PM_TEST_KEY")
        httpx.post(f"{venue_urls['clob_url']}/paper/fund", json={"address": wallet, "pusd": 100}).raise_for_status()
        agent = str(agent_folder(TRADER, settings=SETTINGS))  # no starting asset: no balance needed
        s = rt.start_session(agent, wallet, settings=plan(
            [buy(FED_YES, 10)], [{"method": "redeem_positions", "tokenIds": [FED_YES]}]), now=T0)
        [first] = rt.tick(T0)
        assert lines(first, "result")[0]["data"]["orderInfo"]["size"] == "15.87"
        httpx.post(f"{venue_urls['clob_url']}/paper/resolve", json={"condition_id": FED, "winner": "Yes"})
        [second] = rt.tick(T0 + 15 * M)
        [redeem] = lines(second, "result")
        assert not redeem["success"]
        assert "redeeming on-chain needs an RPC endpoint, which tickloop does not support yet" in redeem["error"]
        assert held(rt, s.id) == {FED_YES: D("15.87")}
        # A real venue reads the balance with an L2 request signed by the wallet's key (a bare
        # address cannot sign), so a real wallet can start an agent that needs an allocation.
        venue = rt.gateway.venues.get("polymarket")
        assert venue.balance(wallet, "ethereum:137", PUSD) is None
        spent = venue.balance(rt.wallet(wallet), "ethereum:137", PUSD)
        exchange_view = httpx.get(f"{venue_urls['clob_url']}/paper/balance", params={"address": wallet}).json()
        assert spent == int(exchange_view["pusd"]) and 89_000_000 < spent < 91_000_000  # 100 less the ~$10 buy
        funded = str(agent_folder(TRADER, name="funded", settings=SETTINGS, startingAsset={
            "network": "ethereum:137", "address": PUSD, "minimumAmount": "5000000"}))
        with pytest.raises(TickloopError, match="exceeds the free balance"):
            rt.start_session(funded, wallet, allocation=spent + 1, now=T0)
        assert rt.start_session(funded, wallet, allocation=spent, now=T0).allocation == str(spent)
    finally:
        stop(exchanges)
