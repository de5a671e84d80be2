"""The route tables of the two hosts, ``(method, path) -> handler``, and the CLOB's endpoint
handlers: each reads or locks the document, checks L1 or L2 auth where the CLOB does, and
answers the JSON body (errors raise :class:`ApiError`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tickloop_paper.polymarket import auth, control, positions
from tickloop_paper.polymarket.accounts import balance_allowance
from tickloop_paper.polymarket.markets import book_view, market, market_of, market_view, mid, open_book, token_param
from tickloop_paper.polymarket.orders import cancel, expire, order_view, post_order
from tickloop_paper.polymarket.wire import END_CURSOR, NO_BOOK, ApiError, price_text
from tickloop_paper.server import Request

if TYPE_CHECKING:
    from tickloop_paper.polymarket.app import PolymarketPaper

Handler = Callable[["PolymarketPaper", Request], Any]
ItemHandler = Callable[["PolymarketPaper", Request, str], Any]  # also gets the path's last part


@contextlib.contextmanager
def _signed_in(app: PolymarketPaper, r: Request) -> Iterator[tuple[dict[str, Any], str, str]]:
    """The document, locked, for a request with valid L2 headers: (doc, address, api key)."""
    with app.state.transaction() as doc:
        address, api_key = auth.l2(r, doc)
        yield doc, address, api_key


def _page(found: list[Any]) -> dict[str, Any]:
    return {"data": found, "next_cursor": END_CURSOR, "limit": 500, "count": len(found)}


def _asked(q: dict[str, str], item: dict[str, Any]) -> bool:
    """Whether an order or trade matches the query's ``id``, ``market`` and ``asset_id`` (those given)."""
    return all(not q.get(k) or item[k] == q[k] for k in ("id", "market", "asset_id"))


# -- markets and books ----------------------------------------------------------------------------


def _markets(app: PolymarketPaper, r: Request) -> Any:
    doc = app.state.read()
    data = [market_view(doc, mk) for mk in doc["markets"].values()]
    return {"limit": len(data), "count": len(data), "next_cursor": END_CURSOR, "data": data}


def _market(app: PolymarketPaper, r: Request, cid: str) -> Any:
    doc = app.state.read()
    return market_view(doc, market(doc, cid))


def _market_by_token(app: PolymarketPaper, r: Request, tid: str) -> Any:
    mk = market_of(app.state.read(), tid)
    other = [t["token_id"] for t in mk["tokens"] if t["token_id"] != tid]
    return {"condition_id": mk["condition_id"], "primary_token_id": mk["tokens"][0]["token_id"],
            "secondary_token_id": other[0] if other else ""}


def _clob_market(app: PolymarketPaper, r: Request, cid: str) -> Any:
    mk = market(app.state.read(), cid)
    return {"c": mk["condition_id"], "t": [{"t": t["token_id"], "o": t["outcome"]} for t in mk["tokens"]],
            "mts": float(mk["minimum_tick_size"]), "mos": mk["minimum_order_size"],
            "nr": mk["neg_risk"], "fd": {"r": 0, "e": 0}, "c_o": mk["closed"]}


def _book(app: PolymarketPaper, r: Request) -> Any:
    return book_view(app.state.read(), token_param(r.query), app.clock())


def _books(app: PolymarketPaper, r: Request) -> Any:
    doc = app.state.read()
    items = r.body if isinstance(r.body, list) else []
    return [book_view(doc, str(i.get("token_id", "")), app.clock()) for i in items if isinstance(i, dict)]


def _tick_size(app: PolymarketPaper, r: Request) -> Any:
    return {"minimum_tick_size": float(market_of(app.state.read(), token_param(r.query))["minimum_tick_size"])}


def _neg_risk(app: PolymarketPaper, r: Request) -> Any:
    return {"neg_risk": market_of(app.state.read(), token_param(r.query))["neg_risk"]}


def _fee_rate(app: PolymarketPaper, r: Request) -> Any:
    market_of(app.state.read(), token_param(r.query))  # 404 for an unknown token
    return {"base_fee": 0}


def _midpoint(app: PolymarketPaper, r: Request) -> Any:
    doc = app.state.read()
    tid = token_param(r.query)
    open_book(doc, tid)
    return {"mid": price_text(mid(doc, tid))}


def _price(app: PolymarketPaper, r: Request) -> Any:
    doc = app.state.read()
    tid = token_param(r.query)
    side = (r.query.get("side") or "").upper()
    if side not in ("BUY", "SELL"):
        raise ApiError(400, "Invalid side")
    book = open_book(doc, tid)
    levels = book["asks"] if side == "BUY" else book["bids"]
    if not levels:
        raise ApiError(404, NO_BOOK)
    return {"price": levels[0][0]}


def _last_trade_price(app: PolymarketPaper, r: Request) -> Any:
    book = open_book(app.state.read(), token_param(r.query))
    return {"price": book["last_trade_price"], "side": ""}


# -- keys, orders, trades, balances ---------------------------------------------------------------


def _api_key(app: PolymarketPaper, r: Request, *, create: bool) -> Any:
    address, nonce = auth.l1(r)
    with app.state.transaction() as doc:
        return auth.issue_key(doc, address, nonce, create=create)


def _api_keys(app: PolymarketPaper, r: Request) -> Any:
    with _signed_in(app, r) as (doc, address, _):
        return {"apiKeys": [k for k, v in doc["keys"].items() if v["address"] == address]}


def _open_orders(app: PolymarketPaper, r: Request) -> Any:
    with _signed_in(app, r) as (doc, address, _):
        expire(doc, app.clock())
        return _page([order_view(o) for o in doc["orders"].values()
                      if o["maker_address"] == address and o["status"] == "LIVE" and _asked(r.query, o)])


def _order(app: PolymarketPaper, r: Request, order_id: str) -> Any:
    with _signed_in(app, r) as (doc, address, _):
        expire(doc, app.clock())
        order = doc["orders"].get(order_id)
        if order is None or order["maker_address"] != address:
            raise ApiError(404, "order not found")
        return order_view(order)


def _trades(app: PolymarketPaper, r: Request) -> Any:
    with _signed_in(app, r) as (doc, address, _):
        return _page([t for t in doc["trades"] if t["maker_address"] == address and _asked(r.query, t)])


def _balance_allowance(app: PolymarketPaper, r: Request) -> Any:
    with _signed_in(app, r) as (doc, address, _):
        return balance_allowance(doc, address, r.query)


def _post_order(app: PolymarketPaper, r: Request) -> Any:
    with _signed_in(app, r) as (doc, address, api_key):
        expire(doc, app.clock())
        return post_order(doc, address, api_key, r.body, app.faults, app.clock)


def _post_orders(app: PolymarketPaper, r: Request) -> Any:
    # One transaction per order: each answers on its own, as the real batch endpoint does.
    with app.state.transaction() as doc:
        address, api_key = auth.l2(r, doc)
    if not isinstance(r.body, list):
        raise ApiError(400, "Invalid order payload")
    answers = []
    for item in r.body:
        try:
            with app.state.transaction() as doc:
                expire(doc, app.clock())
                answers.append(post_order(doc, address, api_key, item, app.faults, app.clock))
        except ApiError as exc:
            answers.append({"success": False, "errorMsg": exc.message, "orderID": "", "status": "",
                            "takingAmount": "", "makingAmount": "", "transactionsHashes": [], "tradeIDs": []})
    return answers


def _cancel(app: PolymarketPaper, r: Request) -> Any:
    with _signed_in(app, r) as (doc, address, _):
        expire(doc, app.clock())
        return cancel(doc, address, r.path, r.body)


def _heartbeat(app: PolymarketPaper, r: Request) -> Any:
    with app.state.transaction() as doc:
        auth.l2(r, doc)
    return {"heartbeat_id": (r.body or {}).get("heartbeat_id") or str(uuid.uuid4())}


# -- the tables -----------------------------------------------------------------------------------

#: The CLOB host: (method, path) -> handler(app, request).
CLOB: dict[tuple[str, str], Handler] = {
    ("GET", "/"): lambda app, r: "OK",
    ("GET", "/ok"): lambda app, r: "OK",
    ("GET", "/version"): lambda app, r: {"version": 2},
    ("GET", "/time"): lambda app, r: int(app.clock()),
    ("GET", "/markets"): _markets,
    ("GET", "/sampling-markets"): _markets,
    ("GET", "/book"): _book,
    ("GET", "/tick-size"): _tick_size,
    ("GET", "/neg-risk"): _neg_risk,
    ("GET", "/fee-rate"): _fee_rate,
    ("GET", "/midpoint"): _midpoint,
    ("GET", "/price"): _price,
    ("GET", "/last-trade-price"): _last_trade_price,
    ("GET", "/auth/derive-api-key"): lambda app, r: _api_key(app, r, create=False),
    ("GET", "/auth/api-keys"): _api_keys,
    ("GET", "/data/orders"): _open_orders,
    ("GET", "/data/trades"): _trades,
    ("GET", "/balance-allowance"): _balance_allowance,
    ("GET", "/balance-allowance/update"): _balance_allowance,
    ("GET", "/paper/balance"): lambda app, r: control.balance(app.state, r.query),
    ("GET", "/paper/state"): lambda app, r: app.state.read(),
    ("POST", "/auth/api-key"): lambda app, r: _api_key(app, r, create=True),
    ("POST", "/order"): _post_order,
    ("POST", "/orders"): _post_orders,
    ("POST", "/books"): _books,
    ("POST", "/v1/heartbeats"): _heartbeat,
    ("POST", "/paper/fund"): lambda app, r: control.fund(app.state, r.body),
    ("POST", "/paper/resolve"): lambda app, r: control.resolve(app.state, r.body),
    ("POST", "/paper/redeem"): lambda app, r: control.redeem(app.state, r.body),
    ("POST", "/paper/book"): lambda app, r: control.set_book(app.state, r.body, app.clock),
    ("DELETE", "/order"): _cancel,
    ("DELETE", "/orders"): _cancel,
    ("DELETE", "/cancel-all"): _cancel,
    ("DELETE", "/cancel-market-orders"): _cancel,
}

#: The CLOB host's routes that end in an id: (method, path prefix) -> handler(app, request, id).
CLOB_ITEMS: dict[tuple[str, str], ItemHandler] = {
    ("GET", "/markets/"): _market,
    ("GET", "/markets-by-token/"): _market_by_token,
    ("GET", "/clob-markets/"): _clob_market,
    ("GET", "/data/order/"): _order,
}

#: The Data API host: (method, path) -> handler(app, request).
DATA: dict[tuple[str, str], Handler] = {
    ("GET", "/positions"): lambda app, r: positions.positions(app.state, r.query),
    ("GET", "/v1/positions"): lambda app, r: positions.positions(app.state, r.query),
    ("GET", "/value"): lambda app, r: positions.value(app.state, r.query),
}
