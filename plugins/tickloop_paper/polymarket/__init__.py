"""A paper Polymarket: the CLOB v2 endpoints ``py-clob-client-v2`` uses, and the Data API's
``GET /positions``, over a small state model (markets, books, accounts, orders, trades).

It speaks the real wire protocol and checks what the real exchange checks, so the official
client runs against it unmodified:

- **L1 auth** (``POST /auth/api-key``, ``GET /auth/derive-api-key``): the ``ClobAuth`` EIP-712
  signature in ``POLY_SIGNATURE`` must recover to ``POLY_ADDRESS`` (domain ``ClobAuthDomain``,
  version 1, chain 137). API keys are derived deterministically per address and nonce.
- **L2 auth** (orders, cancels, open orders, trades, balances): ``POLY_SIGNATURE`` must be the
  HMAC-SHA256 of ``timestamp + METHOD + path + body`` under the key's secret, and the key must
  belong to ``POLY_ADDRESS``; otherwise 401 ``Unauthorized/Invalid api key``.
- **Orders** (``POST /order``): V2 orders only (a V1 order is answered
  ``order_version_mismatch``, as CLOB v2 does). The EIP-712 ``Order`` is recovered against the
  standard or the neg-risk V2 exchange (by the token's ``neg_risk`` flag) with domain version
  "2"; the signer must be the maker (signature type 0, EOA) and the API key's address. Prices
  must sit on the tick inside ``[tick, 1 - tick]``, sizes must reach the book's
  ``min_order_size``; a BUY needs the pUSD, a SELL the shares (balance minus what resting orders
  reserve): else ``not enough balance / allowance``. FOK fills completely or not at all, FAK
  fills what it can (nothing: an error), GTC/GTD fill what crosses and rest the remainder.
  Market BUY orders (FOK/FAK) spend their ``makerAmount`` of pUSD; everything else trades
  shares. Fills are in lots of 0.01 shares at the resting levels' prices and consume the book.
  Every matched order answers with ``transactionsHashes``, so the client never polls trades.
- **Books**: bids ascending and asks descending (best price last), like the real REST book.
  User orders that rest are not shown in the book and are not matched against each other: the
  seeded book is the only liquidity (move it with ``POST /paper/book``).
- **Resolution** (``POST /paper/resolve``): the market closes (its books answer 404 ``No
  orderbook exists for the requested token id``, its resting orders are cancelled), the Data API
  marks its positions ``redeemable``, and ``POST /paper/redeem`` pays $1 a winning share.

Paper control (no auth; the server is loopback): ``POST /paper/fund {"address", "pusd",
"tokens"?, "initial"?}``, ``POST /paper/resolve {"condition_id", "winner"}``, ``POST
/paper/redeem {"address", "token_ids", "amounts"?}``, ``POST /paper/book {"token_id", "mid"? |
"bids"/"asks"}``, ``GET /paper/balance?address=``, ``GET /paper/state``.

Faults (``server.faults``): ``no_match`` (an FOK/FAK order finds no liquidity) and
``partial_fill`` (``params={"fraction": 0.5}``: an order matches at most that fraction), besides
the server's own ``status`` and ``latency``.

Fees are zero. Amounts are integers with 6 decimals (pUSD and shares), as on chain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Callable

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from tickloop_paper.server import Faults, Request, Response
from tickloop_paper.state import ExchangeState

CHAIN_ID = 137
#: Polymarket's contracts on Polygon (public addresses, as the v2 client's config lists them).
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"

UNIT = 10**6  # pUSD and shares have 6 decimals
LOT = UNIT // 100  # fills are whole multiples of 0.01 shares
END_CURSOR = "LTE="
ORDER_TYPES = ("FOK", "FAK", "GTC", "GTD")
#: Orders and trades kept once they are done (the live ones are always kept).
KEEP_DONE = 1000

CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
_CLOB_AUTH_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}],
    "ClobAuth": [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"},
                 {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}],
}
_ORDER_V2_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
    "Order": [{"name": n, "type": t} for n, t in (
        ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
        ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"), ("signatureType", "uint8"),
        ("timestamp", "uint256"), ("metadata", "bytes32"), ("builder", "bytes32"))],
}
_V2_FIELDS = ("salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side", "signatureType",
              "timestamp", "metadata", "builder", "signature")

NO_BOOK = "No orderbook exists for the requested token id"
NO_BALANCE = "not enough balance / allowance"
FOK_UNFILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."
FAK_UNMATCHED = "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
UNAUTHORIZED = "Unauthorized/Invalid api key"
BAD_L1 = "Invalid L1 Request headers"

#: The seeded markets: (slug, question, event slug, Yes price, neg_risk, end date).
SEED_MARKETS = (
    ("will-it-rain-in-lisbon-on-march-1-2026", "Will it rain in Lisbon on 1 March 2026?",
     "lisbon-weather-march-2026", "0.40", False, "2026-03-01T12:00:00Z"),
    ("will-bitcoin-close-above-150k-on-june-30-2026", "Will Bitcoin close above $150,000 on 30 June 2026?",
     "bitcoin-price-june-2026", "0.25", False, "2026-06-30T23:59:59Z"),
    ("will-the-fed-cut-rates-in-march-2026", "Will the Fed cut rates at its March 2026 meeting?",
     "fed-decision-march-2026", "0.62", False, "2026-03-18T18:00:00Z"),
    ("will-arsenal-win-the-2025-26-champions-league", "Will Arsenal win the 2025-26 Champions League?",
     "champions-league-winner-2025-26", "0.18", True, "2026-05-30T21:00:00Z"),
)
#: Seeded depth per level, best level first (shares).
SEED_DEPTH = (100, 200, 300, 400, 500)
TICK = "0.01"
MIN_ORDER_SIZE = 5


class ApiError(Exception):
    """An error the exchange answers as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def condition_id(slug: str) -> str:
    return "0x" + keccak(text=f"tickloop-paper:{slug}").hex()


def token_id(condition: str, index: int) -> str:
    """An outcome token id: a uint256 as a decimal string, like the real ones."""
    return str(int.from_bytes(keccak(bytes.fromhex(condition[2:]) + bytes([index])), "big"))


def _dec(value: Any, what: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ApiError(400, f"Invalid payload: {what} must be a number, got {value!r}") from None
    if not out.is_finite():
        raise ApiError(400, f"Invalid payload: {what} must be a finite number, got {value!r}")
    return out


def _units(raw: int) -> str:
    """Raw 6-decimal units as a decimal string (``12500000`` -> ``"12.5"``)."""
    text = format((Decimal(raw) / UNIT).normalize(), "f")
    return "0" if text in ("-0", "") else text


def _price_text(price: Decimal) -> str:
    return format(price.normalize(), "f")


def _ladder(mid: Decimal, tick: Decimal) -> tuple[list[list[Any]], list[list[Any]]]:
    """Seeded book around ``mid``: (bids, asks), best level first, sizes in raw shares."""
    bids, asks = [], []
    for k, depth in enumerate(SEED_DEPTH, start=1):
        bid, ask = mid - tick * k, mid + tick * k
        if bid >= tick:
            bids.append([_price_text(bid), depth * UNIT])
        if ask <= 1 - tick:
            asks.append([_price_text(ask), depth * UNIT])
    return bids, asks


class PolymarketPaper:
    """The paper exchange's two apps: :meth:`clob` (CLOB host) and :meth:`data` (Data API host)."""

    def __init__(self, state: ExchangeState, faults: Faults | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.faults = faults or Faults()
        self.clock = clock

    # -- the fresh document ----------------------------------------------------------------------

    @staticmethod
    def initial_state() -> dict[str, Any]:
        markets: dict[str, Any] = {}
        books: dict[str, Any] = {}
        tick = Decimal(TICK)
        for slug, question, event, yes_price, neg_risk, end in SEED_MARKETS:
            cid = condition_id(slug)
            yes, no = token_id(cid, 0), token_id(cid, 1)
            p = Decimal(yes_price)
            markets[cid] = {
                "condition_id": cid, "question_id": "0x" + keccak(text=f"question:{slug}").hex(),
                "question": question, "description": f"Paper market: {question}", "market_slug": slug,
                "event_slug": event, "end_date_iso": end, "icon": "", "image": "",
                "minimum_order_size": MIN_ORDER_SIZE, "minimum_tick_size": TICK, "neg_risk": neg_risk,
                "neg_risk_market_id": ("0x" + keccak(text=f"event:{event}").hex()) if neg_risk else "",
                "active": True, "closed": False, "accepting_orders": True, "enable_order_book": True,
                "archived": False, "resolved": False, "winner": None,
                "tokens": [{"token_id": yes, "outcome": "Yes", "price": _price_text(p), "winner": False},
                           {"token_id": no, "outcome": "No", "price": _price_text(1 - p), "winner": False}],
            }
            for tid, mid in ((yes, p), (no, 1 - p)):
                bids, asks = _ladder(mid, tick)
                books[tid] = {"bids": bids, "asks": asks, "last_trade_price": _price_text(mid)}
        return {"version": 1, "secret": secrets.token_hex(32), "markets": markets, "books": books,
                "accounts": {}, "keys": {}, "orders": {}, "trades": []}

    # -- the two apps ----------------------------------------------------------------------------

    def clob(self, request: Request) -> Response:
        """The CLOB host."""
        try:
            return self._clob(request)
        except ApiError as exc:
            return Response.json({"error": exc.message}, exc.status)

    def data(self, request: Request) -> Response:
        """The Data API host."""
        try:
            if request.method == "GET" and request.path in ("/positions", "/v1/positions"):
                return Response.json(self._positions(request))
            if request.method == "GET" and request.path == "/value":
                user = (request.query.get("user") or "").lower()
                rows = self._positions(request) if user else []
                return Response.json([{"user": user, "value": round(sum(r["currentValue"] for r in rows), 6)}])
            raise ApiError(404, f"not found: {request.method} {request.path}")
        except ApiError as exc:
            return Response.json({"error": exc.message}, exc.status)

    def _clob(self, r: Request) -> Response:
        m, path, q = r.method, r.path, r.query
        if m == "GET":
            if path in ("/", "/ok"):
                return Response.json("OK")
            if path == "/version":
                return Response.json({"version": 2})
            if path == "/time":
                return Response.json(int(self.clock()))
            if path in ("/markets", "/sampling-markets"):
                doc = self.state.read()
                data = [self._market_view(doc, mk) for mk in doc["markets"].values()]
                return Response.json({"limit": len(data), "count": len(data), "next_cursor": END_CURSOR, "data": data})
            if path.startswith("/markets/"):
                doc = self.state.read()
                return Response.json(self._market_view(doc, self._market(doc, path[len("/markets/"):])))
            if path.startswith("/markets-by-token/"):
                doc = self.state.read()
                tid = path[len("/markets-by-token/"):]
                mk = self._market_of(doc, tid)
                other = [t["token_id"] for t in mk["tokens"] if t["token_id"] != tid]
                return Response.json({"condition_id": mk["condition_id"], "primary_token_id": mk["tokens"][0]["token_id"],
                                      "secondary_token_id": other[0] if other else ""})
            if path.startswith("/clob-markets/"):
                doc = self.state.read()
                mk = self._market(doc, path[len("/clob-markets/"):])
                return Response.json({"c": mk["condition_id"], "t": [{"t": t["token_id"], "o": t["outcome"]}
                                                                     for t in mk["tokens"]],
                                      "mts": float(mk["minimum_tick_size"]), "mos": mk["minimum_order_size"],
                                      "nr": mk["neg_risk"], "fd": {"r": 0, "e": 0}, "c_o": mk["closed"]})
            if path == "/book":
                doc = self.state.read()
                return Response.json(self._book_view(doc, self._token_param(q)))
            if path == "/tick-size":
                doc = self.state.read()
                return Response.json({"minimum_tick_size": float(self._market_of(doc, self._token_param(q))["minimum_tick_size"])})
            if path == "/neg-risk":
                doc = self.state.read()
                return Response.json({"neg_risk": self._market_of(doc, self._token_param(q))["neg_risk"]})
            if path == "/fee-rate":
                doc = self.state.read()
                self._market_of(doc, self._token_param(q))
                return Response.json({"base_fee": 0})
            if path == "/midpoint":
                doc = self.state.read()
                tid = self._token_param(q)
                self._open_book(doc, tid)
                return Response.json({"mid": _price_text(self._mid(doc, tid))})
            if path == "/price":
                doc = self.state.read()
                tid = self._token_param(q)
                side = (q.get("side") or "").upper()
                if side not in ("BUY", "SELL"):
                    raise ApiError(400, "Invalid side")
                book = self._open_book(doc, tid)
                levels = book["asks"] if side == "BUY" else book["bids"]
                if not levels:
                    raise ApiError(404, NO_BOOK)
                return Response.json({"price": levels[0][0]})
            if path == "/last-trade-price":
                doc = self.state.read()
                book = self._open_book(doc, self._token_param(q))
                return Response.json({"price": book["last_trade_price"], "side": ""})
            if path == "/auth/derive-api-key":
                return Response.json(self._api_key(r, create=False))
            if path == "/auth/api-keys":
                with self.state.transaction() as doc:
                    address, _ = self._l2(r, doc)
                    return Response.json({"apiKeys": [k for k, v in doc["keys"].items() if v["address"] == address]})
            if path == "/data/orders":
                with self.state.transaction() as doc:
                    address, _ = self._l2(r, doc)
                    self._expire(doc)
                    found = [self._order_view(o) for o in doc["orders"].values()
                             if o["maker_address"] == address and o["status"] == "LIVE"
                             and (not q.get("id") or o["id"] == q["id"])
                             and (not q.get("market") or o["market"] == q["market"])
                             and (not q.get("asset_id") or o["asset_id"] == q["asset_id"])]
                    return Response.json({"data": found, "next_cursor": END_CURSOR, "limit": 500, "count": len(found)})
            if path.startswith("/data/order/"):
                with self.state.transaction() as doc:
                    address, _ = self._l2(r, doc)
                    self._expire(doc)
                    order = doc["orders"].get(path[len("/data/order/"):])
                    if order is None or order["maker_address"] != address:
                        raise ApiError(404, "order not found")
                    return Response.json(self._order_view(order))
            if path == "/data/trades":
                with self.state.transaction() as doc:
                    address, _ = self._l2(r, doc)
                    found = [t for t in doc["trades"] if t["maker_address"] == address
                             and (not q.get("id") or t["id"] == q["id"])
                             and (not q.get("market") or t["market"] == q["market"])
                             and (not q.get("asset_id") or t["asset_id"] == q["asset_id"])]
                    return Response.json({"data": found, "next_cursor": END_CURSOR, "limit": 500, "count": len(found)})
            if path in ("/balance-allowance", "/balance-allowance/update"):
                with self.state.transaction() as doc:
                    address, _ = self._l2(r, doc)
                    return Response.json(self._balance_allowance(doc, address, q))
            if path == "/paper/balance":
                doc = self.state.read()
                account = doc["accounts"].get((q.get("address") or "").lower())
                if account is None:
                    return Response.json({"address": q.get("address"), "pusd": "0", "tokens": {}, "funded": False})
                return Response.json({"address": q.get("address"), "pusd": str(account["pusd"]),
                                      "tokens": {t: str(v) for t, v in account["tokens"].items()}, "funded": True})
            if path == "/paper/state":
                return Response.json(self.state.read())
        elif m == "POST":
            if path == "/auth/api-key":
                return Response.json(self._api_key(r, create=True))
            if path == "/order":
                with self.state.transaction() as doc:
                    address, api_key = self._l2(r, doc)
                    self._expire(doc)
                    return Response.json(self._post_order(doc, address, api_key, r.body))
            if path == "/orders":
                # One transaction per order: each answers on its own, as the real batch endpoint does.
                with self.state.transaction() as doc:
                    address, api_key = self._l2(r, doc)
                if not isinstance(r.body, list):
                    raise ApiError(400, "Invalid order payload")
                answers = []
                for item in r.body:
                    try:
                        with self.state.transaction() as doc:
                            self._expire(doc)
                            answers.append(self._post_order(doc, address, api_key, item))
                    except ApiError as exc:
                        answers.append({"success": False, "errorMsg": exc.message, "orderID": "", "status": "",
                                        "takingAmount": "", "makingAmount": "", "transactionsHashes": [],
                                        "tradeIDs": []})
                return Response.json(answers)
            if path == "/books":
                doc = self.state.read()
                items = r.body if isinstance(r.body, list) else []
                return Response.json([self._book_view(doc, str(i.get("token_id", ""))) for i in items
                                      if isinstance(i, dict)])
            if path == "/v1/heartbeats":
                with self.state.transaction() as doc:
                    self._l2(r, doc)
                return Response.json({"heartbeat_id": (r.body or {}).get("heartbeat_id") or str(uuid.uuid4())})
            if path == "/paper/fund":
                return Response.json(self._fund(r.body))
            if path == "/paper/resolve":
                return Response.json(self._resolve(r.body))
            if path == "/paper/redeem":
                return Response.json(self._redeem(r.body))
            if path == "/paper/book":
                return Response.json(self._set_book(r.body))
        elif m == "DELETE":
            if path in ("/order", "/orders", "/cancel-all", "/cancel-market-orders"):
                with self.state.transaction() as doc:
                    address, _ = self._l2(r, doc)
                    self._expire(doc)
                    return Response.json(self._cancel(doc, address, path, r.body))
        raise ApiError(404, f"not found: {m} {path}")

    # -- lookups ---------------------------------------------------------------------------------

    @staticmethod
    def _token_param(q: dict[str, str]) -> str:
        tid = q.get("token_id") or ""
        if not tid.isdigit():
            raise ApiError(400, "Invalid token id")
        return tid

    @staticmethod
    def _market(doc: dict[str, Any], cid: str) -> dict[str, Any]:
        mk = doc["markets"].get(cid) or doc["markets"].get(cid.lower())
        if mk is None:
            raise ApiError(404, "market not found")
        return mk

    @staticmethod
    def _market_of(doc: dict[str, Any], tid: str) -> dict[str, Any]:
        for mk in doc["markets"].values():
            if any(t["token_id"] == tid for t in mk["tokens"]):
                return mk
        raise ApiError(404, "market not found")

    def _open_book(self, doc: dict[str, Any], tid: str) -> dict[str, Any]:
        """The token's book; 404 when the token is unknown or its market closed."""
        book = doc["books"].get(tid)
        if book is None:
            raise ApiError(404, NO_BOOK)
        return book

    def _mid(self, doc: dict[str, Any], tid: str) -> Decimal:
        """Midpoint of the book (one side alone, else the last trade, when a side is empty)."""
        book = doc["books"].get(tid)
        if book is None:
            mk = self._market_of(doc, tid)
            token = next(t for t in mk["tokens"] if t["token_id"] == tid)
            return Decimal(1) if token["winner"] else Decimal(0) if mk["resolved"] else Decimal(token["price"])
        bid = Decimal(book["bids"][0][0]) if book["bids"] else None
        ask = Decimal(book["asks"][0][0]) if book["asks"] else None
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return bid if bid is not None else ask if ask is not None else Decimal(book["last_trade_price"])

    def _market_view(self, doc: dict[str, Any], mk: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in mk.items() if k not in ("resolved", "winner", "event_slug")}
        view["tokens"] = [{**t, "price": float(self._mid(doc, t["token_id"]))} for t in mk["tokens"]]
        view["minimum_tick_size"] = float(mk["minimum_tick_size"])
        view["rewards"] = {"rates": None, "min_size": 0, "max_spread": 0}
        view["tags"] = [mk["event_slug"]]
        return view

    def _book_view(self, doc: dict[str, Any], tid: str) -> dict[str, Any]:
        book = self._open_book(doc, tid)
        mk = self._market_of(doc, tid)
        view = {
            "market": mk["condition_id"], "asset_id": tid, "timestamp": str(int(self.clock() * 1000)), "hash": "",
            # The REST book lists the best price last: bids ascending, asks descending.
            "bids": [{"price": p, "size": _units(s)} for p, s in reversed(book["bids"])],
            "asks": [{"price": p, "size": _units(s)} for p, s in reversed(book["asks"])],
            "min_order_size": str(mk["minimum_order_size"]), "tick_size": mk["minimum_tick_size"],
            "neg_risk": mk["neg_risk"], "last_trade_price": book["last_trade_price"],
        }
        view["hash"] = hashlib.sha1(json.dumps(view, separators=(",", ":")).encode()).hexdigest()
        return view

    # -- auth ------------------------------------------------------------------------------------

    def _api_key(self, r: Request, *, create: bool) -> dict[str, str]:
        h = r.headers
        address, signature = h.get("poly_address", ""), h.get("poly_signature", "")
        timestamp, nonce_text = h.get("poly_timestamp", ""), h.get("poly_nonce", "0")
        try:
            nonce = int(nonce_text)
            typed = {"types": _CLOB_AUTH_TYPES, "primaryType": "ClobAuth",
                     "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": CHAIN_ID},
                     "message": {"address": to_checksum_address(address), "timestamp": timestamp, "nonce": nonce,
                                 "message": CLOB_AUTH_MESSAGE}}
            signer = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
        except Exception:
            raise ApiError(401, BAD_L1) from None
        if signer.lower() != address.lower() or not timestamp.isdigit():
            raise ApiError(401, BAD_L1)
        with self.state.transaction() as doc:
            creds = self._derive(doc, address.lower(), nonce)
            exists = creds["apiKey"] in doc["keys"]
            if create and exists:
                raise ApiError(400, "Could not create api key")
            if not create and not exists:
                raise ApiError(400, "Could not derive api key!")
            doc["keys"][creds["apiKey"]] = {"address": address.lower(), "secret": creds["secret"],
                                            "passphrase": creds["passphrase"], "nonce": nonce}
            return creds

    @staticmethod
    def _derive(doc: dict[str, Any], address: str, nonce: int) -> dict[str, str]:
        seed = bytes.fromhex(doc["secret"])

        def mac(label: str) -> bytes:
            return hmac.new(seed, f"{address}:{nonce}:{label}".encode(), hashlib.sha256).digest()

        return {"apiKey": str(uuid.UUID(bytes=mac("key")[:16])),
                "secret": base64.urlsafe_b64encode(mac("secret")).decode(),
                "passphrase": mac("passphrase").hex()}

    @staticmethod
    def _l2(r: Request, doc: dict[str, Any]) -> tuple[str, str]:
        """Check the L2 headers; returns (address, api key)."""
        h = r.headers
        key = doc["keys"].get(h.get("poly_api_key", ""))
        address = h.get("poly_address", "").lower()
        if key is None or key["address"] != address or not hmac.compare_digest(
                h.get("poly_passphrase", "").encode(), key["passphrase"].encode()):
            raise ApiError(401, UNAUTHORIZED)
        message = h.get("poly_timestamp", "") + r.method + r.path
        if r.raw:
            message += r.raw.decode("utf-8", "replace").replace("'", '"')
        expected = base64.urlsafe_b64encode(
            hmac.new(base64.urlsafe_b64decode(key["secret"]), message.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected.encode(), h.get("poly_signature", "").encode()):
            raise ApiError(401, UNAUTHORIZED)
        return address, h["poly_api_key"]

    # -- accounts --------------------------------------------------------------------------------

    @staticmethod
    def _account(doc: dict[str, Any], address: str) -> dict[str, Any]:
        return doc["accounts"].setdefault(address.lower(), {"pusd": 0, "tokens": {}, "cost": {}, "bought": {},
                                                            "realized": {}})

    @staticmethod
    def _reserved(doc: dict[str, Any], address: str, asset: str) -> int:
        """What the address's live orders reserve of ``asset`` ("pusd" or a token id)."""
        return sum(o["_reserved"] for o in doc["orders"].values()
                   if o["status"] == "LIVE" and o["maker_address"] == address and o["_reserve_asset"] == asset)

    def _balance_allowance(self, doc: dict[str, Any], address: str, q: dict[str, str]) -> dict[str, Any]:
        account = self._account(doc, address)
        if (q.get("asset_type") or "COLLATERAL").upper() == "CONDITIONAL":
            balance = account["tokens"].get(q.get("token_id") or "", 0)
        else:
            balance = account["pusd"]
        unlimited = str(2**256 - 1)
        return {"balance": str(balance), "allowances": {EXCHANGE_V2: unlimited, NEG_RISK_EXCHANGE_V2: unlimited}}

    @staticmethod
    def _trade(account: dict[str, Any], tid: str, shares: int, usd: int) -> None:
        """Book one fill on an account: ``shares`` > 0 bought for ``usd``, < 0 sold for ``usd``."""
        held = account["tokens"].get(tid, 0)
        cost = account["cost"].get(tid, 0)
        if shares > 0:
            account["pusd"] -= usd
            account["tokens"][tid] = held + shares
            account["cost"][tid] = cost + usd
            account["bought"][tid] = account["bought"].get(tid, 0) + shares
        else:
            sold = -shares
            basis = cost * sold // held if held else 0
            account["pusd"] += usd
            account["realized"][tid] = account["realized"].get(tid, 0) + usd - basis
            left = held - sold
            if left > 0:
                account["tokens"][tid] = left
                account["cost"][tid] = cost - basis
            else:
                account["tokens"].pop(tid, None)
                account["cost"].pop(tid, None)

    # -- orders ----------------------------------------------------------------------------------

    def _post_order(self, doc: dict[str, Any], address: str, api_key: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
            raise ApiError(400, "Invalid order payload")
        if body.get("owner") != api_key:
            raise ApiError(400, "the order owner has to be the owner of the API KEY")
        order = body["order"]
        if "timestamp" not in order and any(k in order for k in ("nonce", "feeRateBps", "taker")):
            raise ApiError(400, "order_version_mismatch")
        missing = [k for k in _V2_FIELDS if k not in order]
        if missing:
            raise ApiError(400, f"Invalid order payload: missing {', '.join(missing)}")
        order_type = str(body.get("orderType") or "GTC").upper()
        if order_type not in ORDER_TYPES:
            raise ApiError(400, f"Invalid order payload: orderType must be one of {', '.join(ORDER_TYPES)}")
        post_only = bool(body.get("postOnly"))
        if post_only and order_type in ("FOK", "FAK"):
            raise ApiError(400, "Invalid order payload: postOnly is not allowed for FOK and FAK orders")
        tid = str(order["tokenId"])
        mk = self._market_of(doc, tid) if tid.isdigit() else None
        if mk is None:
            raise ApiError(400, "Invalid order payload: unknown tokenId")
        if mk["closed"] or tid not in doc["books"]:
            raise ApiError(400, f"{NO_BOOK}: the market is closed")
        side_value = order["side"]
        side = {"BUY": "BUY", "SELL": "SELL", 0: "BUY", 1: "SELL", "0": "BUY", "1": "SELL"}.get(
            side_value.upper() if isinstance(side_value, str) else side_value)
        if side is None:
            raise ApiError(400, "Invalid order payload: side must be BUY or SELL")
        try:
            signature_type = int(order["signatureType"])
            maker_amount, taker_amount = int(order["makerAmount"]), int(order["takerAmount"])
            typed = {
                "types": _ORDER_V2_TYPES, "primaryType": "Order",
                "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": CHAIN_ID,
                           "verifyingContract": NEG_RISK_EXCHANGE_V2 if mk["neg_risk"] else EXCHANGE_V2},
                "message": {"salt": int(order["salt"]), "maker": to_checksum_address(order["maker"]),
                            "signer": to_checksum_address(order["signer"]), "tokenId": int(tid),
                            "makerAmount": maker_amount, "takerAmount": taker_amount,
                            "side": 0 if side == "BUY" else 1, "signatureType": signature_type,
                            "timestamp": int(order["timestamp"]),
                            "metadata": bytes.fromhex(str(order["metadata"]).removeprefix("0x").zfill(64)),
                            "builder": bytes.fromhex(str(order["builder"]).removeprefix("0x").zfill(64))},
            }
            signable = encode_typed_data(full_message=typed)
        except (TypeError, ValueError):
            raise ApiError(400, "Invalid order payload") from None
        if signature_type != 0:
            raise ApiError(400, "Invalid order payload: the paper exchange accepts signature type 0 (EOA) only")
        try:
            recovered = Account.recover_message(signable, signature=order["signature"])
        except Exception:
            raise ApiError(400, "invalid signature") from None
        if recovered.lower() != str(order["signer"]).lower() or recovered.lower() != str(order["maker"]).lower():
            raise ApiError(400, "invalid signature")
        if recovered.lower() != address:
            raise ApiError(400, "the order signer address has to be the address of the API KEY")
        order_id = "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()
        if order_id in doc["orders"]:
            raise ApiError(400, f"order {order_id} is invalid. Duplicated.")
        if maker_amount <= 0 or taker_amount <= 0:
            raise ApiError(400, "Invalid order payload: amounts must be positive")
        expiration = int(str(order.get("expiration") or "0") or 0)
        if order_type == "GTD" and expiration <= self.clock():
            raise ApiError(400, "invalid expiration: a GTD order needs an expiration in the future")

        tick = Decimal(mk["minimum_tick_size"])
        ratio = Decimal(maker_amount) / Decimal(taker_amount) if side == "BUY" else \
            Decimal(taker_amount) / Decimal(maker_amount)
        limit = ratio.quantize(tick, rounding=ROUND_HALF_EVEN)
        if abs(ratio - limit) > tick / 100:
            raise ApiError(400, f"order price ({ratio:.6f}) breaks the minimum tick size rule: {mk['minimum_tick_size']}")
        if not tick <= limit <= 1 - tick:
            raise ApiError(400, f"order is invalid. Price ({_price_text(limit)}), min: {_price_text(tick)} - max:"
                                f" {_price_text(1 - tick)}")
        shares = taker_amount if side == "BUY" else maker_amount
        if shares < mk["minimum_order_size"] * UNIT:
            raise ApiError(400, f"Size ({_units(shares)}) lower than the minimum: {mk['minimum_order_size']}")

        account = self._account(doc, address)
        if side == "BUY":
            available = account["pusd"] - self._reserved(doc, address, "pusd")
            needed = maker_amount
        else:
            available = account["tokens"].get(tid, 0) - self._reserved(doc, address, tid)
            needed = maker_amount
        if available < needed:
            raise ApiError(400, NO_BALANCE)

        book = doc["books"][tid]
        levels = book["asks"] if side == "BUY" else book["bids"]
        crossing = [lvl for lvl in levels if (Decimal(lvl[0]) <= limit if side == "BUY" else Decimal(lvl[0]) >= limit)]
        if post_only and crossing:
            raise ApiError(400, "invalid post-only order: order crosses book")
        by_budget = side == "BUY" and order_type in ("FOK", "FAK")
        quantity = maker_amount if by_budget else shares  # pUSD for market buys, else shares
        cap = quantity
        if crossing and order_type in ("FOK", "FAK") and self.faults.take("no_match", "/order") is not None:
            crossing = []
        if crossing:
            partial = self.faults.take("partial_fill", "/order")
            if partial is not None:
                fraction = Decimal(str(partial.params.get("fraction", 0.5)))
                cap = int(Decimal(quantity) * fraction)
                if not by_budget:
                    cap -= cap % LOT  # shares trade in lots

        fills: list[tuple[str, int, int]] = []  # (price, shares, usd)
        remaining = cap
        spent = False  # a market buy stopped because its budget ran out (not the liquidity)
        for lvl in crossing:
            price = Decimal(lvl[0])
            if by_budget:
                affordable = int(Decimal(remaining) / (price * LOT)) * LOT
                take = min(lvl[1], affordable)
                spent = affordable < lvl[1]
            else:
                take = min(lvl[1], remaining)
            if take > 0:
                usd = int((price * take).to_integral_value(ROUND_HALF_EVEN))
                fills.append((lvl[0], take, usd))
                remaining -= usd if by_budget else take
            if spent or (not by_budget and remaining <= 0):
                break
        if by_budget and fills and remaining < Decimal(fills[-1][0]) * LOT:
            spent = True
        complete = cap == quantity and (spent if by_budget else remaining == 0)
        if order_type == "FOK" and not complete:
            raise ApiError(400, FOK_UNFILLED)
        if order_type == "FAK" and not fills:
            raise ApiError(400, FAK_UNMATCHED)

        now = int(self.clock())
        matched_shares = sum(f[1] for f in fills)
        matched_usd = sum(f[2] for f in fills)
        trade_ids, hashes = [], []
        if fills:
            # Consume the book, then book the fill on the account as one trade.
            for price, take, _ in fills:
                for lvl in levels:
                    if lvl[0] == price:
                        lvl[1] -= take
                        break
            levels[:] = [lvl for lvl in levels if lvl[1] > 0]
            book["last_trade_price"] = fills[-1][0]
            self._trade(account, tid, matched_shares if side == "BUY" else -matched_shares, matched_usd)
            trade_id = str(uuid.uuid4())
            tx_hash = "0x" + keccak(text=f"tx:{trade_id}").hex()
            trade_ids, hashes = [trade_id], [tx_hash]
            outcome = next(t["outcome"] for t in mk["tokens"] if t["token_id"] == tid)
            doc["trades"].append({
                "id": trade_id, "taker_order_id": order_id, "market": mk["condition_id"], "asset_id": tid,
                "side": side, "size": _units(matched_shares),
                "price": _price_text(Decimal(matched_usd) / Decimal(matched_shares)), "fee_rate_bps": "0",
                "status": "CONFIRMED", "match_time": str(now), "last_update": str(now), "outcome": outcome,
                "owner": api_key, "maker_address": address, "transaction_hash": tx_hash, "bucket_index": 0,
                "type": "TAKER", "trader_side": "TAKER", "maker_orders": [],
            })
            del doc["trades"][:-KEEP_DONE]

        rest = order_type in ("GTC", "GTD") and matched_shares < shares
        status = "live" if rest else "matched" if fills else "unmatched"
        left = shares - matched_shares
        outcome = next(t["outcome"] for t in mk["tokens"] if t["token_id"] == tid)
        doc["orders"][order_id] = {
            "id": order_id, "status": "LIVE" if rest else "MATCHED" if fills else "UNMATCHED", "owner": api_key,
            "maker_address": address, "market": mk["condition_id"], "asset_id": tid, "side": side,
            "original_size": _units(shares), "size_matched": _units(matched_shares), "price": _price_text(limit),
            "outcome": outcome, "expiration": str(expiration), "order_type": order_type, "created_at": now,
            "associate_trades": trade_ids,
            "_reserve_asset": ("pusd" if side == "BUY" else tid) if rest else "",
            "_reserved": (int((limit * left).to_integral_value(ROUND_DOWN)) + 1 if side == "BUY" else left) if rest else 0,
            "_remaining": left if rest else 0,
        }
        self._prune(doc)
        making, taking = (matched_usd, matched_shares) if side == "BUY" else (matched_shares, matched_usd)
        return {"success": True, "errorMsg": "", "orderID": order_id, "status": status,
                "makingAmount": _units(making), "takingAmount": _units(taking),
                "transactionsHashes": hashes, "tradeIDs": trade_ids}

    @staticmethod
    def _order_view(order: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in order.items() if not k.startswith("_")}

    def _expire(self, doc: dict[str, Any]) -> None:
        now = self.clock()
        for order in doc["orders"].values():
            if order["status"] == "LIVE" and order["order_type"] == "GTD" and 0 < int(order["expiration"]) <= now:
                order["status"], order["_reserved"] = "EXPIRED", 0

    @staticmethod
    def _prune(doc: dict[str, Any]) -> None:
        done = [oid for oid, o in doc["orders"].items() if o["status"] != "LIVE"]
        for oid in done[:-KEEP_DONE]:
            del doc["orders"][oid]

    def _cancel(self, doc: dict[str, Any], address: str, path: str, body: Any) -> dict[str, Any]:
        mine = {oid: o for oid, o in doc["orders"].items() if o["maker_address"] == address}
        if path == "/order":
            if not isinstance(body, dict) or not body.get("orderID"):
                raise ApiError(400, "Invalid payload: orderID is required")
            wanted = [str(body["orderID"])]
        elif path == "/orders":
            if not isinstance(body, list):
                raise ApiError(400, "Invalid payload: a list of order ids is required")
            wanted = [str(i) for i in body]
        elif path == "/cancel-all":
            wanted = [oid for oid, o in mine.items() if o["status"] == "LIVE"]
        else:
            body = body if isinstance(body, dict) else {}
            wanted = [oid for oid, o in mine.items() if o["status"] == "LIVE"
                      and (not body.get("market") or o["market"] == body["market"])
                      and (not body.get("asset_id") or o["asset_id"] == body["asset_id"])]
        canceled, not_canceled = [], {}
        for oid in wanted:
            order = mine.get(oid)
            if order is None:
                not_canceled[oid] = "order not found"
            elif order["status"] != "LIVE":
                not_canceled[oid] = "order can't be canceled: it is " + order["status"].lower()
            else:
                order["status"], order["_reserved"] = "CANCELED", 0
                canceled.append(oid)
        return {"canceled": canceled, "not_canceled": not_canceled}

    # -- the Data API ----------------------------------------------------------------------------

    def _positions(self, r: Request) -> list[dict[str, Any]]:
        q = r.query
        user = (q.get("user") or "").lower()
        if not user:
            raise ApiError(400, "user is required")
        threshold = _dec(q.get("sizeThreshold") or "1", "sizeThreshold")
        markets = {m.strip().lower() for m in (q.get("market") or "").split(",") if m.strip()}
        redeemable = (q.get("redeemable") or "").lower()
        limit = int(q.get("limit") or 100)
        offset = int(q.get("offset") or 0)
        doc = self.state.read()
        account = doc["accounts"].get(user)
        rows = []
        for tid, held in (account or {}).get("tokens", {}).items():
            size = Decimal(held) / UNIT
            if held <= 0 or size < threshold:
                continue
            mk = self._market_of(doc, tid)
            if markets and mk["condition_id"].lower() not in markets:
                continue
            if redeemable in ("true", "false") and mk["resolved"] != (redeemable == "true"):
                continue
            index = next(i for i, t in enumerate(mk["tokens"]) if t["token_id"] == tid)
            opposite = mk["tokens"][1 - index]
            cost = Decimal(account["cost"].get(tid, 0)) / UNIT
            price = self._mid(doc, tid)
            value = size * price
            rows.append({
                "proxyWallet": user, "asset": tid, "conditionId": mk["condition_id"], "size": float(size),
                "avgPrice": float(cost / size) if size else 0.0, "initialValue": float(cost),
                "currentValue": float(value), "cashPnl": float(value - cost),
                "percentPnl": float((value - cost) / cost * 100) if cost else 0.0,
                "totalBought": float(Decimal(account["bought"].get(tid, 0)) / UNIT),
                "realizedPnl": float(Decimal(account["realized"].get(tid, 0)) / UNIT),
                "percentRealizedPnl": 0.0, "curPrice": float(price), "redeemable": mk["resolved"],
                "mergeable": not mk["resolved"] and account["tokens"].get(opposite["token_id"], 0) > 0,
                "title": mk["question"], "slug": mk["market_slug"], "icon": mk["icon"], "eventSlug": mk["event_slug"],
                "outcome": mk["tokens"][index]["outcome"], "outcomeIndex": index,
                "oppositeOutcome": opposite["outcome"], "oppositeAsset": opposite["token_id"],
                "endDate": mk["end_date_iso"][:10], "negativeRisk": mk["neg_risk"],
            })
        rows.sort(key=lambda row: -row["currentValue"])
        return rows[offset:offset + limit]

    # -- paper control ---------------------------------------------------------------------------

    def _fund(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("address"):
            raise ApiError(400, "Invalid payload: address is required")
        address = str(body["address"]).lower()
        pusd = int(_dec(body.get("pusd", 0), "pusd") * UNIT)
        tokens = body.get("tokens") or {}
        if pusd < 0 or not isinstance(tokens, dict):
            raise ApiError(400, "Invalid payload: pusd must be 0 or more, tokens a mapping of token id to shares")
        with self.state.transaction() as doc:
            funded = not (body.get("initial") and address in doc["accounts"])
            account = self._account(doc, address)
            if funded:
                account["pusd"] += pusd
                for tid, shares in tokens.items():
                    mk = self._market_of(doc, str(tid))
                    raw = int(_dec(shares, "shares") * UNIT)
                    price = self._mid(doc, str(tid)) if not mk["resolved"] else Decimal(0)
                    account["pusd"] += int(price * raw)  # given at the mid: cost basis without moving cash
                    self._trade(account, str(tid), raw, int(price * raw))
            return {"address": address, "pusd": _units(account["pusd"]), "funded": funded}

    def _resolve(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("condition_id") or not body.get("winner"):
            raise ApiError(400, "Invalid payload: condition_id and winner are required")
        with self.state.transaction() as doc:
            mk = self._market(doc, str(body["condition_id"]))
            winner = str(body["winner"])
            token = next((t for t in mk["tokens"] if winner in (t["token_id"], t["outcome"])), None)
            if token is None:
                raise ApiError(400, f"winner must be one of the outcomes {[t['outcome'] for t in mk['tokens']]}"
                                    " or their token ids")
            mk.update(closed=True, active=False, accepting_orders=False, resolved=True, winner=token["token_id"])
            for t in mk["tokens"]:
                t["winner"] = t["token_id"] == token["token_id"]
                t["price"] = "1" if t["winner"] else "0"
                doc["books"].pop(t["token_id"], None)
            for order in doc["orders"].values():
                if order["market"] == mk["condition_id"] and order["status"] == "LIVE":
                    order["status"], order["_reserved"] = "CANCELED", 0
            return {"condition_id": mk["condition_id"], "winner": token["token_id"], "outcome": token["outcome"]}

    def _redeem(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("address") or not isinstance(body.get("token_ids"), list):
            raise ApiError(400, "Invalid payload: address and token_ids are required")
        address = str(body["address"]).lower()
        amounts = body.get("amounts") or {}
        redeemed, skipped = [], []
        with self.state.transaction() as doc:
            account = self._account(doc, address)
            for tid in (str(t) for t in body["token_ids"]):
                try:
                    mk = self._market_of(doc, tid)
                except ApiError:
                    skipped.append({"tokenId": tid, "reason": "unknown token id"})
                    continue
                if not mk["resolved"]:
                    skipped.append({"tokenId": tid, "reason": "the market is not resolved"})
                    continue
                held = account["tokens"].get(tid, 0)
                shares = min(held, int(_dec(amounts[tid], "amount") * UNIT)) if tid in amounts else held
                if shares <= 0:
                    skipped.append({"tokenId": tid, "reason": "no shares to redeem"})
                    continue
                won = mk["winner"] == tid
                payout = shares if won else 0
                self._trade(account, tid, -shares, payout)
                redeemed.append({"tokenId": tid, "conditionId": mk["condition_id"], "shares": _units(shares),
                                 "payout": _units(payout), "won": won,
                                 "transactionHash": "0x" + keccak(text=f"redeem:{uuid.uuid4()}").hex()})
        return {"redeemed": redeemed, "skipped": skipped}

    def _set_book(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("token_id"):
            raise ApiError(400, "Invalid payload: token_id is required")
        tid = str(body["token_id"])
        with self.state.transaction() as doc:
            mk = self._market_of(doc, tid)
            if mk["closed"]:
                raise ApiError(400, "the market is resolved; it has no book")
            tick = Decimal(mk["minimum_tick_size"])
            if body.get("mid") is not None:
                mid = _dec(body["mid"], "mid").quantize(tick)
                if not tick < mid < 1:
                    raise ApiError(400, "mid must be inside (tick, 1)")
                # Both outcomes move together: No is priced at 1 - Yes.
                for t in mk["tokens"]:
                    m = mid if t["token_id"] == tid else 1 - mid
                    bids, asks = _ladder(m, tick)
                    doc["books"][t["token_id"]] = {"bids": bids, "asks": asks, "last_trade_price": _price_text(m)}
            else:
                book = doc["books"].setdefault(tid, {"bids": [], "asks": [], "last_trade_price": "0.5"})
                for name in ("bids", "asks"):
                    if name in body:
                        levels = []
                        for item in body[name]:
                            price, size = (item["price"], item["size"]) if isinstance(item, dict) else item
                            levels.append([_price_text(_dec(price, "price")), int(_dec(size, "size") * UNIT)])
                        levels.sort(key=lambda lvl: Decimal(lvl[0]), reverse=name == "bids")
                        book[name] = [lvl for lvl in levels if lvl[1] > 0]
            return self._book_view(doc, tid)
