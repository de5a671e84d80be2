"""The route tables: which handler answers each HTTP route, each ``/info`` type and each
``/exchange`` action type."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tickloop_paper.hyperliquid import account, auth, market, matching, orders
from tickloop_paper.hyperliquid.wire import Call
from tickloop_paper.server import Request, Response

if TYPE_CHECKING:
    from tickloop_paper.hyperliquid.app import HyperliquidPaper

Doc = dict[str, Any]

#: ``(method, path)`` -> handler(app, request).
HTTP: dict[tuple[str, str], Callable[[HyperliquidPaper, Request], Response]] = {
    ("POST", "/info"): lambda app, request: app.info(request.body),
    ("POST", "/exchange"): lambda app, request: app.exchange(request.body),
    ("POST", "/paper/fund"): lambda app, request: app.fund(request.body),
    ("POST", "/paper/mid"): lambda app, request: app.move_mid(request.body),
    ("GET", "/paper/state"): lambda app, request: Response.json(app.state.read()),
}

#: ``/info`` types about the markets: type -> handler(doc, body, now), answering the JSON body.
MARKET_INFO: dict[str, Callable[[Doc, Doc, int], Any]] = {
    "meta": market.meta,
    "spotMeta": market.spot_meta,
    "allMids": market.all_mids,
    "l2Book": market.l2_book,
}

#: ``/info`` types about one ``user``: type -> handler(doc, user, body, now), answering the JSON body.
USER_INFO: dict[str, Callable[[Doc, str, Doc, int], Any]] = {
    "clearinghouseState": account.clearinghouse_info,
    "spotClearinghouseState": account.spot_clearinghouse,
    "userFills": account.user_fills,
    "openOrders": orders.open_orders_info,
    "frontendOpenOrders": orders.frontend_open_orders,
    "orderStatus": orders.order_status,
    "historicalOrders": orders.historical_orders,
    "extraAgents": auth.extra_agents,
    "userRole": auth.user_role,
}

#: ``/exchange`` L1 actions (signed by the account or its agent): type -> handler(call).
ACTIONS: dict[str, Callable[[Call], Response]] = {
    "order": matching.place_orders,
    "cancel": orders.cancel,
    "cancelByCloid": orders.cancel_by_cloid,
    "updateLeverage": account.update_leverage,
    "scheduleCancel": orders.schedule_cancel,
}

#: ``/exchange`` user-signed actions (see :data:`auth.USER_SIGNED`): type -> handler(doc, signer, action, now).
USER_ACTIONS: dict[str, Callable[[Doc, str, Doc, int], Response]] = {
    "approveAgent": auth.approve_agent,
    "usdClassTransfer": account.transfer_usd,
}
