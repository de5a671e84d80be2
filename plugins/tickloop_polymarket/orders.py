"""Polymarket order wire data: signed V2 orders and their ids (EIP-712 hashes), the fills of
outcome shares the ledger books with the facts of their market, Circuit's answer to a market
order, and the selling and cancelling actions closers and reconciliation send.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from tickloop.actions import CANCEL, ORDER, Action, Execution, Fill
from tickloop.portfolio import decimal_text
from tickloop.wallets import POLYMARKET_PUSD
from tickloop_polymarket import NAME

if TYPE_CHECKING:
    from tickloop.sessions import Session

NETWORK, PUSD = POLYMARKET_PUSD
CHAIN_ID = 137
#: Gnosis CTF on Polygon: the ERC-1155 contract outcome shares live in.
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
DECIMALS = 6
UNIT = Decimal(10) ** DECIMALS
#: What a fill keeps of a market's facts, as the position's ``polymarketMetadata``.
METADATA = ("contractAddress", "tokenId", "decimals", "conditionId", "question", "outcome", "outcomeIndex",
            "isNegativeRisk", "imageUrl", "endDate", "slug")


def num(value: Decimal) -> str:
    return decimal_text(value) or "0"


@attrs.frozen
class SignedOrder:
    """A market order signed by :meth:`PolymarketVenue.prepare`, waiting to be posted."""

    order: Any  # py_clob_client_v2's SignedOrderV2
    order_hash: str
    order_type: str
    side: str
    token: str
    info: dict[str, Any] = attrs.field(eq=False)


def order_hash(order: Any) -> str:
    """A signed V2 order's id: the EIP-712 hash the CLOB answers ``orderID`` with, for the
    exchange contract its signature was made for (recovering to its signer)."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from py_clob_client_v2.config import get_contract_config
    from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2

    contracts = get_contract_config(CHAIN_ID)
    for contract, version in ((contracts.exchange_v2, "2"), (contracts.neg_risk_exchange_v2, "2"),
                              (contracts.exchange_v3, "3")):
        builder = ExchangeOrderBuilderV2(contract, CHAIN_ID, None, domain_version=version)
        typed = builder.build_order_typed_data(order)
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=order.signature)
        if signer.lower() == str(order.signer).lower():
            return builder.build_order_hash(typed)
    raise ValueError("the order's signature matches no Polymarket exchange contract")


def metadata(info: dict[str, Any]) -> dict[str, Any]:
    """What a fill keeps as the position's ``polymarketMetadata`` (the market's static facts)."""
    return {key: info[key] for key in METADATA}


def share_fill(info: dict[str, Any], size: Decimal, price: Decimal, order_id: str | None = None) -> Fill:
    """A fill (or a holding) of ``size`` (signed) outcome shares of ``info``'s token at ``price``
    pUSD each, with the market's facts."""
    token = info["tokenId"]
    return Fill(venue=NAME, network=NETWORK, asset_key=token, coin=info["outcome"] or token, size=size, price=price,
                contract="spot", cash_network=NETWORK, cash_asset=PUSD, cash_symbol="pUSD", cash_decimals=DECIMALS,
                order_id=order_id, meta=metadata(info))


def filled(side: str, shares: Decimal, usd: Decimal, order_id: str, info: dict[str, Any], *,
           tx_hashes: Any = None, resting: bool = False) -> Execution:
    """The execution of an order that matched ``shares`` for ``usd``: the fill and Circuit's
    answer (``{success, orderInfo}``); ``resting``: the rest of the order is still open."""
    price = (usd / shares).quantize(Decimal("1e-12")).normalize()
    fill = share_fill(info, shares if side == "BUY" else -shares, price, order_id)
    data = {"success": True, "orderInfo": {"orderId": order_id, "side": side, "size": num(shares),
                                           "priceUsd": num(price), "totalPriceUsd": num(usd),
                                           "txHashes": list(tx_hashes or [])}}
    return Execution(data=data, fills=(fill,), order_ids=(order_id,) if resting else ())


def sell_order(session: Session, token: str, size: Decimal, *, notional: Decimal | None, message: str) -> Action:
    """A fill-and-kill market sell of ``size`` shares of ``token``."""
    return Action(venue=NAME, kind=ORDER, method="market_order",
                  params={"tokenId": token, "size": float(size), "side": "SELL", "orderType": "FAK"},
                  session_id=session.id, wallet=session.wallet, notional_usd=notional, message=message)


def cancel_orders(session: Session, order_ids: list[str], message: str) -> Action:
    """An action cancelling the open orders ``order_ids``."""
    return Action(venue=NAME, kind=CANCEL, method="cancel_orders", params={"orderIds": order_ids},
                  session_id=session.id, wallet=session.wallet, message=message)
