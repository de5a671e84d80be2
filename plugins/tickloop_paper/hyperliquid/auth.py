"""Who signed an ``/exchange`` action and whom it may act for: L1 and user-signed signatures
(recovered with the SDK's own helpers, over the action exactly as sent), agent (API) wallets,
sub-accounts acted for through ``vaultAddress``, and nonces."""

from __future__ import annotations

import bisect
from typing import Any

from tickloop_paper.hyperliquid.wire import SignedBody, err, ok
from tickloop_paper.server import Response

DAY_MS = 24 * 60 * 60 * 1000
NONCES_KEPT = 100

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
#: The user-signed actions: their EIP-712 types and primary type.
USER_SIGNED = {
    "approveAgent": (APPROVE_AGENT_TYPES, "HyperliquidTransaction:ApproveAgent"),
    "usdClassTransfer": (USD_CLASS_TRANSFER_TYPES, "HyperliquidTransaction:UsdClassTransfer"),
}


class Refused(Exception):
    """An action refused before it changed anything; answered ``{"status": "err"}`` with the message."""


def l1_user(doc: dict[str, Any], body: SignedBody, now: int) -> str:
    """The account an L1 action acts for, its signer's nonce recorded; :class:`Refused` says why not.

    The signer is recovered as testnet: the SDK signs as testnet for every URL but mainnet's.
    """
    from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

    if body.expires is not None and body.expires < now:
        raise Refused(f"Action expired: expiresAfter {body.expires} is before the current time {now}")
    try:
        signer = recover_agent_or_user_from_l1_action(body.action, body.signature, body.vault, body.nonce,
                                                      body.expires, False).lower()
    except Exception as exc:
        raise Refused(f"Invalid signature: {type(exc).__name__}") from None
    user = acting_user(doc, signer)
    if user is None:
        raise Refused(f"User or API Wallet {signer} does not exist.")
    if body.vault is not None:
        target = doc["accounts"].get(body.vault.lower())
        if target is None or target.get("master") != user:
            raise Refused(f"User or API Wallet {signer} is not authorized to act for {body.vault.lower()}.")
        user = body.vault.lower()
    _check_nonce(doc, signer, body.nonce, now)
    return user


def user_signer(doc: dict[str, Any], body: SignedBody, now: int) -> str:
    """The funded account that signed a user-signed action, its nonce recorded; :class:`Refused` says why not."""
    from hyperliquid.utils.signing import recover_user_from_user_signed_action

    action = body.action
    types, primary = USER_SIGNED[action["type"]]
    message = dict(action)
    if action["type"] == "approveAgent":
        message.setdefault("agentName", "")  # signed with "", sent without it when unnamed
    if action.get("nonce") != body.nonce or not isinstance(action.get("signatureChainId"), str):
        raise Refused("the action's nonce must equal the request's nonce, and signatureChainId must be set")
    try:
        signer = recover_user_from_user_signed_action(message, body.signature, types, primary, False).lower()
    except Exception as exc:
        raise Refused(f"Invalid signature: {type(exc).__name__}") from None
    if signer not in doc["accounts"]:
        raise Refused(f"Must deposit before performing actions. User: {signer}")
    _check_nonce(doc, signer, body.nonce, now)
    return signer


def acting_user(doc: dict[str, Any], signer: str) -> str | None:
    """The account ``signer`` acts for: itself when funded, else the user that approved it as an agent."""
    if signer in doc["accounts"]:
        return signer
    agent = doc["agents"].get(signer)
    if agent is not None and agent["user"] in doc["accounts"]:
        return agent["user"]
    return None


def use_nonce(doc: dict[str, Any], signer: str, nonce: int, now: int) -> str | None:
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


def _check_nonce(doc: dict[str, Any], signer: str, nonce: int, now: int) -> None:
    refused = use_nonce(doc, signer, nonce, now)
    if refused:
        raise Refused(refused)


def approve_agent(doc: dict[str, Any], signer: str, action: dict[str, Any], now: int) -> Response:
    """``approveAgent`` (user-signed): let an agent (API) wallet sign for the signer."""
    agent = str(action.get("agentAddress", "")).lower()
    if len(agent) != 42 or agent in doc["accounts"]:
        return err(f"invalid agent address {agent}")
    name = action.get("agentName", "")
    for address, existing in list(doc["agents"].items()):
        if existing["user"] == signer and existing["name"] == name:  # re-approving a name prunes the old one
            del doc["agents"][address]
    doc["agents"][agent] = {"user": signer, "name": name}
    return ok({"type": "default"})


# -- /info types about signers (handlers: doc, user, body, now) -----------------------------------


def extra_agents(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    return [{"name": a["name"], "address": address, "validUntil": None}
            for address, a in doc["agents"].items() if a["user"] == user]


def user_role(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    account = doc["accounts"].get(user)
    if account is not None:
        return {"role": "subAccount", "data": {"master": account["master"]}} if account.get("master") \
            else {"role": "user"}
    agent = doc["agents"].get(user)
    return {"role": "agent", "data": {"user": agent["user"]}} if agent else {"role": "missing"}
