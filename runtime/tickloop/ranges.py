"""The numbers a user may write: every number key of ``tickloop.toml`` and ``circuit.toml`` has a
:class:`Range`, a type (whole or any finite number; never a boolean, nan or infinity) and bounds.

The bounds are far beyond any real use and keep the arithmetic done with the value in range
(datetimes end in the year 9999; SQLite integers are 64-bit). The docs' configuration and
circuit.toml references list the same ranges; ``describe()`` is the text they use.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs

#: TOML's integers (and SQLite's): signed 64-bit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The largest raw amount (token base units): an EVM word, uint256.
MAX_RAW_AMOUNT = 2**256 - 1


@attrs.frozen
class Range:
    """Numbers from ``low`` to ``high`` (``low`` itself excluded when ``above``); ``whole``: ints
    only (a float such as ``1.5`` or ``4.0`` is refused, as TOML writes whole numbers without a
    point)."""

    low: float
    high: float
    whole: bool = False
    above: bool = False
    unit: str = ""  # "minutes": "a number of minutes from ..."

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not in this range, as "must be ..., got ...", or None."""
        if self._fits(value):
            return None
        return f"must be {self.describe()}, got {show(value)}"

    def _fits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above_low = value > self.low if self.above else value >= self.low
        return above_low and value <= self.high

    def describe(self) -> str:
        """"a whole number from 1 to 256", "a number greater than 0 and at most 604800"."""
        kind = "a whole number" if self.whole else "a number"
        if self.unit:
            kind = f"{kind} of {self.unit}"
        low, high = _number(self.low), _number(self.high)
        if self.above:
            return f"{kind} greater than {low} and at most {high}"
        return f"{kind} from {low} to {high}"

    def __call__(self, instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        """As an attrs validator: ValueError("<field>: must be ...")."""
        reason = self.problem(value)
        if reason is not None:
            raise ValueError(f"{attribute.name}: {reason}")


def is_raw_amount(text: str) -> bool:
    """Whether ``text`` is a raw amount: ASCII digits (no sign, no point) of a number from 0 to
    :data:`MAX_RAW_AMOUNT`. (``"²".isdigit()`` is true, and ``int()`` of more than 4300 digits
    fails: both are refused here, before any ``int()``.)"""
    return (isinstance(text, str) and text.isascii() and text.isdigit() and len(text.lstrip("0")) <= 78
            and int(text) <= MAX_RAW_AMOUNT)


def show(value: Any, limit: int = 60) -> str:
    """``value`` as TOML writes it (true, nan, "text"), shortened to ``limit`` characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, int) and abs(value) >= 10**30:
        text = "a number of more than 30 digits"  # str() of a huge int is slow, and refused past 4300 digits
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
