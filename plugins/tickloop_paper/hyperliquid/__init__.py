"""A paper Hyperliquid exchange the official ``hyperliquid-python-sdk`` works against unmodified.

It speaks ``POST /info`` and ``POST /exchange`` as Hyperliquid does (the shapes the SDK and
its callers read), over a :class:`tickloop_paper.state.ExchangeState` document, so several processes of
one home share one paper exchange:

- **Signatures.** Every L1 action's signer is recovered with the SDK's own helper
  (``recover_agent_or_user_from_l1_action``, testnet: the SDK signs as testnet for every URL but
  mainnet's), over the action, nonce, ``vaultAddress`` and ``expiresAfter`` exactly as sent, so
  a changed byte means another signer. The signer must be a funded account, or an agent (API)
  wallet approved by one (``approveAgent``, a user-signed action); ``vaultAddress`` acts for a
  sub-account whose master is that account. Anyone else gets Hyperliquid's
  ``User or API Wallet 0x... does not exist.``
- **Nonces**, per signer: a nonce already used, one not above the smallest of the 100 highest
  kept, or one more than a day away from the server clock is refused.
- **Accounts** exist once funded (``POST /paper/fund``). One netted position per coin, cross
  margin (margin = notional / leverage; 20x, or the coin's maximum when lower, until
  ``updateLeverage``), taker and maker fees charged in USDC, realised PnL into the balance.
- **Orders**: limit ``Gtc``/``Alo``/``Ioc`` and trigger (stop / take-profit) orders. The book
  is deep and sits at a movable mid (``POST /paper/mid``; ``spread`` in the state widens it):
  an order that crosses fills in full at the touch (taker), a ``Gtc`` that does not rests and
  fills at its limit price (maker) when the mid moves through it, an ``Ioc`` that does not
  cross is refused. Hyperliquid's rules are enforced with its messages: sizes in the coin's
  ``szDecimals``, prices of at most 5 significant figures and ``6 - szDecimals`` decimals
  (integers always), the $10 minimum (reduce-only orders are exempt, so dust can be closed),
  reduce-only orders that would increase or flip the position, post-only orders that would
  cross, margin.
- **Faults** (armed on the server, :class:`tickloop_paper.server.Fault`): ``partial_fill``
  (``params={"fraction": 0.5}``: the next IOC fills only that part, the rest is cancelled) and
  ``ioc_no_match`` (the next IOC is refused as if the book were empty); the server itself
  applies ``status`` and ``latency``.

Control endpoints (not Hyperliquid's): ``POST /paper/fund {"user", "usdc", "ifNew"?,
"master"?}`` credits perp USDC and creates the account (``ifNew``: only when it does not exist
yet; ``master``: the account is a sub-account of that user), ``POST /paper/mid {"coin", "px"}``
moves a mid (and fills or triggers the resting orders it crosses), ``GET /paper/state`` returns
the whole document.
"""

from __future__ import annotations

import bisect
import copy
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from tickloop_paper.server import Faults, Request, Response

D = Decimal
ZERO = D(0)
DAY_MS = 24 * 60 * 60 * 1000
NONCES_KEPT = 100
FILLS_KEPT = 2000
CLOSED_ORDERS_KEPT = 5000
MIN_NOTIONAL = D(10)
USD = D("0.000001")

#: The perp universe: asset id = index. Real Hyperliquid values for the size decimals.
UNIVERSE: list[dict[str, Any]] = [
    {"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
    {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
    {"name": "SOL", "szDecimals": 2, "maxLeverage": 20},
    {"name": "HYPE", "szDecimals": 2, "maxLeverage": 10},
]
MIDS = {"BTC": "60000.0", "ETH": "3000.0", "SOL": "150.0", "HYPE": "25.0"}
DEFAULT_LEVERAGE = 20
TAKER_FEE = "0.00045"
MAKER_FEE = "0.00015"

APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]
USD_CLASS_TRANSFER_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "amount", "type": "string"},
    {"name": "toPerp", "type": "bool"},
    {"name": "nonce", "type": "uint64"},
]
USER_SIGNED = {
    "approveAgent": (APPROVE_AGENT_TYPES, "HyperliquidTransaction:ApproveAgent"),
    "usdClassTransfer": (USD_CLASS_TRANSFER_TYPES, "HyperliquidTransaction:UsdClassTransfer"),
}


def fmt(value: Decimal) -> str:
    """A decimal as Hyperliquid writes numbers: plain, trimmed, at least one decimal ("60000.0")."""
    text = format(value.normalize(), "f")
    if text in ("-0", "0", ""):
        return "0.0"
    return text if "." in text else text + ".0"


def usd(value: Decimal) -> Decimal:
    return value.quantize(USD)


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _ok(response: Any) -> Response:
    return Response.json({"status": "ok", "response": response})


def _err(message: str) -> Response:
    return Response.json({"status": "err", "response": message})


def _bad_body() -> Response:
    # Hyperliquid answers a body it cannot parse with 422 and plain text; the SDK raises it.
    return Response.text("Failed to deserialize the JSON body into the target type", 422)


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def size_ok(size: Decimal, sz_decimals: int) -> bool:
    return size > 0 and _decimals(size) <= sz_decimals


def price_ok(price: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid's tick rule for perps: integers always; otherwise at most 5 significant
    figures and at most ``6 - szDecimals`` decimals."""
    if price <= 0:
        return False
    if price == price.to_integral_value():
        return True
    normal = price.normalize()
    return _decimals(normal) <= 6 - sz_decimals and len(normal.as_tuple().digits) <= 5


def round_price(price: Decimal, sz_decimals: int) -> Decimal:
    """The nearest valid price: 5 significant figures, then ``6 - szDecimals`` decimals."""
    if price <= 0:
        return price
    if price >= D(100000):
        return price.quantize(D(1))
    shift = price.adjusted() - 4  # keep 5 significant figures
    rounded = price.quantize(D(1).scaleb(shift))
    return rounded.quantize(D(1).scaleb(-(6 - sz_decimals))) if _decimals(rounded) > 6 - sz_decimals else rounded


class HyperliquidPaper:
    """The paper exchange as a :class:`tickloop_paper.server.PaperServer` app."""

    def __init__(self, state: Any, faults: Faults | None = None) -> None:
        self.state = state
        self.faults = faults or Faults()

    @staticmethod
    def initial_state() -> dict[str, Any]:
        return {
            "version": 1,
            "universe": copy.deepcopy(UNIVERSE),
            "mids": dict(MIDS),
            "spread": "0",  # half-spread as a fraction of the mid (0: fills at the mid)
            "fees": {"taker": TAKER_FEE, "maker": MAKER_FEE},
            "next_oid": 1,
            "next_tid": 1,
            "accounts": {},  # address -> account
            "agents": {},  # agent address -> {"user", "name"}
            "nonces": {},  # signer -> the highest nonces used, ascending
            "orders": {},  # oid -> {"user", "order", "status", "statusTimestamp"}
        }

    # -- routing -------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/") or "/")
        if route == ("POST", "/info"):
            return self.info(request.body)
        if route == ("POST", "/exchange"):
            return self.exchange(request.body)
        if route == ("POST", "/paper/fund"):
            return self.fund(request.body)
        if route == ("POST", "/paper/mid"):
            return self.move_mid(request.body)
        if route == ("GET", "/paper/state"):
            return Response.json(self.state.read())
        return Response.text(f"{request.method} {request.path}: not found", 404)

    # -- control -------------------------------------------------------------------------------

    def fund(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("user"), str):
            return Response.json({"error": 'expected {"user": "0x...", "usdc": amount}'}, 400)
        user = body["user"].lower()
        try:
            amount = D(str(body.get("usdc", 0)))
        except InvalidOperation:
            return Response.json({"error": f"usdc {body.get('usdc')!r} is not a number"}, 400)
        if amount < 0:
            return Response.json({"error": "usdc must not be negative"}, 400)
        master = body.get("master")
        with self.state.transaction() as doc:
            account = doc["accounts"].get(user)
            created = account is None
            if created:
                account = doc["accounts"][user] = self._new_account(master.lower() if isinstance(master, str) else None)
            if created or not body.get("ifNew"):
                account["usdc"] = fmt(D(account["usdc"]) + amount)
            return Response.json({"status": "ok", "user": user, "usdc": account["usdc"], "created": created})

    def move_mid(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("coin"), str):
            return Response.json({"error": 'expected {"coin": "BTC", "px": price}'}, 400)
        try:
            px = D(str(body.get("px")))
        except InvalidOperation:
            px = ZERO
        if px <= 0:
            return Response.json({"error": f"px {body.get('px')!r} must be a positive number"}, 400)
        coin = body["coin"]
        with self.state.transaction() as doc:
            if coin not in doc["mids"]:
                return Response.json({"error": f"unknown coin {coin}"}, 400)
            doc["mids"][coin] = fmt(px)
            now = now_ms()
            self._housekeeping(doc, now)
            touched = self._match_resting(doc, coin, now)
            return Response.json({"status": "ok", "coin": coin, "px": doc["mids"][coin], "filled": touched})

    @staticmethod
    def _new_account(master: str | None = None) -> dict[str, Any]:
        return {"usdc": "0.0", "spot_usdc": "0.0", "positions": {}, "leverage": {}, "open": [], "fills": [],
                "master": master, "scheduledCancel": None}

    # -- /info ---------------------------------------------------------------------------------

    def info(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return _bad_body()
        kind = body["type"]
        user = body.get("user").lower() if isinstance(body.get("user"), str) else None
        with self.state.transaction() as doc:
            now = now_ms()
            self._housekeeping(doc, now)
            if kind == "meta":
                universe = doc["universe"] if body.get("dex", "") in ("", None) else []
                return Response.json({"universe": copy.deepcopy(universe)})
            if kind == "spotMeta":
                return Response.json({"universe": [], "tokens": []})
            if kind == "allMids":
                return Response.json(dict(doc["mids"]))
            if kind == "l2Book":
                return self._l2_book(doc, body.get("coin"), now)
            if user is None:
                return _bad_body()
            account = doc["accounts"].get(user)
            if kind == "clearinghouseState":
                return Response.json(self._clearinghouse(doc, user, now))
            if kind == "spotClearinghouseState":
                balances = [] if account is None else [{"coin": "USDC", "token": 0, "total": account["spot_usdc"],
                                                        "hold": "0.0", "entryNtl": "0.0"}]
                return Response.json({"balances": balances})
            if kind == "openOrders":
                return Response.json([{k: rec["order"][k] for k in ("coin", "limitPx", "oid", "side", "sz", "timestamp")}
                                      for rec in self._open_orders(doc, user)])
            if kind == "frontendOpenOrders":
                return Response.json([copy.deepcopy(rec["order"]) for rec in self._open_orders(doc, user)])
            if kind == "orderStatus":
                return Response.json(self._order_status(doc, user, body.get("oid")))
            if kind == "userFills":
                return Response.json(list(reversed(account["fills"])) if account else [])
            if kind == "historicalOrders":
                found = [rec for rec in doc["orders"].values() if rec["user"] == user]
                found.sort(key=lambda rec: rec["order"]["oid"], reverse=True)
                return Response.json([{"order": copy.deepcopy(rec["order"]), "status": rec["status"],
                                       "statusTimestamp": rec["statusTimestamp"]} for rec in found])
            if kind == "extraAgents":
                return Response.json([{"name": a["name"], "address": address, "validUntil": None}
                                      for address, a in doc["agents"].items() if a["user"] == user])
            if kind == "userRole":
                if account is not None:
                    return Response.json({"role": "subAccount", "data": {"master": account["master"]}}
                                         if account.get("master") else {"role": "user"})
                agent = doc["agents"].get(user)
                return Response.json({"role": "agent", "data": {"user": agent["user"]}} if agent else {"role": "missing"})
            return _bad_body()

    def _clearinghouse(self, doc: dict[str, Any], user: str, now: int) -> dict[str, Any]:
        account = doc["accounts"].get(user)
        usdc = D(account["usdc"]) if account else ZERO
        rows = self._position_rows(doc, account) if account else []
        value = usdc + sum((r["upnl"] for r in rows), ZERO)
        margin = sum((r["margin"] for r in rows), ZERO)
        notional = sum((r["notional"] for r in rows), ZERO)
        signed_notional = sum((r["szi"] * r["mid"] for r in rows), ZERO)
        maintenance = sum((r["maintenance"] for r in rows), ZERO)
        positions = []
        for r in rows:
            liq = self._liquidation_price(r, rows, usdc)
            margin_at_entry = abs(r["szi"]) * r["entry"] / r["leverage"]
            positions.append({"type": "oneWay", "position": {
                "coin": r["coin"], "szi": fmt(r["szi"]), "entryPx": fmt(r["entry"]),
                "leverage": {"type": r["leverage_type"], "value": int(r["leverage"])},
                "liquidationPx": fmt(liq) if liq is not None else None,
                "marginUsed": fmt(usd(r["margin"])), "positionValue": fmt(usd(r["notional"])),
                "returnOnEquity": fmt((r["upnl"] / margin_at_entry).quantize(D("0.0000000001")))
                if margin_at_entry else "0.0",
                "unrealizedPnl": fmt(usd(r["upnl"])), "maxLeverage": r["max_leverage"],
                "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
            }})
        summary = {"accountValue": fmt(usd(value)), "totalNtlPos": fmt(usd(notional)),
                   "totalRawUsd": fmt(usd(value - signed_notional)), "totalMarginUsed": fmt(usd(margin))}
        return {"marginSummary": summary, "crossMarginSummary": dict(summary),
                "crossMaintenanceMarginUsed": fmt(usd(maintenance)),
                "withdrawable": fmt(usd(max(ZERO, value - margin - self._orders_margin(doc, user)))),
                "assetPositions": positions, "time": now}

    def _position_rows(self, doc: dict[str, Any], account: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for coin in sorted(account["positions"]):
            p = account["positions"][coin]
            szi, entry, mid = D(p["szi"]), D(p["entryPx"]), D(doc["mids"][coin])
            spec = self._spec(doc, coin)
            lev = account["leverage"].get(coin) or {"type": "cross", "value": self._default_leverage(spec)}
            leverage = D(lev["value"])
            notional = abs(szi) * mid
            rows.append({"coin": coin, "szi": szi, "entry": entry, "mid": mid, "notional": notional,
                         "upnl": szi * (mid - entry), "margin": notional / leverage, "leverage": leverage,
                         "leverage_type": lev["type"], "max_leverage": spec["maxLeverage"],
                         "mm_rate": D(1) / (2 * D(spec["maxLeverage"])),
                         "maintenance": notional / (2 * D(spec["maxLeverage"]))})
        return rows

    @staticmethod
    def _liquidation_price(row: dict[str, Any], rows: list[dict[str, Any]], usdc: Decimal) -> Decimal | None:
        """Where account equity meets maintenance margin, the other positions at their mids."""
        others = [r for r in rows if r is not row]
        equity = usdc + sum((r["upnl"] for r in others), ZERO)
        maintenance = sum((r["maintenance"] for r in others), ZERO)
        szi, mm = row["szi"], row["mm_rate"]
        denominator = szi - abs(szi) * mm
        if denominator == 0:
            return None
        px = (maintenance - equity + szi * row["entry"]) / denominator
        return usd(px) if px > 0 else None

    def _orders_margin(self, doc: dict[str, Any], user: str) -> Decimal:
        account = doc["accounts"].get(user)
        if account is None:
            return ZERO
        total = ZERO
        for rec in self._open_orders(doc, user):
            order = rec["order"]
            if order["reduceOnly"]:
                continue
            total += D(order["sz"]) * D(order["limitPx"]) / self._leverage(doc, account, order["coin"])
        return total

    def _l2_book(self, doc: dict[str, Any], coin: Any, now: int) -> Response:
        if coin not in doc["mids"]:
            return Response.json(None)
        spec = self._spec(doc, coin)
        bid, ask = self._touch(doc, coin)
        step = max(D(doc["mids"][coin]) * D("0.0005"), D(1).scaleb(-(6 - spec["szDecimals"])))
        depth = (D(250000) / D(doc["mids"][coin])).quantize(D(1).scaleb(-spec["szDecimals"]), ROUND_DOWN)
        bids = [{"px": fmt(round_price(bid - i * step, spec["szDecimals"])), "sz": fmt(depth), "n": 1} for i in range(10)]
        asks = [{"px": fmt(round_price(ask + i * step, spec["szDecimals"])), "sz": fmt(depth), "n": 1} for i in range(10)]
        return Response.json({"coin": coin, "time": now, "levels": [bids, asks]})

    def _order_status(self, doc: dict[str, Any], user: str, oid: Any) -> dict[str, Any]:
        rec = None
        if isinstance(oid, int):
            rec = doc["orders"].get(str(oid))
        elif isinstance(oid, str):
            rec = next((r for r in doc["orders"].values() if r["order"].get("cloid") == oid and r["user"] == user), None)
        if rec is None or rec["user"] != user:
            return {"status": "unknownOid"}
        return {"status": "order", "order": {"order": copy.deepcopy(rec["order"]), "status": rec["status"],
                                             "statusTimestamp": rec["statusTimestamp"]}}

    # -- /exchange -----------------------------------------------------------------------------

    def exchange(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return _bad_body()
        action, nonce, signature = body.get("action"), body.get("nonce"), body.get("signature")
        vault, expires = body.get("vaultAddress"), body.get("expiresAfter")
        if (not isinstance(action, dict) or not isinstance(action.get("type"), str) or not isinstance(nonce, int)
                or not isinstance(signature, dict) or not {"r", "s", "v"} <= set(signature)
                or not (vault is None or isinstance(vault, str)) or not (expires is None or isinstance(expires, int))):
            return _bad_body()
        kind = action["type"]
        with self.state.transaction() as doc:
            now = now_ms()
            self._housekeeping(doc, now)
            if kind in USER_SIGNED:
                return self._user_signed(doc, action, nonce, signature, now)
            if expires is not None and expires < now:
                return _err(f"Action expired: expiresAfter {expires} is before the current time {now}")
            try:
                from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

                signer = recover_agent_or_user_from_l1_action(action, signature, vault, nonce, expires, False).lower()
            except Exception as exc:
                return _err(f"Invalid signature: {type(exc).__name__}")
            user = self._acting_user(doc, signer)
            if user is None:
                return _err(f"User or API Wallet {signer} does not exist.")
            if vault is not None:
                target = doc["accounts"].get(vault.lower())
                if target is None or target.get("master") != user:
                    return _err(f"User or API Wallet {signer} is not authorized to act for {vault.lower()}.")
                user = vault.lower()
            refused = self._use_nonce(doc, signer, nonce, now)
            if refused:
                return _err(refused)
            if kind == "order":
                return self._orders(doc, user, action, now)
            if kind == "cancel":
                return self._cancel(doc, user, action, now)
            if kind == "cancelByCloid":
                return self._cancel_by_cloid(doc, user, action, now)
            if kind == "updateLeverage":
                return self._update_leverage(doc, user, action)
            if kind == "scheduleCancel":
                return self._schedule_cancel(doc, user, action, now)
            return _err(f"the paper exchange does not support action type {kind!r}")

    def _acting_user(self, doc: dict[str, Any], signer: str) -> str | None:
        if signer in doc["accounts"]:
            return signer
        agent = doc["agents"].get(signer)
        if agent is not None and agent["user"] in doc["accounts"]:
            return agent["user"]
        return None

    @staticmethod
    def _use_nonce(doc: dict[str, Any], signer: str, nonce: int, now: int) -> str | None:
        """Record ``nonce`` for ``signer``, or say why it is refused."""
        if abs(nonce - now) > DAY_MS:
            return f"Invalid nonce: {nonce} is more than a day from the current time {now}"
        kept = doc["nonces"].setdefault(signer, [])
        index = bisect.bisect_left(kept, nonce)
        if index < len(kept) and kept[index] == nonce:
            return f"Invalid nonce: duplicate nonce {nonce}"
        if len(kept) >= NONCES_KEPT and nonce <= kept[0]:
            return f"Invalid nonce: {nonce} is not above the smallest of the {NONCES_KEPT} highest nonces used ({kept[0]})"
        kept.insert(index, nonce)
        del kept[:-NONCES_KEPT]
        return None

    def _user_signed(self, doc: dict[str, Any], action: dict[str, Any], nonce: int, signature: dict[str, Any],
                     now: int) -> Response:
        from hyperliquid.utils.signing import recover_user_from_user_signed_action

        kind = action["type"]
        types, primary = USER_SIGNED[kind]
        message = dict(action)
        if kind == "approveAgent":
            message.setdefault("agentName", "")  # signed with "", sent without it when unnamed
        if action.get("nonce") != nonce or not isinstance(action.get("signatureChainId"), str):
            return _err("the action's nonce must equal the request's nonce, and signatureChainId must be set")
        try:
            signer = recover_user_from_user_signed_action(message, signature, types, primary, False).lower()
        except Exception as exc:
            return _err(f"Invalid signature: {type(exc).__name__}")
        account = doc["accounts"].get(signer)
        if account is None:
            return _err(f"Must deposit before performing actions. User: {signer}")
        refused = self._use_nonce(doc, signer, nonce, now)
        if refused:
            return _err(refused)
        if kind == "approveAgent":
            agent = str(action.get("agentAddress", "")).lower()
            if len(agent) != 42 or agent in doc["accounts"]:
                return _err(f"invalid agent address {agent}")
            name = message["agentName"]
            for address, existing in list(doc["agents"].items()):
                if existing["user"] == signer and existing["name"] == name:  # re-approving a name prunes the old one
                    del doc["agents"][address]
            doc["agents"][agent] = {"user": signer, "name": name}
            return _ok({"type": "default"})
        # usdClassTransfer: move USDC between the perp and the spot balance.
        text = str(action.get("amount", "")).split(" ")[0]
        try:
            amount = D(text)
        except InvalidOperation:
            return _err(f"invalid amount {action.get('amount')!r}")
        if amount <= 0:
            return _err(f"invalid amount {action.get('amount')!r}")
        if action.get("toPerp"):
            if D(account["spot_usdc"]) < amount:
                return _err("Insufficient balance for transfer")
            account["spot_usdc"] = fmt(D(account["spot_usdc"]) - amount)
            account["usdc"] = fmt(D(account["usdc"]) + amount)
        else:
            withdrawable = D(self._clearinghouse(doc, signer, now)["withdrawable"])
            if withdrawable < amount:
                return _err("Insufficient balance for transfer")
            account["usdc"] = fmt(D(account["usdc"]) - amount)
            account["spot_usdc"] = fmt(D(account["spot_usdc"]) + amount)
        return _ok({"type": "default"})

    # -- orders --------------------------------------------------------------------------------

    def _orders(self, doc: dict[str, Any], user: str, action: dict[str, Any], now: int) -> Response:
        wires = action.get("orders")
        if not isinstance(wires, list) or not wires:
            return _bad_body()
        statuses = []
        for wire in wires:
            try:
                statuses.append(self._order(doc, user, wire, now))
            except (KeyError, TypeError, ValueError, InvalidOperation):
                statuses.append({"error": "Order has invalid format."})
        return _ok({"type": "order", "data": {"statuses": statuses}})

    def _order(self, doc: dict[str, Any], user: str, wire: dict[str, Any], now: int) -> dict[str, Any]:
        asset = wire["a"]
        if not isinstance(asset, int) or not 0 <= asset < len(doc["universe"]):
            return {"error": f"Invalid asset {asset}."}
        spec = doc["universe"][asset]
        coin, sz_decimals = spec["name"], spec["szDecimals"]
        is_buy, reduce_only = bool(wire["b"]), bool(wire.get("r", False))
        price, size = D(str(wire["p"])), D(str(wire["s"]))
        kind = wire["t"]
        if not size_ok(size, sz_decimals):
            return {"error": "Order has invalid size."}
        if not price_ok(price, sz_decimals):
            return {"error": f"Price must be divisible by tick size. asset={asset}"}
        account = doc["accounts"][user]
        position = self._szi(account, coin)
        if reduce_only:
            if position == 0 or (position > 0) == is_buy or size > abs(position):
                return {"error": "Reduce only order would increase position."}
        elif size * price < MIN_NOTIONAL:
            return {"error": "Order must have minimum value of $10."}
        signed = size if is_buy else -size
        if "trigger" in kind:
            trigger = kind["trigger"]
            trigger_px = D(str(trigger["triggerPx"]))
            tpsl = trigger.get("tpsl")
            if tpsl not in ("tp", "sl") or not price_ok(trigger_px, sz_decimals):
                return {"error": f"Invalid trigger price. asset={asset}"}
            if not reduce_only and not self._margin_ok(doc, user, coin, signed, price):
                return {"error": f"Insufficient margin to place order. asset={asset}"}
            market = bool(trigger.get("isMarket"))
            order_type = ("Take Profit" if tpsl == "tp" else "Stop") + (" Market" if market else " Limit")
            above = (tpsl == "tp") != is_buy  # a sell take-profit / buy stop fires as the mid rises
            oid = self._rest(doc, user, coin, is_buy, price, size, reduce_only, "Gtc", wire.get("c"), now,
                             trigger={"triggerPx": fmt(trigger_px), "isMarket": market, "tpsl": tpsl,
                                      "orderType": order_type,
                                      "triggerCondition": f"Price {'above' if above else 'below'} {fmt(trigger_px)}"})
            return {"resting": {"oid": oid}}
        tif = kind["limit"]["tif"]
        if tif not in ("Gtc", "Alo", "Ioc"):
            return {"error": "Order has invalid format."}
        bid, ask = self._touch(doc, coin)
        crosses = price >= ask if is_buy else price <= bid
        if tif == "Alo":
            if crosses:
                return {"error": f"Post only order would have immediately matched, bbo was {fmt(bid)}@{fmt(ask)}."
                                 f" asset={asset}"}
        elif tif == "Ioc":
            no_match = {"error": f"Order could not immediately match against any resting orders. asset={asset}"}
            if self.faults.take("ioc_no_match", "/exchange") is not None or not crosses:
                return no_match
            partial = self.faults.take("partial_fill", "/exchange")
            if partial is not None:
                fraction = D(str(partial.params.get("fraction", 0.5)))
                size = (size * fraction).quantize(D(1).scaleb(-sz_decimals), ROUND_DOWN)
                if size <= 0:
                    return no_match
                signed = size if is_buy else -size
        if not reduce_only and not self._margin_ok(doc, user, coin, signed, price):
            return {"error": f"Insufficient margin to place order. asset={asset}"}
        if crosses:  # a taker: fills at the touch, in full (the paper book is deep)
            touch = ask if is_buy else bid
            oid = self._new_oid(doc)
            original = D(str(wire["s"]))
            self._record(doc, user, oid, coin, is_buy, price, original, original - size, reduce_only, tif,
                         wire.get("c"), now, "filled" if size == original else "canceled")
            self._fill(doc, user, coin, signed, touch, True, oid, now)
            return {"filled": {"totalSz": fmt(size), "avgPx": fmt(touch), "oid": oid}}
        oid = self._rest(doc, user, coin, is_buy, price, size, reduce_only, tif, wire.get("c"), now)
        return {"resting": {"oid": oid}}

    def _margin_ok(self, doc: dict[str, Any], user: str, coin: str, signed: Decimal, price: Decimal) -> bool:
        """Whether the account's value covers its margin once this order adds to a position."""
        account = doc["accounts"][user]
        position = self._szi(account, coin)
        added = abs(position + signed) - abs(position)
        if added <= 0:
            return True
        state = self._clearinghouse(doc, user, 0)
        used = D(state["marginSummary"]["totalMarginUsed"]) + self._orders_margin(doc, user)
        needed = added * price / self._leverage(doc, account, coin)
        return used + needed <= D(state["marginSummary"]["accountValue"])

    def _new_oid(self, doc: dict[str, Any]) -> int:
        oid = doc["next_oid"]
        doc["next_oid"] = oid + 1
        return oid

    def _record(self, doc: dict[str, Any], user: str, oid: int, coin: str, is_buy: bool, price: Decimal,
                size: Decimal, remaining: Decimal, reduce_only: bool, tif: str, cloid: Any, now: int, status: str,
                trigger: dict[str, Any] | None = None) -> dict[str, Any]:
        order = {"coin": coin, "side": "B" if is_buy else "A", "limitPx": fmt(price), "sz": fmt(remaining),
                 "oid": oid, "timestamp": now, "origSz": fmt(size), "reduceOnly": reduce_only,
                 "orderType": trigger["orderType"] if trigger else "Limit", "tif": None if trigger else tif,
                 "cloid": cloid if isinstance(cloid, str) else None, "isTrigger": trigger is not None,
                 "triggerPx": trigger["triggerPx"] if trigger else "0.0",
                 "triggerCondition": trigger["triggerCondition"] if trigger else "N/A",
                 "isPositionTpsl": False, "children": []}
        rec = {"user": user, "order": order, "status": status, "statusTimestamp": now}
        if trigger:
            rec["trigger"] = {"isMarket": trigger["isMarket"], "tpsl": trigger["tpsl"]}
        doc["orders"][str(oid)] = rec
        if status == "open":
            doc["accounts"][user]["open"].append(oid)
        self._prune_orders(doc)
        return rec

    def _rest(self, doc: dict[str, Any], user: str, coin: str, is_buy: bool, price: Decimal, size: Decimal,
              reduce_only: bool, tif: str, cloid: Any, now: int, trigger: dict[str, Any] | None = None) -> int:
        oid = self._new_oid(doc)
        self._record(doc, user, oid, coin, is_buy, price, size, size, reduce_only, tif, cloid, now, "open", trigger)
        return oid

    @staticmethod
    def _prune_orders(doc: dict[str, Any]) -> None:
        orders = doc["orders"]
        if len(orders) <= CLOSED_ORDERS_KEPT * 2:
            return
        closed = sorted((int(oid) for oid, rec in orders.items() if rec["status"] != "open"))
        for oid in closed[:-CLOSED_ORDERS_KEPT]:
            del orders[str(oid)]

    def _close_order(self, doc: dict[str, Any], oid: int, status: str, now: int) -> None:
        rec = doc["orders"][str(oid)]
        rec["status"], rec["statusTimestamp"] = status, now
        account = doc["accounts"].get(rec["user"])
        if account is not None and oid in account["open"]:
            account["open"].remove(oid)

    def _fill(self, doc: dict[str, Any], user: str, coin: str, signed: Decimal, price: Decimal, crossed: bool,
              oid: int, now: int) -> None:
        """Trade ``signed`` of ``coin`` at ``price`` for ``user``: net the position, realise PnL,
        charge the fee, and record the fill as ``userFills`` shows it."""
        account = doc["accounts"][user]
        held = account["positions"].get(coin) or {"szi": "0.0", "entryPx": "0.0"}
        start, entry = D(held["szi"]), D(held["entryPx"])
        closed_pnl = ZERO
        if start == 0 or (start > 0) == (signed > 0):
            total = start + signed
            entry = (entry * abs(start) + price * abs(signed)) / abs(total)
            direction = "Open Long" if signed > 0 else "Open Short"
        else:
            closed = min(abs(signed), abs(start))
            closed_pnl = (price - entry) * closed * (1 if start > 0 else -1)
            total = start + signed
            if abs(signed) <= abs(start):
                direction = "Close Long" if start > 0 else "Close Short"
            else:
                direction = "Long > Short" if start > 0 else "Short > Long"
            if total == 0:
                entry = ZERO
            elif (total > 0) != (start > 0):
                entry = price
        rate = D(doc["fees"]["taker" if crossed else "maker"])
        fee = usd(abs(signed) * price * rate)
        account["usdc"] = fmt(usd(D(account["usdc"]) + closed_pnl - fee))
        if total == 0:
            account["positions"].pop(coin, None)
        else:
            account["positions"][coin] = {"szi": fmt(total), "entryPx": fmt(entry.quantize(D("0.00000001")))}
        tid = doc["next_tid"]
        doc["next_tid"] = tid + 1
        account["fills"].append({
            "coin": coin, "px": fmt(price), "sz": fmt(abs(signed)), "side": "B" if signed > 0 else "A", "time": now,
            "startPosition": fmt(start), "dir": direction, "closedPnl": fmt(usd(closed_pnl)),
            "hash": "0x" + format(tid, "064x"), "oid": oid, "crossed": crossed, "fee": fmt(fee), "tid": tid,
            "feeToken": "USDC",
        })
        del account["fills"][:-FILLS_KEPT]

    def _cancel(self, doc: dict[str, Any], user: str, action: dict[str, Any], now: int) -> Response:
        cancels = action.get("cancels")
        if not isinstance(cancels, list):
            return _bad_body()
        statuses: list[Any] = []
        for item in cancels:
            asset, oid = item.get("a"), item.get("o")
            rec = doc["orders"].get(str(oid)) if isinstance(oid, int) else None
            statuses.append(self._cancel_one(doc, user, rec, asset, now))
        return _ok({"type": "cancel", "data": {"statuses": statuses}})

    def _cancel_by_cloid(self, doc: dict[str, Any], user: str, action: dict[str, Any], now: int) -> Response:
        cancels = action.get("cancels")
        if not isinstance(cancels, list):
            return _bad_body()
        statuses: list[Any] = []
        for item in cancels:
            asset, cloid = item.get("asset"), item.get("cloid")
            rec = next((doc["orders"][str(oid)] for oid in doc["accounts"][user]["open"]
                        if doc["orders"][str(oid)]["order"]["cloid"] == cloid), None)
            statuses.append(self._cancel_one(doc, user, rec, asset, now))
        return _ok({"type": "cancel", "data": {"statuses": statuses}})

    def _cancel_one(self, doc: dict[str, Any], user: str, rec: dict[str, Any] | None, asset: Any, now: int) -> Any:
        coin = doc["universe"][asset]["name"] if isinstance(asset, int) and 0 <= asset < len(doc["universe"]) else None
        if rec is None or rec["user"] != user or rec["status"] != "open" or rec["order"]["coin"] != coin:
            return {"error": f"Order was never placed, already canceled, or filled. asset={asset}"}
        self._close_order(doc, rec["order"]["oid"], "canceled", now)
        return "success"

    def _update_leverage(self, doc: dict[str, Any], user: str, action: dict[str, Any]) -> Response:
        asset, leverage = action.get("asset"), action.get("leverage")
        if not isinstance(asset, int) or not 0 <= asset < len(doc["universe"]):
            return _err(f"Invalid asset {asset}.")
        spec = doc["universe"][asset]
        if not isinstance(leverage, int) or not 1 <= leverage <= spec["maxLeverage"]:
            return _err(f"Invalid leverage value {leverage}: {spec['name']} allows 1 to {spec['maxLeverage']}.")
        doc["accounts"][user]["leverage"][spec["name"]] = {"type": "cross" if action.get("isCross", True)
                                                           else "isolated", "value": leverage}
        return _ok({"type": "default"})

    def _schedule_cancel(self, doc: dict[str, Any], user: str, action: dict[str, Any], now: int) -> Response:
        at = action.get("time")
        if at is not None and (not isinstance(at, int) or at < now + 5000):
            return _err("Scheduled cancel time too early, must be at least 5 seconds from now.")
        doc["accounts"][user]["scheduledCancel"] = at
        return _ok({"type": "default"})

    def _housekeeping(self, doc: dict[str, Any], now: int) -> None:
        """Fire scheduled cancels that are due."""
        for account in doc["accounts"].values():
            at = account.get("scheduledCancel")
            if at is not None and at <= now:
                for oid in list(account["open"]):
                    self._close_order(doc, oid, "scheduledCancel", now)
                account["scheduledCancel"] = None

    def _match_resting(self, doc: dict[str, Any], coin: str, now: int) -> list[int]:
        """After the mid moved: fire triggers it crossed and fill resting limits it crossed."""
        mid = D(doc["mids"][coin])
        bid, ask = self._touch(doc, coin)
        touched: list[int] = []
        open_ids = sorted(oid for account in doc["accounts"].values() for oid in account["open"]
                          if doc["orders"][str(oid)]["order"]["coin"] == coin)
        for oid in open_ids:
            rec = doc["orders"][str(oid)]
            order, user = rec["order"], rec["user"]
            is_buy = order["side"] == "B"
            limit, size = D(order["limitPx"]), D(order["sz"])
            if order["isTrigger"]:
                trigger_px = D(order["triggerPx"])
                fires = mid >= trigger_px if "above" in order["triggerCondition"] else mid <= trigger_px
                if not fires:
                    continue
                if rec["trigger"]["isMarket"]:
                    price = ask if is_buy else bid
                else:
                    crosses = limit >= ask if is_buy else limit <= bid
                    if not crosses:  # a stop-limit becomes a resting limit order
                        order["isTrigger"], order["orderType"], order["tif"] = False, "Limit", "Gtc"
                        rec["status"] = "open"
                        touched.append(oid)
                        continue
                    price = ask if is_buy else bid
                crossed = True
            else:
                crosses = limit >= ask if is_buy else limit <= bid
                if not crosses:
                    continue
                price, crossed = limit, False
            if order["reduceOnly"]:
                position = self._szi(doc["accounts"][user], coin)
                if position == 0 or (position > 0) == is_buy:
                    self._close_order(doc, oid, "reduceOnlyCanceled", now)
                    touched.append(oid)
                    continue
                size = min(size, abs(position))
            self._fill(doc, user, coin, size if is_buy else -size, price, crossed, oid, now)
            order["sz"] = fmt(D(order["sz"]) - size)
            self._close_order(doc, oid, "filled" if D(order["sz"]) == 0 else "canceled", now)
            touched.append(oid)
        return touched

    # -- helpers -------------------------------------------------------------------------------

    def _open_orders(self, doc: dict[str, Any], user: str) -> list[dict[str, Any]]:
        account = doc["accounts"].get(user)
        return [doc["orders"][str(oid)] for oid in account["open"]] if account else []

    @staticmethod
    def _spec(doc: dict[str, Any], coin: str) -> dict[str, Any]:
        return next(spec for spec in doc["universe"] if spec["name"] == coin)

    @staticmethod
    def _default_leverage(spec: dict[str, Any]) -> int:
        return min(DEFAULT_LEVERAGE, spec["maxLeverage"])

    def _leverage(self, doc: dict[str, Any], account: dict[str, Any], coin: str) -> Decimal:
        chosen = account["leverage"].get(coin)
        return D(chosen["value"] if chosen else self._default_leverage(self._spec(doc, coin)))

    @staticmethod
    def _szi(account: dict[str, Any], coin: str) -> Decimal:
        held = account["positions"].get(coin)
        return D(held["szi"]) if held else ZERO

    @staticmethod
    def _touch(doc: dict[str, Any], coin: str) -> tuple[Decimal, Decimal]:
        """Best bid and ask: the mid less and plus the half-spread (equal at spread 0)."""
        mid = D(doc["mids"][coin])
        half = mid * D(str(doc.get("spread") or "0"))
        return mid - half, mid + half


__all__ = ["HyperliquidPaper", "UNIVERSE", "fmt", "price_ok", "round_price", "size_ok"]
