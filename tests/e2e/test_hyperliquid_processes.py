"""Hyperliquid across processes: ``tickloop paper serve`` for any client, and sessions on one
paper account run by worker processes that each start the home's paper exchange over the same
state file."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from tickloop.testing import T0
from tickloop_paper import local_exchanges

D = Decimal
NULL = "0x0000000000000000000000000000000000000000"
STARTING_ASSET = {"network": "hypercore:perp", "address": NULL, "minimumAmount": "100000000"}
AGENT = """
def run(agent):
    import json
    for order in json.loads(agent.settings["orders"]):
        r = agent.platforms.hyperliquid.place_order(order)
        agent.log(f"order {order['coin']} {order['side']} {order['size']}: {r.success} {r.error}")
"""
SETTINGS = {"orders": {"type": "text", "default": "[]", "description": "orders placed by every run"}}


def test_paper_serve_speaks_hyperliquid_to_the_official_sdk(tmp_path: Path):
    """``tickloop paper serve`` prints one JSON line of base URLs, then serves them; the state
    outlives the server; SIGTERM ends it cleanly."""
    proc = subprocess.Popen([sys.executable, "-m", "tickloop.cli", "paper", "serve",
                             "--state", str(tmp_path / "state")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert sorted(urls) == ["hyperliquid", "polymarket_clob", "polymarket_data"]
        assert all(u.startswith("http://127.0.0.1:") for u in urls.values())
        url = urls["hyperliquid"]
        funded = requests.post(urls["polymarket_clob"] + "/paper/fund", json={"address": Account.create().address,
                                                                               "pusd": 25}, timeout=5)
        assert funded.status_code == 200
        trader = Account.create()
        requests.post(url + "/paper/fund", json={"user": trader.address, "usdc": 500}, timeout=5).raise_for_status()
        answer = Exchange(trader, url).market_open("BTC", False, 0.002)
        [status] = answer["response"]["data"]["statuses"]
        assert status["filled"]["totalSz"] == "0.002"
        [position] = Info(url, skip_ws=True).user_state(trader.address)["assetPositions"]
        assert position["position"]["szi"] == "-0.002"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    # The state outlives the server.
    saved = json.loads((tmp_path / "state" / "hyperliquid.json").read_text())
    assert saved["accounts"][trader.address.lower()]["positions"]["BTC"]["szi"] == "-0.002"


def test_worker_processes_share_the_homes_paper_account(tickloop_home, agent_folder, make_runtime):
    (tickloop_home / "tickloop.toml").write_text('[plugins]\nload = ["tickloop_hyperliquid"]\n')
    rt = make_runtime(executor="process", memory="diskcache", overrides={"runtime": {"workers": 2}})
    wallet = rt.add_wallet(paper=True)
    buy = {"coin": "ETH", "side": "buy", "size": 0.1, "price": 3100, "market": "perp", "type": "market"}
    sessions = []
    for name, size in (("alpha", 0.1), ("beta", 0.2)):
        folder = agent_folder(AGENT, name=name, settings=SETTINGS, startingAsset=STARTING_ASSET)
        orders = json.dumps([dict(buy, size=size)] * 3)
        sessions.append(rt.start_session(str(folder), wallet, settings={"orders": orders}, now=T0))
    runs = rt.tick(T0)
    assert sorted(r.status for r in runs) == ["succeeded", "succeeded"]
    for run in runs:
        assert all(": True None" in line.message for line in run.logs), [line.message for line in run.logs]
    alpha, beta = sessions
    assert {p.coin: D(p.size) for p in rt.portfolio(alpha.id).positions} == {"ETH": D("0.3")}
    assert {p.coin: D(p.size) for p in rt.portfolio(beta.id).positions} == {"ETH": D("0.6")}
    # This process's paper exchange reads the state the workers' exchanges wrote.
    url = local_exchanges(tickloop_home).hyperliquid.url
    [position] = Info(url, skip_ws=True).user_state(wallet)["assetPositions"]
    assert position["position"]["szi"] == "0.9"

    rt.unwind(alpha.id, now=T0)
    assert rt.session(alpha.id).state == "stopped"
    assert rt.runs(alpha.id)[-1].error is None
    [position] = Info(url, skip_ws=True).user_state(wallet)["assetPositions"]
    assert position["position"]["szi"] == "0.6"
