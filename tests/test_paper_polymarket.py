"""The paper Polymarket exchange, driven by the unmodified official client (py-clob-client-v2).

Every test talks HTTP to loopback servers: the CLOB app on one, the Data API app on another,
exactly as tickloop's venue does. Signatures are real (EIP-712 L1 auth and V2 orders, HMAC L2).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.clob_types import (
    ApiCreds,
    CreateOrderOptions,
    MarketOrderArgsV2,
    OpenOrderParams,
    OrderArgsV2,
    OrderMarketCancelParams,
    OrderPayload,
    OrderType,
    PartialCreateOrderOptions,
)
from py_clob_client_v2.exceptions import PolyApiException, PolyException

from tickloop_paper import start_exchanges
from tickloop_paper.polymarket import SEED_MARKETS, PolymarketPaper, condition_id, token_id
from tickloop_paper.server import Fault, PaperServer
from tickloop_paper.state import ExchangeState

D = Decimal
LISBON = condition_id(SEED_MARKETS[0][0])
LISBON_YES, LISBON_NO = token_id(LISBON, 0), token_id(LISBON, 1)
ARSENAL = condition_id(SEED_MARKETS[3][0])  # the neg-risk market
ARSENAL_YES = token_id(ARSENAL, 0)


@dataclasses.dataclass
class Exchange:
    clob: PaperServer
    data: PaperServer

    def fund(self, address: str, pusd: float) -> None:
        httpx.post(f"{self.clob.url}/paper/fund", json={"address": address, "pusd": pusd}).raise_for_status()

    def client(self, account: Any = None, *, creds: ApiCreds | None = None) -> ClobClient:
        account = account or Account.create()
        client = ClobClient(self.clob.url, chain_id=137, key="0x" + bytes(account.key).hex(), signature_type=0)
        client.set_api_creds(creds or client.create_or_derive_api_key())
        return client

    def positions(self, address: str, **params: Any) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.data.url}/positions", params={"user": address, **params})
        response.raise_for_status()
        return response.json()

    def balance(self, address: str) -> dict[str, Any]:
        return httpx.get(f"{self.clob.url}/paper/balance", params={"address": address}).json()

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.clob.url}{path}", json=body)


@pytest.fixture
def ex() -> Iterator[Exchange]:
    clob = PaperServer(lambda r: pm.clob(r), name="test-pm-clob")
    data = PaperServer(lambda r: pm.data(r), name="test-pm-data")
    pm = PolymarketPaper(ExchangeState(None, PolymarketPaper.initial_state), clob.faults)
    clob.start(), data.start()
    yield Exchange(clob, data)
    stop(clob, data)


def stop(*servers: PaperServer) -> None:
    """Stop servers in the background: each stop waits up to the server loop's poll interval
    (0.5 s), which the next test need not wait for."""
    for server in servers:
        threading.Thread(target=server.stop, daemon=True).start()


def refused(call: Any) -> tuple[int | None, str]:
    """(status, error message) of a call the exchange refuses."""
    with pytest.raises(PolyApiException) as info:
        call()
    message = info.value.error_msg
    return info.value.status_code, message.get("error") if isinstance(message, dict) else message


def market_buy(client: ClobClient, token: str, usd: float, order_type: str = OrderType.FOK,
               **kw: Any) -> dict[str, Any]:
    return client.create_and_post_market_order(MarketOrderArgsV2(token_id=token, amount=usd, side="BUY", **kw),
                                               order_type=order_type)


def market_sell(client: ClobClient, token: str, shares: float, order_type: str = OrderType.FAK,
                **kw: Any) -> dict[str, Any]:
    return client.create_and_post_market_order(MarketOrderArgsV2(token_id=token, amount=shares, side="SELL", **kw),
                                               order_type=order_type)


# -- auth ----------------------------------------------------------------------------------------


def test_api_keys_are_created_once_then_derived_and_l1_signatures_are_checked(ex):
    account = Account.create()
    client = ClobClient(ex.clob.url, chain_id=137, key="0x" + bytes(account.key).hex())
    created = client.create_or_derive_api_key()
    assert created.api_key and created.api_secret and created.api_passphrase
    assert client.create_or_derive_api_key() == created  # create refused (exists), derive answers
    assert client.derive_api_key() == created
    assert refused(client.create_api_key) == (400, "Could not create api key")
    other = ClobClient(ex.clob.url, chain_id=137, key="0x" + bytes(Account.create().key).hex())
    assert refused(other.derive_api_key) == (400, "Could not derive api key!")
    # L1 headers signed by another key than POLY_ADDRESS, or for another chain, are refused.
    from py_clob_client_v2.headers.headers import create_level_1_headers
    from py_clob_client_v2.signer import Signer

    headers = create_level_1_headers(Signer("0x" + bytes(Account.create().key).hex(), 137))
    headers["POLY_ADDRESS"] = account.address
    response = httpx.get(f"{ex.clob.url}/auth/derive-api-key", headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": "Invalid L1 Request headers"})
    amoy = ClobClient(ex.clob.url, chain_id=80002, key="0x" + bytes(account.key).hex())
    assert refused(amoy.derive_api_key) == (401, "Invalid L1 Request headers")


def test_l2_requests_with_a_bad_hmac_or_someone_elses_key_are_unauthorized(ex):
    account = Account.create()
    client = ex.client(account)
    assert client.get_open_orders() == []
    good = client.creds
    forged = ApiCreds(good.api_key, "c2VjcmV0LW5vdC1taW5lLWF0LWFsbC0zMi1ieXRlcyE=", good.api_passphrase)
    assert refused(ex.client(account, creds=forged).get_open_orders) == (401, "Unauthorized/Invalid api key")
    wrong_passphrase = ApiCreds(good.api_key, good.api_secret, "0" * 64)
    assert refused(ex.client(account, creds=wrong_passphrase).get_open_orders)[0] == 401
    # A key used from another address: the key belongs to `account`, the headers say otherwise.
    assert refused(ex.client(Account.create(), creds=good).get_open_orders) == (401, "Unauthorized/Invalid api key")
    assert refused(ex.client(account, creds=forged).cancel_all)[0] == 401


# -- market data ---------------------------------------------------------------------------------


def test_books_list_the_best_price_last_with_market_parameters(ex):
    client = ClobClient(ex.clob.url, chain_id=137)
    book = client.get_order_book(LISBON_YES)
    bids, asks = [D(b["price"]) for b in book["bids"]], [D(a["price"]) for a in book["asks"]]
    assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
    assert (bids[-1], asks[-1]) == (D("0.39"), D("0.41"))
    assert (book["market"], book["asset_id"], book["min_order_size"], book["tick_size"], book["neg_risk"]) == (
        LISBON, LISBON_YES, "5", "0.01", False)
    assert client.get_order_book_hash(dict(book)) == book["hash"]  # the client's own hash matches
    assert client.get_midpoint(LISBON_YES) == {"mid": "0.4"}
    assert client.get_midpoint(LISBON_NO) == {"mid": "0.6"}
    assert client.get_price(LISBON_YES, "BUY") == {"price": "0.41"}
    assert client.get_tick_size(LISBON_YES) == "0.01"
    assert client.get_neg_risk(ARSENAL_YES) is True and client.get_neg_risk(LISBON_YES) is False
    assert client.get_clob_market_info(ARSENAL)["nr"] is True
    markets = client.get_markets()
    assert markets["next_cursor"] == "LTE=" and len(markets["data"]) == len(SEED_MARKETS)
    assert [t["outcome"] for t in client.get_market(LISBON)["tokens"]] == ["Yes", "No"]
    assert refused(lambda: client.get_order_book("123")) == (404, "No orderbook exists for the requested token id")
    assert refused(lambda: client.get_order_book("not-a-token")) == (400, "Invalid token id")


# -- orders --------------------------------------------------------------------------------------


def test_a_fok_market_buy_fills_at_the_book_and_shows_in_the_data_api(ex):
    account = Account.create()
    ex.fund(account.address, 100)
    client = ex.client(account)
    answer = market_buy(client, LISBON_YES, 10)
    assert (answer["success"], answer["status"], answer["errorMsg"]) == (True, "matched", "")
    assert (answer["makingAmount"], answer["takingAmount"]) == ("9.9999", "24.39")  # 0.01-share lots at 0.41
    assert answer["transactionsHashes"] and answer["tradeIDs"] and answer["orderID"].startswith("0x")
    assert ex.balance(account.address)["pusd"] == str(100_000_000 - 9_999_900)
    [row] = ex.positions(account.address)
    assert row["asset"] == LISBON_YES and row["conditionId"] == LISBON and row["proxyWallet"] == account.address.lower()
    assert (row["size"], row["avgPrice"], row["curPrice"], row["totalBought"]) == (24.39, 0.41, 0.4, 24.39)
    assert (row["outcome"], row["outcomeIndex"], row["oppositeOutcome"], row["oppositeAsset"]) == (
        "Yes", 0, "No", LISBON_NO)
    assert (row["redeemable"], row["mergeable"], row["negativeRisk"]) == (False, False, False)
    assert row["title"] == SEED_MARKETS[0][1] and row["endDate"] == "2026-03-01"
    assert set(row) >= {"initialValue", "currentValue", "cashPnl", "percentPnl", "realizedPnl", "slug", "eventSlug"}
    [trade] = client.get_trades()
    assert (trade["side"], trade["size"], trade["price"], trade["asset_id"]) == ("BUY", "24.39", "0.41", LISBON_YES)
    # The fill consumed the best ask level (100 shares at 0.41).
    assert client.get_order_book(LISBON_YES)["asks"][-1] == {"price": "0.41", "size": "75.61"}


def test_neg_risk_orders_are_signed_for_the_neg_risk_exchange_and_checked_against_it(ex):
    account = Account.create()
    ex.fund(account.address, 100)
    client = ex.client(account)
    assert market_buy(client, ARSENAL_YES, 5)["status"] == "matched"
    # The same order signed for the standard exchange does not recover to the signer.
    order = client.create_market_order(MarketOrderArgsV2(token_id=ARSENAL_YES, amount=5, side="BUY"),
                                       PartialCreateOrderOptions(neg_risk=False))
    assert refused(lambda: client.post_order(order, OrderType.FOK)) == (400, "invalid signature")


def test_fok_is_all_or_nothing_and_fak_fills_what_it_can(ex):
    account = Account.create()
    ex.fund(account.address, 1000)
    client = ex.client(account)
    thin = ex.post("/paper/book", {"token_id": LISBON_YES, "asks": [["0.41", 10], ["0.42", 10]]})
    assert thin.status_code == 200 and [a["size"] for a in thin.json()["asks"]] == ["10", "10"]
    # With a price given the client does not pre-check the book: the exchange kills the FOK.
    assert refused(lambda: market_buy(client, LISBON_YES, 50, price=0.45)) == (
        400, "order couldn't be fully filled. FOK orders are fully filled or killed.")
    assert ex.balance(account.address)["pusd"] == "1000000000" and ex.positions(account.address) == []
    # Without a price the client walks the book itself and refuses first ("no match").
    with pytest.raises(Exception, match="no match"):
        market_buy(client, LISBON_YES, 50)
    answer = market_buy(client, LISBON_YES, 50, OrderType.FAK, price=0.45)
    assert (answer["status"], answer["takingAmount"], answer["makingAmount"]) == ("matched", "20", "8.3")
    assert client.get_order_book(LISBON_YES)["asks"] == []
    assert refused(lambda: market_buy(client, LISBON_YES, 50, OrderType.FAK, price=0.45)) == (
        400, "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found.")


def test_partial_fill_and_no_match_faults(ex):
    account = Account.create()
    ex.fund(account.address, 1000)
    client = ex.client(account)
    market_buy(client, LISBON_YES, 20)  # 48.78 shares
    ex.clob.faults.add(Fault("partial_fill", params={"fraction": 0.5}))
    answer = market_sell(client, LISBON_YES, 40)
    assert (answer["status"], answer["makingAmount"]) == ("matched", "20")
    ex.clob.faults.add(Fault("no_match"))
    assert refused(lambda: market_sell(client, LISBON_YES, 10))[1].startswith("no orders found to match with FAK")
    ex.clob.faults.add(Fault("no_match"))
    assert refused(lambda: market_sell(client, LISBON_YES, 10, OrderType.FOK))[1].startswith("order couldn't be fully")
    assert market_sell(client, LISBON_YES, 28.78)["makingAmount"] == "28.78"
    assert ex.positions(account.address) == []
    # The server's own faults: an HTTP status on /order, then latency.
    ex.clob.faults.add(Fault("status", path="/order", status=503, body={"error": "Trading is currently disabled."}))
    assert refused(lambda: market_buy(client, LISBON_YES, 5)) == (503, "Trading is currently disabled.")


def test_gtc_orders_rest_reserve_balance_and_are_listed_and_cancelled(ex):
    account = Account.create()
    ex.fund(account.address, 100)
    client = ex.client(account)
    market_buy(client, LISBON_YES, 10)  # 24.39 shares
    rest = client.create_and_post_order(OrderArgsV2(token_id=LISBON_YES, price=0.6, size=20, side="SELL"),
                                        order_type=OrderType.GTC)
    assert (rest["status"], rest["makingAmount"]) == ("live", "0")
    # The resting sell reserves 20 shares: only 4.39 are free.
    assert refused(lambda: market_sell(client, LISBON_YES, 10)) == (400, "not enough balance / allowance")
    bid = client.create_and_post_order(OrderArgsV2(token_id=LISBON_NO, price=0.3, size=100, side="BUY"))
    assert bid["status"] == "live"
    # The resting bid reserves $30 of the $90 left: a $70 market buy does not fit.
    assert refused(lambda: market_buy(client, LISBON_NO, 70)) == (400, "not enough balance / allowance")
    listed = client.get_open_orders()
    assert {o["id"] for o in listed} == {rest["orderID"], bid["orderID"]}
    mine = next(o for o in listed if o["id"] == rest["orderID"])
    assert (mine["side"], mine["original_size"], mine["price"], mine["asset_id"], mine["market"]) == (
        "SELL", "20", "0.6", LISBON_YES, LISBON)
    assert [o["id"] for o in client.get_open_orders(OpenOrderParams(asset_id=LISBON_NO))] == [bid["orderID"]]
    assert client.cancel_order(OrderPayload(orderID=rest["orderID"])) == {"canceled": [rest["orderID"]],
                                                                          "not_canceled": {}}
    assert client.cancel_order(OrderPayload(orderID=rest["orderID"]))["not_canceled"] == {
        rest["orderID"]: "order can't be canceled: it is canceled"}
    assert market_sell(client, LISBON_YES, 10)["status"] == "matched"
    assert client.cancel_market_orders(OrderMarketCancelParams(asset_id=LISBON_NO))["canceled"] == [bid["orderID"]]
    again = client.create_and_post_order(OrderArgsV2(token_id=LISBON_NO, price=0.3, size=10, side="BUY"))
    assert client.cancel_orders([again["orderID"], "0xnope"]) == {"canceled": [again["orderID"]],
                                                                  "not_canceled": {"0xnope": "order not found"}}
    client.create_and_post_order(OrderArgsV2(token_id=LISBON_NO, price=0.3, size=10, side="BUY"))
    assert len(client.cancel_all()["canceled"]) == 1 and client.get_open_orders() == []
    # A crossing GTC fills what crosses and rests the rest.
    crossing = client.create_and_post_order(OrderArgsV2(token_id=LISBON_NO, price=0.61, size=120, side="BUY"))
    assert (crossing["status"], crossing["takingAmount"]) == ("live", "100")
    [left] = client.get_open_orders()
    assert (left["size_matched"], left["original_size"]) == ("100", "120")


def test_orders_signed_by_another_key_or_tampered_are_refused(ex):
    alice, mallory = Account.create(), Account.create()
    ex.fund(alice.address, 100)
    ex.fund(mallory.address, 100)
    a, m = ex.client(alice), ex.client(mallory)
    # Alice's signed order, posted with Mallory's API key: the signer is not the key's address.
    order = a.create_market_order(MarketOrderArgsV2(token_id=LISBON_YES, amount=5, side="BUY"))
    assert refused(lambda: m.post_order(order, OrderType.FOK)) == (
        400, "the order signer address has to be the address of the API KEY")
    # Mallory signs an order that names Alice as maker and signer.
    forged = dataclasses.replace(m.create_market_order(MarketOrderArgsV2(token_id=LISBON_YES, amount=5, side="BUY")),
                                 maker=alice.address, signer=alice.address)
    assert refused(lambda: a.post_order(forged, OrderType.FOK)) == (400, "invalid signature")
    # A signed order whose amounts were changed afterwards.
    tampered = dataclasses.replace(order, makerAmount=str(int(order.makerAmount) * 2))
    assert refused(lambda: a.post_order(tampered, OrderType.FOK)) == (400, "invalid signature")
    assert ex.positions(alice.address) == [] and ex.positions(mallory.address) == []
    assert a.post_order(order, OrderType.FOK)["status"] == "matched"
    assert refused(lambda: a.post_order(order, OrderType.FOK))[1].endswith("Duplicated.")


def test_balance_min_size_tick_and_version_rules(ex):
    account = Account.create()
    client = ex.client(account)
    assert refused(lambda: market_buy(client, LISBON_YES, 10)) == (400, "not enough balance / allowance")
    ex.fund(account.address, 100)
    assert refused(lambda: market_sell(client, LISBON_YES, 10)) == (400, "not enough balance / allowance")
    too_small = OrderArgsV2(token_id=LISBON_YES, price=0.3, size=3, side="BUY")
    assert refused(lambda: client.create_and_post_order(too_small)) == (400, "Size (3) lower than the minimum: 5")
    assert refused(lambda: market_buy(client, LISBON_YES, 1))[1] == "Size (2.439) lower than the minimum: 5"
    v1 = client.create_order(OrderArgsV2(token_id=LISBON_YES, price=0.3, size=10, side="BUY"),
                             PartialCreateOrderOptions(version=1))
    assert refused(lambda: client.post_order(v1)) == (400, "order_version_mismatch")
    # The client refuses an off-range price itself; the exchange refuses an off-tick one.
    with pytest.raises(PolyException):
        client.create_order(OrderArgsV2(token_id=LISBON_YES, price=0.999, size=10, side="BUY"))
    # The client will not build an order on a finer tick than the market's; its builder will.
    off_tick = client.builder.build_order(OrderArgsV2(token_id=LISBON_YES, price=0.305, size=10, side="BUY"),
                                          CreateOrderOptions(tick_size="0.001", neg_risk=False))
    assert refused(lambda: client.post_order(off_tick)) == (
        400, "order price (0.305000) breaks the minimum tick size rule: 0.01")


def test_resolution_removes_the_book_and_makes_positions_redeemable(ex):
    account = Account.create()
    ex.fund(account.address, 100)
    client = ex.client(account)
    market_buy(client, LISBON_YES, 10)  # 24.39 Yes
    market_buy(client, LISBON_NO, 6.1)  # 10 No
    resting = client.create_and_post_order(OrderArgsV2(token_id=LISBON_YES, price=0.9, size=10, side="SELL"))
    assert [r["mergeable"] for r in ex.positions(account.address)] == [True, True]
    resolved = ex.post("/paper/resolve", {"condition_id": LISBON, "winner": "Yes"})
    assert resolved.json() == {"condition_id": LISBON, "winner": LISBON_YES, "outcome": "Yes"}
    assert refused(lambda: client.get_order_book(LISBON_YES)) == (404, "No orderbook exists for the requested token id")
    assert refused(lambda: client.get_midpoint(LISBON_NO))[0] == 404
    assert client.get_open_orders() == [] and client.get_order(resting["orderID"])["status"] == "CANCELED"
    assert client.get_market(LISBON)["closed"] is True
    rows = {r["outcome"]: r for r in ex.positions(account.address)}
    assert (rows["Yes"]["redeemable"], rows["Yes"]["curPrice"], rows["No"]["curPrice"]) == (True, 1.0, 0.0)
    assert [r["asset"] for r in ex.positions(account.address, redeemable="true")] == [LISBON_YES, LISBON_NO]
    assert ex.positions(account.address, redeemable="false") == []
    with pytest.raises(PolyApiException):
        market_sell(client, LISBON_YES, 10, price=0.5)
    redeemed = ex.post("/paper/redeem", {"address": account.address, "token_ids": [LISBON_YES, LISBON_NO, ARSENAL_YES]})
    body = redeemed.json()
    assert [(r["tokenId"], r["shares"], r["payout"], r["won"]) for r in body["redeemed"]] == [
        (LISBON_YES, "24.39", "24.39", True), (LISBON_NO, "10", "0", False)]
    assert body["skipped"] == [{"tokenId": ARSENAL_YES, "reason": "the market is not resolved"}]
    assert ex.positions(account.address) == []
    assert D(ex.balance(account.address)["pusd"]) == D(100_000_000 - 9_999_900 - 6_100_000 + 24_390_000)


def test_data_api_filters_and_the_default_size_threshold(ex):
    account = Account.create()
    ex.fund(account.address, 100)
    client = ex.client(account)
    market_buy(client, LISBON_YES, 10)
    market_sell(client, LISBON_YES, 23.89)  # 0.5 shares left: below the default threshold of 1
    market_buy(client, ARSENAL_YES, 5)
    assert [r["asset"] for r in ex.positions(account.address)] == [ARSENAL_YES]
    assert {r["asset"] for r in ex.positions(account.address, sizeThreshold=0)} == {LISBON_YES, ARSENAL_YES}
    assert [r["asset"] for r in ex.positions(account.address, sizeThreshold=0, market=LISBON)] == [LISBON_YES]
    row = ex.positions(account.address, market=ARSENAL)[0]
    assert (row["negativeRisk"], row["eventSlug"]) == (True, "champions-league-winner-2025-26")
    response = httpx.get(f"{ex.data.url}/positions")
    assert (response.status_code, response.json()) == (400, {"error": "user is required"})


def test_state_in_a_file_is_shared_by_two_exchanges(tmp_path):
    """Two processes of one home run their own servers over one state file."""
    first, second = start_exchanges(tmp_path), start_exchanges(tmp_path)
    try:
        account = Account.create()
        httpx.post(f"{first.polymarket_clob.url}/paper/fund", json={"address": account.address, "pusd": 50})
        client = ClobClient(first.polymarket_clob.url, chain_id=137, key="0x" + bytes(account.key).hex())
        client.set_api_creds(client.create_or_derive_api_key())
        market_buy(client, LISBON_YES, 10)
        # The other exchange derives the same key and sees the same holdings.
        other = ClobClient(second.polymarket_clob.url, chain_id=137, key="0x" + bytes(account.key).hex())
        other.set_api_creds(other.derive_api_key())
        assert other.creds == client.creds
        [row] = httpx.get(f"{second.polymarket_data.url}/positions", params={"user": account.address}).json()
        assert row["size"] == 24.39
        assert market_sell(other, LISBON_YES, 24.39)["status"] == "matched"
        assert httpx.get(f"{first.polymarket_data.url}/positions", params={"user": account.address}).json() == []
        assert (tmp_path / "polymarket.json").exists()
    finally:
        stop(first.hyperliquid, first.polymarket_clob, first.polymarket_data, second.hyperliquid,
             second.polymarket_clob, second.polymarket_data)
