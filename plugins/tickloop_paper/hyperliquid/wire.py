"""Hyperliquid's wire format: numbers as it writes them, its answer envelopes, an ``/exchange``
body, and the call an ``/exchange`` action's handler gets once the signature checked out."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import attrs

from tickloop_paper.server import Faults, Response

D = Decimal
ZERO = D(0)
USD = D("0.000001")


def fmt(value: Decimal) -> str:
    """A decimal as Hyperliquid writes numbers: plain, trimmed, at least one decimal ("60000.0")."""
    text = format(value.normalize(), "f")
    if text in ("-0", "0", ""):
        return "0.0"
    return text if "." in text else text + ".0"


def usd(value: Decimal) -> Decimal:
    return value.quantize(USD)


def now_ms() -> int:
    return int(time.time() * 1000)


def ok(response: Any) -> Response:
    return Response.json({"status": "ok", "response": response})


def err(message: str) -> Response:
    return Response.json({"status": "err", "response": message})


def bad_body() -> Response:
    # Hyperliquid answers a body it cannot parse with 422 and plain text; the SDK raises it.
    return Response.text("Failed to deserialize the JSON body into the target type", 422)


@attrs.frozen
class SignedBody:
    """A ``POST /exchange`` body whose fields have the right types (its signature not checked yet)."""

    action: dict[str, Any]
    nonce: int
    signature: dict[str, Any]
    vault: str | None
    expires: int | None

    @classmethod
    def parse(cls, body: Any) -> SignedBody | None:
        """The body's fields, or None where Hyperliquid could not deserialize it."""
        if not isinstance(body, dict):
            return None
        action, nonce, signature = body.get("action"), body.get("nonce"), body.get("signature")
        vault, expires = body.get("vaultAddress"), body.get("expiresAfter")
        if (not isinstance(action, dict) or not isinstance(action.get("type"), str) or not isinstance(nonce, int)
                or not isinstance(signature, dict) or not {"r", "s", "v"} <= set(signature)
                or not (vault is None or isinstance(vault, str)) or not (expires is None or isinstance(expires, int))):
            return None
        return cls(action, nonce, signature, vault, expires)


@attrs.frozen
class Call:
    """An L1 action to carry out: signer and nonce checked, ``user`` the account it acts for."""

    doc: dict[str, Any]  # the exchange's document, inside its transaction
    user: str
    action: dict[str, Any]
    now: int  # ms
    faults: Faults
