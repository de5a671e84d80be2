"""tickloop built-in plugin: the Hyperliquid venue and closer, on the official
``hyperliquid-python-sdk``.

- :mod:`tickloop_hyperliquid.venue`: the venue object: execution of orders, cancels and
  transfers, marks, balances, and booking of late fills of resting orders;
  :mod:`tickloop_hyperliquid.safekeeping`, its part in recovery and reconciliation.
- :mod:`tickloop_hyperliquid.api`: the exchange, through the SDK (reads, signed actions, the
  per-signer nonce lock).
- :mod:`tickloop_hyperliquid.orders`: order wire data: requests checked and rounded, answers
  as Circuit's shapes, fills.
- :mod:`tickloop_hyperliquid.platform`: ``agent.platforms.hyperliquid`` (Circuit's methods
  and result shapes, scoped to the session).
- :mod:`tickloop_hyperliquid.closer`: unwinds one session's share of a shared, netted account
  with IOC orders sized from its ledger (reduce-only whenever that only reduces the account),
  retrying until flat or a budget runs out, and reports the residue.

With no ``[venues.hyperliquid] base_url`` configured, both use the exchange a plugin supplies
(``tickloop_venue_endpoints``): by default the paper plugin's in-process paper exchange for the
home, where paper wallets trade (as on a URL marked ``paper = true``) and are funded on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from tickloop import hookimpl
from tickloop.registry import Backend

#: The venue's (and its closer's) name, as ``agent.platforms.hyperliquid`` and ``[venues.hyperliquid]``.
NAME = "hyperliquid"
#: The keys ``[venues.hyperliquid]`` accepts (checked when the runtime starts).
OPTIONS = ("base_url", "paper", "timeout_seconds", "close_attempts", "close_slippage", "close_retry_delay")


def _venue(config: object, endpoints: object) -> object:
    # Imported on first use: building the registry (every runtime start) must not import the SDK.
    from tickloop_hyperliquid.venue import HyperliquidVenue

    return HyperliquidVenue(config, endpoints)  # type: ignore[arg-type]


def _closer(config: object) -> object:
    from tickloop_hyperliquid.closer import HyperliquidCloser

    return HyperliquidCloser(config)  # type: ignore[arg-type]


@hookimpl
def tickloop_register_venues(register: Callable[[Backend], None]) -> None:
    register(Backend(name=NAME, factory=_venue, options=OPTIONS,
                     description="Hyperliquid perps via hyperliquid-python-sdk (paper exchange unless"
                                 " [venues.hyperliquid] base_url is set)"))


@hookimpl
def tickloop_register_closers(register: Callable[[Backend], None]) -> None:
    register(Backend(name=NAME, factory=_closer,
                     description="closes a session's Hyperliquid share with reduce-only IOC orders from its ledger"))


__all__ = ["NAME"]
