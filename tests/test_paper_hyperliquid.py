"""The paper Hyperliquid exchange, driven by the official hyperliquid-python-sdk, unmodified.

Every test talks HTTP to a loopback server: the SDK's ``Info`` and ``Exchange`` sign and send
exactly what they would send to Hyperliquid, and the paper exchange recovers the signer, checks
nonces and Hyperliquid's order rules, and answers in Hyperliquid's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import attrs
import pytest
import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ServerError
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action

from tickloop_paper.hyperliquid import HyperliquidPaper, price_ok, round_price
from tickloop_paper.hyperliquid.auth import use_nonce
from tickloop_paper.server import Fault, PaperServer
from tickloop_paper.state import ExchangeState

D = Decimal
IOC = {"limit": {"tif": "Ioc"}}
GTC = {"limit": {"tif": "Gtc"}}
ALO = {"limit": {"tif": "Alo"}}
ETH = 1  # asset ids: BTC 0, ETH 1, SOL 2, HYPE 3


@attrs.frozen
class Paper:
    server: PaperServer
    app: HyperliquidPaper

    @property
    def url(self) -> str:
        return self.server.url

    def fund(self, user: str, usdc: float, **extra: Any) -> dict[str, Any]:
        answer = requests.post(self.url + "/paper/fund", json={"user": user, "usdc": usdc, **extra}, timeout=5)
        answer.raise_for_status()
        return answer.json()

    def mid(self, coin: str, px: float) -> dict[str, Any]:
        answer = requests.post(self.url + "/paper/mid", json={"coin": coin, "px": px}, timeout=5)
        answer.raise_for_status()
        return answer.json()

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        return requests.post(self.url + "/exchange", data=json.dumps(payload), timeout=5,
                             headers={"Content-Type": "application/json"}).json()

    def trader(self, usdc: float = 10_000) -> tuple[Any, Exchange]:
        account = Account.create()
        self.fund(account.address, usdc)
        return account, Exchange(account, self.url)


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[PaperServer, list[HyperliquidPaper]]]:
    # One server for the module (stopping one takes half a second); each test gets a fresh exchange.
    current: list[HyperliquidPaper] = []
    server = PaperServer(lambda request: current[0](request), name="paper-hyperliquid")
    with server:
        yield server, current


@pytest.fixture
def paper(_server: tuple[PaperServer, list[HyperliquidPaper]]) -> Iterator[Paper]:
    server, current = _server
    server.faults.clear()
    current[:] = [HyperliquidPaper(ExchangeState(None, HyperliquidPaper.initial_state), server.faults)]
    yield Paper(server, current[0])
    server.faults.clear()


@pytest.fixture
def info(paper: Paper) -> Info:
    return Info(paper.url, skip_ws=True)


def status(answer: dict[str, Any]) -> Any:
    assert answer["status"] == "ok", answer
    [only] = answer["response"]["data"]["statuses"]
    return only


def position(info: Info, user: str, coin: str) -> dict[str, Any] | None:
    found = [p["position"] for p in info.user_state(user)["assetPositions"] if p["position"]["coin"] == coin]
    return found[0] if found else None


def order_payload(account: Any, *, size: str = "0.1", price: str = "3100", nonce: int | None = None,
                  vault: str | None = None, expires: int | None = None) -> dict[str, Any]:
    """A signed /exchange body as the SDK builds it (an ETH IOC buy)."""
    action = {"type": "order", "orders": [{"a": ETH, "b": True, "p": price, "s": size, "r": False, "t": IOC}],
              "grouping": "na"}
    nonce = nonce or get_timestamp_ms()
    signature = sign_l1_action(account, action, vault, nonce, expires, False)
    return {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": vault, "expiresAfter": expires}


# -- orders -------------------------------------------------------------------------------------


def test_an_ioc_fills_at_the_mid_and_charges_the_taker_fee(paper, info):
    account, exchange = paper.trader(1000)
    filled = status(exchange.order("ETH", True, 0.1, 3100, IOC))["filled"]
    assert filled == {"totalSz": "0.1", "avgPx": "3000.0", "oid": filled["oid"]}
    assert isinstance(filled["oid"], int)
    held = position(info, account.address, "ETH")
    assert (held["szi"], held["entryPx"], held["positionValue"]) == ("0.1", "3000.0", "300.0")
    # 0.045% of $300 is $0.135, taken from the USDC balance.
    assert info.user_state(account.address)["marginSummary"]["accountValue"] == "999.865"
    [fill] = info.user_fills(account.address)
    assert (fill["oid"], fill["px"], fill["sz"], fill["side"], fill["dir"], fill["fee"], fill["crossed"]) == \
        (filled["oid"], "3000.0", "0.1", "B", "Open Long", "0.135", True)


def test_a_gtc_below_the_mid_rests_and_fills_at_its_limit_when_the_mid_falls_through_it(paper, info):
    account, exchange = paper.trader(1000)
    oid = status(exchange.order("ETH", True, 0.1, 2900, GTC))["resting"]["oid"]
    [resting] = info.open_orders(account.address)
    assert resting == {"coin": "ETH", "limitPx": "2900.0", "oid": oid, "side": "B", "sz": "0.1",
                       "timestamp": resting["timestamp"]}
    assert info.query_order_by_oid(account.address, oid)["order"]["status"] == "open"
    assert position(info, account.address, "ETH") is None

    assert paper.mid("ETH", 2950)["filled"] == []  # not through it yet
    assert paper.mid("ETH", 2890)["filled"] == [oid]
    assert info.open_orders(account.address) == []
    assert info.query_order_by_oid(account.address, oid)["order"]["status"] == "filled"
    held = position(info, account.address, "ETH")
    assert (held["szi"], held["entryPx"]) == ("0.1", "2900.0")
    [fill] = info.user_fills(account.address)
    assert (fill["px"], fill["crossed"], fill["fee"]) == ("2900.0", False, "0.0435")  # maker: 0.015%


def test_a_gtc_that_crosses_fills_at_once(paper, info):
    account, exchange = paper.trader(1000)
    assert status(exchange.order("SOL", False, 1, 140, GTC))["filled"]["avgPx"] == "150.0"
    assert position(info, account.address, "SOL")["szi"] == "-1.0"


def test_cancel_and_cancel_by_cloid(paper, info):
    from hyperliquid.utils.types import Cloid

    account, exchange = paper.trader(1000)
    oid = status(exchange.order("ETH", True, 0.1, 2900, GTC))["resting"]["oid"]
    assert status(exchange.cancel("ETH", oid)) == "success"
    assert info.open_orders(account.address) == []
    assert info.query_order_by_oid(account.address, oid)["order"]["status"] == "canceled"
    assert status(exchange.cancel("ETH", oid)) == {
        "error": "Order was never placed, already canceled, or filled. asset=1"}

    cloid = Cloid.from_str("0x" + "12" * 16)
    status(exchange.order("ETH", False, 0.1, 3100, GTC, cloid=cloid))
    assert info.frontend_open_orders(account.address)[0]["cloid"] == cloid.to_raw()
    assert status(exchange.cancel_by_cloid("ETH", cloid)) == "success"
    assert info.open_orders(account.address) == []


def test_market_close_sends_a_reduce_only_ioc_and_realises_the_pnl(paper, info):
    account, exchange = paper.trader(1000)
    status(exchange.order("ETH", True, 0.5, 3100, IOC))
    paper.mid("ETH", 3100)
    before = len(paper.server.requests())
    closed = status(exchange.market_close("ETH"))["filled"]
    assert (closed["totalSz"], closed["avgPx"]) == ("0.5", "3100.0")
    # The SDK read the position and the mid, then sent one reduce-only IOC below the mid.
    log = paper.server.requests()[before:]
    assert [r.body.get("type") or r.body["action"]["type"] for r in log] == \
        ["clearinghouseState", "allMids", "order"]
    [wire] = log[-1].body["action"]["orders"]
    assert (wire["b"], wire["s"], wire["r"], wire["t"], D(wire["p"]) < 3100) == (False, "0.5", True, IOC, True)
    assert position(info, account.address, "ETH") is None
    # +$50 PnL, less 0.045% taker fees on $1500 and $1550.
    assert D(info.user_state(account.address)["marginSummary"]["accountValue"]) == \
        D(1000) + 50 - D("0.675") - D("0.6975")
    assert [f["dir"] for f in info.user_fills(account.address)] == ["Close Long", "Open Long"]
    assert info.user_fills(account.address)[0]["closedPnl"] == "50.0"


def test_reduce_only_orders_that_would_increase_or_flip_the_position_are_refused(paper, info):
    account, exchange = paper.trader(1000)
    refused = {"error": "Reduce only order would increase position."}
    assert status(exchange.order("ETH", False, 0.1, 2900, IOC, reduce_only=True)) == refused  # nothing held
    status(exchange.order("ETH", True, 0.1, 3100, IOC))
    assert status(exchange.order("ETH", True, 0.1, 3100, IOC, reduce_only=True)) == refused  # same side
    assert status(exchange.order("ETH", False, 0.2, 2900, IOC, reduce_only=True)) == refused  # would flip
    assert position(info, account.address, "ETH")["szi"] == "0.1"
    assert "filled" in status(exchange.order("ETH", False, 0.05, 2900, IOC, reduce_only=True))
    assert position(info, account.address, "ETH")["szi"] == "0.05"


def test_the_ten_dollar_minimum_applies_to_opening_orders_not_to_reduce_only_ones(paper, info):
    account, exchange = paper.trader(1000)
    assert status(exchange.order("ETH", True, 0.003, 3100, IOC)) == {"error": "Order must have minimum value of $10."}
    status(exchange.order("ETH", True, 0.004, 3100, IOC))  # $12.40 at the limit
    status(exchange.order("ETH", False, 0.001, 2900, IOC, reduce_only=True))  # $2.90: dust can be closed
    assert position(info, account.address, "ETH")["szi"] == "0.003"


def test_sizes_and_prices_must_fit_the_lot_and_the_tick(paper):
    _, exchange = paper.trader(10_000)
    assert status(exchange.order("ETH", True, 0.00001, 3100, IOC)) == {"error": "Order has invalid size."}
    tick = {"error": "Price must be divisible by tick size. asset=1"}
    assert status(exchange.order("ETH", True, 0.1, 3100.12, IOC)) == tick  # 6 significant figures
    assert status(exchange.order("ETH", True, 0.1, 0.001, IOC)) == tick  # 3 decimals > 6 - szDecimals
    assert status(exchange.order("BTC", True, 0.001, 60000.5, IOC)) == \
        {"error": "Price must be divisible by tick size. asset=0"}
    assert "filled" in status(exchange.order("BTC", True, 0.001, 60001, IOC))  # integers are always valid
    assert "filled" in status(exchange.order("ETH", True, 0.1, 3100.1, IOC))


def test_the_tick_rule_helpers_agree_with_hyperliquid():
    assert price_ok(D("60001"), 5) and price_ok(D("3000.1"), 4) and price_ok(D("0.12345"), 0)
    assert not price_ok(D("3000.12"), 4) and not price_ok(D("1.123"), 4) and not price_ok(D("0"), 2)
    assert round_price(D("3123.456"), 4) == D("3123.5")
    assert round_price(D("0.0123456"), 2) == D("0.0123")


def test_post_only_orders_that_would_cross_are_refused(paper, info):
    account, exchange = paper.trader(1000)
    assert status(exchange.order("ETH", True, 0.1, 3100, ALO)) == \
        {"error": "Post only order would have immediately matched, bbo was 3000.0@3000.0. asset=1"}
    assert "resting" in status(exchange.order("ETH", True, 0.1, 2900, ALO))
    assert info.frontend_open_orders(account.address)[0]["tif"] == "Alo"


def test_orders_beyond_the_margin_are_refused(paper, info):
    account, exchange = paper.trader(100)
    # 20x on $100: at most $2000 of notional.
    assert status(exchange.order("ETH", True, 1, 3100, IOC)) == {"error": "Insufficient margin to place order. asset=1"}
    assert "filled" in status(exchange.order("ETH", True, 0.6, 3100, IOC))
    assert position(info, account.address, "ETH")["marginUsed"] == "90.0"


def test_a_stop_loss_rests_until_the_mid_crosses_its_trigger(paper, info):
    account, exchange = paper.trader(1000)
    status(exchange.order("ETH", True, 0.1, 3100, IOC))
    stop = {"trigger": {"triggerPx": 2800, "isMarket": True, "tpsl": "sl"}}
    oid = status(exchange.order("ETH", False, 0.1, 2700, stop, reduce_only=True))["resting"]["oid"]
    [order] = info.frontend_open_orders(account.address)
    assert (order["isTrigger"], order["orderType"], order["triggerPx"]) == (True, "Stop Market", "2800.0")
    assert paper.mid("ETH", 2850)["filled"] == []
    assert paper.mid("ETH", 2790)["filled"] == [oid]
    assert position(info, account.address, "ETH") is None


def test_leverage_and_the_clearinghouse_state_have_hyperliquids_shapes(paper, info):
    account, exchange = paper.trader(1000)
    status(exchange.order("ETH", True, 0.5, 3100, IOC))
    status(exchange.order("BTC", False, 0.01, 59000, IOC))
    assert exchange.update_leverage(5, "ETH") == {"status": "ok", "response": {"type": "default"}}
    assert exchange.update_leverage(50, "ETH")["status"] == "err"  # ETH allows 25x
    paper.mid("ETH", 3100)
    state = info.user_state(account.address)
    assert set(state) == {"marginSummary", "crossMarginSummary", "crossMaintenanceMarginUsed", "withdrawable",
                          "assetPositions", "time"}
    assert set(state["marginSummary"]) == {"accountValue", "totalMarginUsed", "totalNtlPos", "totalRawUsd"}
    assert state["crossMarginSummary"] == state["marginSummary"]
    assert isinstance(state["time"], int)
    eth, btc = (p["position"] for p in sorted(state["assetPositions"], key=lambda p: p["position"]["coin"],
                                              reverse=True))
    assert [p["type"] for p in state["assetPositions"]] == ["oneWay", "oneWay"]
    assert set(eth) == {"coin", "szi", "entryPx", "leverage", "liquidationPx", "marginUsed", "positionValue",
                        "returnOnEquity", "unrealizedPnl", "maxLeverage", "cumFunding"}
    assert eth["leverage"] == {"type": "cross", "value": 5} and btc["leverage"] == {"type": "cross", "value": 20}
    assert (eth["szi"], eth["positionValue"], eth["marginUsed"], eth["unrealizedPnl"]) == \
        ("0.5", "1550.0", "310.0", "50.0")
    assert btc["szi"] == "-0.01" and btc["maxLeverage"] == 40
    for value in (eth["szi"], eth["entryPx"], eth["returnOnEquity"], state["withdrawable"],
                  *state["marginSummary"].values(), state["crossMaintenanceMarginUsed"]):
        assert isinstance(value, str)
        D(value)
    assert eth["liquidationPx"] is None or D(eth["liquidationPx"]) < 3100
    # The account value is USDC plus unrealised PnL; the raw USD excludes the positions' value.
    value = D(state["marginSummary"]["accountValue"])
    assert D(state["marginSummary"]["totalRawUsd"]) == value - (D("0.5") * 3100 - D("0.01") * 60000)

    stranger = info.user_state(Account.create().address)
    assert stranger["assetPositions"] == [] and stranger["marginSummary"]["accountValue"] == "0.0"


def test_market_data_endpoints(paper, info):
    assert info.all_mids() == {"BTC": "60000.0", "ETH": "3000.0", "SOL": "150.0", "HYPE": "25.0"}
    universe = info.meta()["universe"]
    assert [(u["name"], u["szDecimals"]) for u in universe] == [("BTC", 5), ("ETH", 4), ("SOL", 2), ("HYPE", 2)]
    assert all(isinstance(u["maxLeverage"], int) for u in universe)
    book = info.l2_snapshot("ETH")
    bids, asks = book["levels"]
    assert book["coin"] == "ETH" and len(bids) == len(asks) == 10
    assert D(bids[0]["px"]) <= 3000 <= D(asks[0]["px"]) and D(bids[1]["px"]) < D(bids[0]["px"])
    paper.mid("ETH", 3210.5)
    assert info.all_mids()["ETH"] == "3210.5"


def test_a_scheduled_cancel_cancels_every_open_order_when_due(paper, info):
    account, exchange = paper.trader(1000)
    oid = status(exchange.order("ETH", True, 0.1, 2900, GTC))["resting"]["oid"]
    too_soon = exchange.schedule_cancel(get_timestamp_ms() + 1000)
    assert too_soon == {"status": "err",
                        "response": "Scheduled cancel time too early, must be at least 5 seconds from now."}
    assert exchange.schedule_cancel(get_timestamp_ms() + 6000)["status"] == "ok"
    assert len(info.open_orders(account.address)) == 1
    with paper.app.state.transaction() as doc:  # let the time pass
        doc["accounts"][account.address.lower()]["scheduledCancel"] = get_timestamp_ms() - 1
    assert info.open_orders(account.address) == []
    assert info.query_order_by_oid(account.address, oid)["order"]["status"] == "scheduledCancel"


# -- signatures, accounts and nonces ------------------------------------------------------------


def test_a_signer_that_is_not_a_funded_account_does_not_exist(paper, info):
    stranger = Account.create()
    answer = Exchange(stranger, paper.url).order("ETH", True, 0.1, 3100, IOC)
    assert answer == {"status": "err", "response": f"User or API Wallet {stranger.address.lower()} does not exist."}
    assert info.user_state(stranger.address)["assetPositions"] == []


def test_a_tampered_action_recovers_another_signer_and_is_refused(paper, info):
    account, _ = paper.trader(1000)
    payload = order_payload(account, size="0.1")
    payload["action"]["orders"][0]["s"] = "0.2"  # changed after signing
    answer = paper.send(payload)
    assert answer["status"] == "err"
    assert answer["response"].startswith("User or API Wallet 0x") and answer["response"].endswith("does not exist.")
    assert account.address.lower() not in answer["response"]
    assert position(info, account.address, "ETH") is None
    # The same action, as signed, goes through.
    assert "filled" in status(paper.send(order_payload(account, size="0.1")))


def test_a_tampered_vault_address_is_refused(paper):
    account, _ = paper.trader(1000)
    payload = order_payload(account)
    payload["vaultAddress"] = Account.create().address  # not part of what was signed
    assert paper.send(payload)["response"].endswith("does not exist.")


def test_nonces_are_used_once_and_must_be_recent(paper):
    account, _ = paper.trader(10_000)
    nonce = get_timestamp_ms()
    assert "filled" in status(paper.send(order_payload(account, nonce=nonce)))
    reused = paper.send(order_payload(account, nonce=nonce))
    assert reused["status"] == "err" and "duplicate nonce" in reused["response"]
    day = 24 * 60 * 60 * 1000
    for stale in (nonce - day - 60_000, nonce + day + 60_000):
        answer = paper.send(order_payload(account, nonce=stale))
        assert answer["status"] == "err" and "more than a day" in answer["response"]


def test_a_nonce_below_the_hundred_highest_kept_is_refused():
    doc = HyperliquidPaper.initial_state()
    now = get_timestamp_ms()
    for i in range(1, 101):
        assert use_nonce(doc, "0xsigner", now + 10 * i, now) is None
    # Unused, but not above the smallest of the 100 kept: refused. Above it: accepted, and the
    # smallest is dropped.
    assert "smallest" in use_nonce(doc, "0xsigner", now + 5, now)
    assert use_nonce(doc, "0xsigner", now + 15, now) is None
    assert doc["nonces"]["0xsigner"][0] == now + 15 and len(doc["nonces"]["0xsigner"]) == 100
    assert use_nonce(doc, "0xother", now + 5, now) is None  # per signer


def test_an_expired_action_is_refused(paper):
    account, _ = paper.trader(1000)
    answer = paper.send(order_payload(account, expires=get_timestamp_ms() - 1000))
    assert answer["status"] == "err" and "expired" in answer["response"]
    assert "filled" in status(paper.send(order_payload(account, expires=get_timestamp_ms() + 60_000)))


def test_an_approved_agent_wallet_trades_for_its_account(paper, info):
    master, exchange = paper.trader(1000)
    answer, key = exchange.approve_agent()
    assert answer == {"status": "ok", "response": {"type": "default"}}
    agent = Account.from_key(key)
    as_agent = Exchange(agent, paper.url, account_address=master.address)
    assert "filled" in status(as_agent.order("ETH", True, 0.1, 3100, IOC))
    assert position(info, master.address, "ETH")["szi"] == "0.1"
    assert info.user_state(agent.address)["assetPositions"] == []  # the agent holds nothing itself
    # market_close reads the master account's position (account_address) and closes it.
    assert "filled" in status(as_agent.market_close("ETH"))
    assert position(info, master.address, "ETH") is None

    # Approving a new unnamed agent prunes the old one.
    exchange.approve_agent()
    pruned = as_agent.order("ETH", True, 0.1, 3100, IOC)
    assert pruned == {"status": "err", "response": f"User or API Wallet {agent.address.lower()} does not exist."}


def test_an_unfunded_user_cannot_approve_an_agent(paper):
    answer, _ = Exchange(Account.create(), paper.url).approve_agent("bot")
    assert answer["status"] == "err" and answer["response"].startswith("Must deposit before performing actions.")


def test_a_master_trades_for_its_sub_account_with_the_vault_address(paper, info):
    master, _ = paper.trader(1000)
    sub = Account.create().address
    paper.fund(sub, 500, master=master.address)
    as_sub = Exchange(master, paper.url, vault_address=sub)
    assert "filled" in status(as_sub.order("ETH", True, 0.1, 3100, IOC))
    assert position(info, sub, "ETH")["szi"] == "0.1" and position(info, master.address, "ETH") is None
    outsider, _ = paper.trader(1000)
    refused = Exchange(outsider, paper.url, vault_address=sub).order("ETH", True, 0.1, 3100, IOC)
    assert refused["status"] == "err" and "not authorized" in refused["response"]


def test_usd_class_transfer_moves_usdc_between_perp_and_spot(paper, info):
    account, exchange = paper.trader(100)
    assert exchange.usd_class_transfer(40, False)["status"] == "ok"
    assert info.spot_user_state(account.address)["balances"][0]["total"] == "40.0"
    assert info.user_state(account.address)["marginSummary"]["accountValue"] == "60.0"
    assert exchange.usd_class_transfer(100, True)["status"] == "err"
    assert exchange.usd_class_transfer(15, True)["status"] == "ok"
    assert info.user_state(account.address)["marginSummary"]["accountValue"] == "75.0"


# -- faults -------------------------------------------------------------------------------------


def test_a_partial_fill_fault_fills_part_of_the_next_ioc(paper, info):
    account, exchange = paper.trader(1000)
    paper.server.faults.add(Fault("partial_fill", params={"fraction": 0.5}))
    assert status(exchange.order("ETH", True, 0.3, 3100, IOC))["filled"]["totalSz"] == "0.15"
    assert position(info, account.address, "ETH")["szi"] == "0.15"
    assert status(exchange.order("ETH", True, 0.3, 3100, IOC))["filled"]["totalSz"] == "0.3"  # used up
    assert position(info, account.address, "ETH")["szi"] == "0.45"


def test_an_ioc_no_match_fault_refuses_the_next_ioc(paper, info):
    _, exchange = paper.trader(1000)
    paper.server.faults.add(Fault("ioc_no_match", times=2))
    no_match = {"error": "Order could not immediately match against any resting orders. asset=1"}
    assert status(exchange.order("ETH", True, 0.1, 3100, IOC)) == no_match
    assert "resting" in status(exchange.order("ETH", True, 0.1, 2900, GTC))  # not an IOC: untouched
    assert status(exchange.order("ETH", True, 0.1, 3100, IOC)) == no_match
    assert "filled" in status(exchange.order("ETH", True, 0.1, 3100, IOC))
    # Without a fault an IOC that does not reach the book is refused the same way.
    assert status(exchange.order("ETH", True, 0.1, 2990, IOC)) == no_match


def test_server_status_and_latency_faults_reach_the_sdk(paper):
    _, exchange = paper.trader(1000)
    paper.server.faults.add(Fault("status", path="/exchange", status=502, body="bad gateway"))
    with pytest.raises(ServerError):
        exchange.order("ETH", True, 0.1, 3100, IOC)
    paper.server.faults.add(Fault("latency", path="/exchange", seconds=0.2))
    import time

    started = time.monotonic()
    assert "filled" in status(exchange.order("ETH", True, 0.1, 3100, IOC))
    assert time.monotonic() - started >= 0.2


# -- control and shared state -------------------------------------------------------------------


def test_funding_if_new_credits_only_once_and_control_errors_are_clear(paper):
    user = Account.create().address
    assert paper.fund(user, 100, ifNew=True)["created"] is True
    again = paper.fund(user, 100, ifNew=True)
    assert (again["created"], again["usdc"]) == (False, "100.0")
    assert paper.fund(user, 5)["usdc"] == "105.0"
    bad = requests.post(paper.url + "/paper/mid", json={"coin": "DOGE", "px": 1}, timeout=5)
    assert bad.status_code == 400 and "unknown coin" in bad.json()["error"]
    state = requests.get(paper.url + "/paper/state", timeout=5).json()
    assert state["accounts"][user.lower()]["usdc"] == "105.0"


def test_processes_share_one_exchange_through_the_state_file(tmp_path, info, paper):
    path = tmp_path / "hyperliquid.json"
    first = HyperliquidPaper(ExchangeState(path, HyperliquidPaper.initial_state))
    second = HyperliquidPaper(ExchangeState(path, HyperliquidPaper.initial_state))
    with PaperServer(first) as one, PaperServer(second) as two:
        account = Account.create()
        requests.post(one.url + "/paper/fund", json={"user": account.address, "usdc": 1000}, timeout=5)
        status(Exchange(account, two.url).order("ETH", True, 0.1, 3100, IOC))
        assert position(Info(one.url, skip_ws=True), account.address, "ETH")["szi"] == "0.1"
