"""The CLOB's three kinds of signature: L1 headers (an EIP-712 ``ClobAuth`` signed by the
wallet, to create or derive API keys), L2 headers (an HMAC under an API key's secret) and V2
orders (an EIP-712 ``Order`` for the standard or the neg-risk exchange)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Any

import attrs
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak, to_checksum_address

from tickloop_paper.polymarket.wire import BAD_L1, UNAUTHORIZED, ApiError
from tickloop_paper.server import Request

CHAIN_ID = 137
#: Polymarket's contracts on Polygon (public addresses, as the v2 client's config lists them).
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"

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
#: The fields of a V2 order as the client posts it.
V2_FIELDS = ("salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side", "signatureType",
             "timestamp", "metadata", "builder", "signature")


# -- L1: API keys ---------------------------------------------------------------------------------


def l1(r: Request) -> tuple[str, int]:
    """Check the L1 headers; returns (address, nonce)."""
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
    return address.lower(), nonce


def issue_key(doc: dict[str, Any], address: str, nonce: int, *, create: bool) -> dict[str, str]:
    """The API key of ``address`` and ``nonce``: a new one (``create``) or the existing one (derive)."""
    creds = _derive(doc, address, nonce)
    exists = creds["apiKey"] in doc["keys"]
    if create and exists:
        raise ApiError(400, "Could not create api key")
    if not create and not exists:
        raise ApiError(400, "Could not derive api key!")
    doc["keys"][creds["apiKey"]] = {"address": address, "secret": creds["secret"],
                                    "passphrase": creds["passphrase"], "nonce": nonce}
    return creds


def _derive(doc: dict[str, Any], address: str, nonce: int) -> dict[str, str]:
    # Deterministic per address and nonce, under the exchange's own secret.
    seed = bytes.fromhex(doc["secret"])

    def mac(label: str) -> bytes:
        return hmac.new(seed, f"{address}:{nonce}:{label}".encode(), hashlib.sha256).digest()

    return {"apiKey": str(uuid.UUID(bytes=mac("key")[:16])),
            "secret": base64.urlsafe_b64encode(mac("secret")).decode(),
            "passphrase": mac("passphrase").hex()}


# -- L2: requests with an API key -----------------------------------------------------------------


def l2(r: Request, doc: dict[str, Any]) -> tuple[str, str]:
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


# -- V2 orders ------------------------------------------------------------------------------------


@attrs.frozen
class SignedOrder:
    """A V2 order whose signature recovered to its maker, its signer and the API key's address."""

    order_id: str  # the order's EIP-712 hash
    maker_amount: int
    taker_amount: int


def signed_order(order: dict[str, Any], tid: str, side: str, neg_risk: bool, address: str) -> SignedOrder:
    """Check a posted V2 order's signature (signature type 0, EOA, only); raises ApiError as the CLOB answers."""
    try:
        signature_type = int(order["signatureType"])
        maker_amount, taker_amount = int(order["makerAmount"]), int(order["takerAmount"])
        signable = _order_message(order, tid, side, neg_risk, signature_type, maker_amount, taker_amount)
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
    return SignedOrder(order_id, maker_amount, taker_amount)


def _order_message(order: dict[str, Any], tid: str, side: str, neg_risk: bool, signature_type: int,
                   maker_amount: int, taker_amount: int) -> SignableMessage:
    """The EIP-712 message the order's maker signed (domain version "2", the token's exchange)."""
    typed = {
        "types": _ORDER_V2_TYPES, "primaryType": "Order",
        "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": CHAIN_ID,
                   "verifyingContract": NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2},
        "message": {"salt": int(order["salt"]), "maker": to_checksum_address(order["maker"]),
                    "signer": to_checksum_address(order["signer"]), "tokenId": int(tid),
                    "makerAmount": maker_amount, "takerAmount": taker_amount,
                    "side": 0 if side == "BUY" else 1, "signatureType": signature_type,
                    "timestamp": int(order["timestamp"]),
                    "metadata": bytes.fromhex(str(order["metadata"]).removeprefix("0x").zfill(64)),
                    "builder": bytes.fromhex(str(order["builder"]).removeprefix("0x").zfill(64))},
    }
    return encode_typed_data(full_message=typed)
