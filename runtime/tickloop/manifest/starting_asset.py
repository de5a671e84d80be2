"""``[startingAsset]``: what a session of the agent is funded with."""

from __future__ import annotations

import re
from typing import Any

import attrs

from tickloop.manifest.problems import Collector, got, unknown_key_reason
from tickloop.manifest.vocabulary import STARTING_ASSET_KEYS
from tickloop.ranges import is_raw_amount

_RAW_AMOUNT = re.compile(r"[0-9]+")


@attrs.frozen
class StartingAsset:
    """``[startingAsset]``: what a session is funded with. ``minimumAmount`` is raw base units."""

    network: str
    address: str
    minimumAmount: str

    @property
    def minimum_amount(self) -> int:
        return int(self.minimumAmount)


def parse_starting_asset(value: Any, out: Collector) -> StartingAsset | None:
    """The ``[startingAsset]`` table, or None when it has a problem (each one added to ``out``)."""
    if not isinstance(value, dict):
        out.add("startingAsset",
                f"must be a table [startingAsset] with network, address and minimumAmount, {got(value)}")
        return None
    ok = True
    fields: dict[str, str] = {}
    for key in STARTING_ASSET_KEYS:
        path = f"startingAsset.{key}"
        if key not in value:
            out.add(path, "required key is missing")
            ok = False
            continue
        reason = _field_problem(key, value[key])
        if reason is not None:
            out.add(path, reason)
            ok = False
            continue
        fields[key] = value[key]
    for key in value:
        if key not in STARTING_ASSET_KEYS:
            out.add(f"startingAsset.{key}", unknown_key_reason(key, STARTING_ASSET_KEYS, top_level=False))
            ok = False
    return StartingAsset(**fields) if ok else None


def _field_problem(key: str, item: Any) -> str | None:
    if key == "minimumAmount":
        if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            return f'must be a string of digits in raw base units; write it in quotes: "{item}"'
        if not isinstance(item, str) or not _RAW_AMOUNT.fullmatch(item):
            return f'must be a string of digits in raw base units (like "100000000" for 100 USDC), {got(item)}'
        if not is_raw_amount(item):
            return f"must be at most 2**256 - 1 raw units (78 digits), got {len(item)} digits"
        return None
    if not isinstance(item, str):
        return f"must be a string, {got(item)}"
    if key == "network" and not item.strip():
        return 'must not be empty (a network like "ethereum:1", "solana" or "hypercore:perp")'
    return None
