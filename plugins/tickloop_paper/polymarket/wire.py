"""Polymarket's wire format: amounts as 6-decimal integers, prices as plain text, errors as
``{"error": message}`` with an HTTP status, and the CLOB's error messages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

UNIT = 10**6  # pUSD and shares have 6 decimals
LOT = UNIT // 100  # fills are whole multiples of 0.01 shares
END_CURSOR = "LTE="

NO_BOOK = "No orderbook exists for the requested token id"
NO_BALANCE = "not enough balance / allowance"
FOK_UNFILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."
FAK_UNMATCHED = ("no orders found to match with FAK order."
                 " FAK orders are partially filled or killed if no match is found.")
UNAUTHORIZED = "Unauthorized/Invalid api key"
BAD_L1 = "Invalid L1 Request headers"


class ApiError(Exception):
    """An error the exchange answers as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def dec(value: Any, what: str) -> Decimal:
    """``value`` as a finite decimal; a 400 naming ``what`` otherwise."""
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ApiError(400, f"Invalid payload: {what} must be a number, got {value!r}") from None
    if not out.is_finite():
        raise ApiError(400, f"Invalid payload: {what} must be a finite number, got {value!r}")
    return out


def units(raw: int) -> str:
    """Raw 6-decimal units as a decimal string (``12500000`` -> ``"12.5"``)."""
    text = format((Decimal(raw) / UNIT).normalize(), "f")
    return "0" if text in ("-0", "") else text


def price_text(price: Decimal) -> str:
    return format(price.normalize(), "f")
