"""Where the built-in venues connect when ``[venues.*]`` names no URL: the endpoints a plugin
supplies (``tickloop_venue_endpoints``). The paper plugin supplies its exchanges, last; blocked,
the venues have no defaults, and using one fails with an error naming the key to set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import tickloop
from tickloop.actions import ORDER, Action
from tickloop.config import Config
from tickloop.errors import ConfigError
from tickloop.testing import T0
from tickloop.venues import DefaultEndpoints, Endpoints
from tickloop_paper import local_exchanges, start_exchanges
from tickloop_paper.polymarket import SEED_MARKETS, condition_id, token_id

TOKEN = token_id(condition_id(SEED_MARKETS[0][0]), 0)
ETH_BUY = {"coin": "ETH", "side": "buy", "size": 0.1, "price": 3150, "market": "perp", "type": "market"}
BLOCK_PAPER = {"plugins": {"block": ["paper"]}}

# One order on each built-in venue, each answer logged.
AGENT = f"""
import json

def run(agent):
    answer = agent.platforms.hyperliquid.place_order({ETH_BUY!r})
    agent.log("hyperliquid " + json.dumps(answer.to_dict()))
    answer = agent.platforms.polymarket.market_order({{"tokenId": "{TOKEN}", "size": 10, "side": "BUY"}})
    agent.log("polymarket " + json.dumps(answer.to_dict()))
"""


def answers(run: Any) -> dict[str, dict[str, Any]]:
    return {venue: json.loads(text) for venue, _, text in (line.message.partition(" ") for line in run.logs)}


def stop(exchanges: Any) -> None:
    for server in (exchanges.hyperliquid, exchanges.polymarket_clob, exchanges.polymarket_data):
        threading.Thread(target=server.stop, daemon=True).start()


@pytest.fixture
def exchanges() -> Iterator[Any]:
    """Paper exchanges of the test's own, standing in for exchanges a plugin or config names."""
    found = start_exchanges(None)
    yield found
    stop(found)


class Endpointer:
    """A third-party plugin that supplies the built-in venues' endpoints."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    @tickloop.hookimpl
    def tickloop_venue_endpoints(self, venue: str) -> Any:
        return self.answer if venue == "hyperliquid" else None


def test_the_paper_plugin_supplies_its_exchanges_for_the_built_in_venues(make_runtime, tickloop_home):
    rt = make_runtime()
    ask = rt.pm.hook.tickloop_venue_endpoints
    try:
        paper = local_exchanges(tickloop_home)
        assert ask(venue="hyperliquid", config=rt.config) == Endpoints({"base_url": paper.hyperliquid.url}, paper=True)
        assert ask(venue="polymarket", config=rt.config) == Endpoints(
            {"clob_url": paper.polymarket_clob.url, "data_url": paper.polymarket_data.url}, paper=True)
        assert ask(venue="mydex", config=rt.config) is None
    finally:
        stop(local_exchanges(tickloop_home))


def test_with_paper_blocked_a_venue_without_urls_fails_naming_the_key(make_runtime, agent_folder):
    rt = make_runtime(overrides=BLOCK_PAPER)
    assert rt.pm.is_blocked("paper")
    assert rt.pm.hook.tickloop_venue_endpoints(venue="hyperliquid", config=rt.config) is None
    wallet = rt.add_wallet(paper=True)
    s = rt.start_session(str(agent_folder(AGENT)), wallet, now=T0)
    [run] = rt.tick(T0)
    found = answers(run)
    assert not found["hyperliquid"]["success"] and not found["polymarket"]["success"]
    assert "venues.hyperliquid.base_url: not set, and no plugin supplies a default base_url for hyperliquid" \
        in found["hyperliquid"]["error"]
    assert "venues.polymarket.clob_url: not set, and no plugin supplies a default clob_url for polymarket" \
        in found["polymarket"]["error"]
    # An approved suggestion reaches execute directly: it fails the same way, and does not raise.
    venue = rt.gateway.venues.get("hyperliquid")
    action = Action(venue="hyperliquid", kind=ORDER, method="place_order", params=ETH_BUY, session_id=s.id,
                    wallet=wallet)
    execution = venue.execute(action, rt.wallet(wallet))
    assert not execution.ok and "venues.hyperliquid.base_url: not set" in execution.error


def test_with_paper_blocked_configured_venues_still_trade(make_runtime, agent_folder, exchanges):
    venues = {"hyperliquid": {"base_url": exchanges.hyperliquid.url, "paper": True},
              "polymarket": {"clob_url": exchanges.polymarket_clob.url, "data_url": exchanges.polymarket_data.url,
                             "paper": True}}
    rt = make_runtime(overrides={**BLOCK_PAPER, "venues": venues})
    rt.start_session(str(agent_folder(AGENT)), rt.add_wallet(paper=True), now=T0)
    [run] = rt.tick(T0)
    found = answers(run)
    assert found["hyperliquid"]["success"] and found["polymarket"]["success"], found
    assert exchanges.hyperliquid.requests("/exchange") and exchanges.polymarket_clob.requests("/order", "POST")


def test_a_plugins_endpoints_come_before_the_paper_exchanges(make_runtime, agent_folder, exchanges, tickloop_home):
    rt = make_runtime(plugins=[Endpointer(Endpoints({"base_url": exchanges.hyperliquid.url}, paper=True))])
    rt.start_session(str(agent_folder(AGENT)), rt.add_wallet(paper=True), now=T0)
    [run] = rt.tick(T0)
    found = answers(run)
    assert found["hyperliquid"]["success"], found
    assert len(exchanges.hyperliquid.requests("/exchange")) == 1  # on the plugin's exchange
    paper = local_exchanges(tickloop_home)  # Polymarket still has the paper plugin's
    try:
        assert found["polymarket"]["success"], found
        assert paper.hyperliquid.requests("/exchange") == []
    finally:
        stop(paper)


def test_a_plugins_endpoints_that_are_not_paper_refuse_paper_wallets(make_runtime, agent_folder, exchanges):
    rt = make_runtime(plugins=[Endpointer(Endpoints({"base_url": exchanges.hyperliquid.url}))])
    wallet = rt.add_wallet(paper=True)
    rt.start_session(str(agent_folder(AGENT)), wallet, now=T0)
    [run] = rt.tick(T0)
    error = answers(run)["hyperliquid"]["error"]
    assert f"wallet {wallet} is a paper wallet and cannot trade on the Hyperliquid exchange at" \
           f" {exchanges.hyperliquid.url}" in error
    assert exchanges.hyperliquid.requests("/exchange") == []


def test_a_plugin_answering_something_else_fails_the_call(make_runtime, agent_folder, exchanges):
    rt = make_runtime(plugins=[Endpointer({"base_url": exchanges.hyperliquid.url})])
    rt.start_session(str(agent_folder(AGENT)), rt.add_wallet(paper=True), now=T0)
    [run] = rt.tick(T0)
    error = answers(run)["hyperliquid"]["error"]
    assert "tickloop_venue_endpoints answered {'base_url'" in error
    assert "expected tickloop.venues.Endpoints or None" in error


def test_configured_urls_win_and_plugins_are_asked_only_without_them(tmp_path):
    class Hook:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def tickloop_venue_endpoints(self, venue: str, config: Any) -> Endpoints:
            self.asked.append(venue)
            return Endpoints({"clob_url": "http://plugin/", "data_url": "http://plugin/data"}, paper=True)

    hook = Hook()
    endpoints = DefaultEndpoints(hook, Config.load(home=tmp_path), "polymarket")
    configured = {"clob_url": "https://clob.example/", "data_url": "https://data.example"}
    assert endpoints.resolve(configured, "clob_url", "data_url") == Endpoints(
        {"clob_url": "https://clob.example", "data_url": "https://data.example"}, paper=False)
    assert endpoints.resolve({**configured, "paper": True}, "clob_url", "data_url").paper is True
    assert hook.asked == []
    assert endpoints.resolve({"timeout_seconds": 3}, "clob_url", "data_url") == Endpoints(
        {"clob_url": "http://plugin", "data_url": "http://plugin/data"}, paper=True)
    assert hook.asked == ["polymarket"]
    with pytest.raises(ConfigError, match=r"config: venues\.polymarket\.rpc_url: not set, and no plugin supplies a"
                                          r" default rpc_url for polymarket"):
        endpoints.get("clob_url", "rpc_url")
