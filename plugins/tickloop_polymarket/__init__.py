"""tickloop built-in plugin: the Polymarket venue and its closer.

- :mod:`tickloop_polymarket.venue`: the venue object: market orders signed by the session
  wallet as an EOA (V2 EIP-712 orders), redeeming, cancelling, marks and balances;
  :mod:`tickloop_polymarket.safekeeping`, its part in recovery and reconciliation.
- :mod:`tickloop_polymarket.api`: the exchange: the CLOB through the official
  ``py-clob-client-v2`` (L1/L2 API auth), the Data API (``GET /positions``) over ``httpx``.
  Configured by ``[venues.polymarket] clob_url, data_url``; with neither, the exchanges a plugin
  supplies (``tickloop_venue_endpoints``): by default the paper plugin's, running in-process.
- :mod:`tickloop_polymarket.orders`: order wire data: signed orders and their hashes, fills of
  outcome shares with their market's facts, the closing actions.
- :mod:`tickloop_polymarket.platform`: ``agent.platforms.polymarket``: Circuit's
  ``market_order``, ``positions`` and ``redeem_positions`` (plus tickloop's ``markets``).
- :mod:`tickloop_polymarket.closer`: at unwind, cancels the session's resting orders and sells
  its shares with FAK orders; reports dust and resolved markets it leaves.
"""

from __future__ import annotations

from collections.abc import Callable

from tickloop import hookimpl
from tickloop.registry import Backend

#: The venue's (and its closer's) name, as ``agent.platforms.polymarket`` and ``[venues.polymarket]``.
NAME = "polymarket"
#: The keys ``[venues.polymarket]`` accepts (checked when the runtime starts).
OPTIONS = ("clob_url", "data_url", "paper", "timeout_seconds", "close_attempts", "close_pause_seconds")


def _venue(config: object, endpoints: object) -> object:
    # Imported on first use: building the registry (every runtime start) must not import the client.
    from tickloop_polymarket.venue import factory

    return factory(config, endpoints)  # type: ignore[arg-type]


def _closer(config: object) -> object:
    from tickloop_polymarket.closer import factory

    return factory(config)  # type: ignore[arg-type]


@hookimpl
def tickloop_register_venues(register: Callable[[Backend], None]) -> None:
    register(Backend(name=NAME, factory=_venue, options=OPTIONS,
                     description="Polymarket CLOB v2 (py-clob-client-v2) and Data API; paper exchange by default"))


@hookimpl
def tickloop_register_closers(register: Callable[[Backend], None]) -> None:
    register(Backend(name=NAME, factory=_closer,
                     description="cancels the session's orders, sells its shares with FAK, reports dust and"
                                 " resolved markets"))


__all__ = ["NAME"]
