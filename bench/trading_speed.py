"""What tickloop's trading path costs on top of the official client, on the paper exchange.

One in-process paper Hyperliquid exchange (``tickloop_paper.start_exchanges``), one funded paper
wallet, N market orders (IOC, alternating buy and sell of 0.01 ETH) sent three ways, measured in
the same run::

    .venv/bin/python bench/trading_speed.py [--orders 200]

- ``sdk``: the official ``hyperliquid.exchange.Exchange.order`` (the baseline): sign, POST,
  parse the answer.
- ``auto``: ``Gateway.submit`` of the same order as an :class:`~tickloop.actions.Action` for a
  session in auto mode: the router, the venue (the same SDK call, the signer's nonce lock, the
  fee read from ``userFills``), and booking the fill in the session's ledger.
- ``manual``: the same submitted by a session in manual mode (a stored suggestion), then
  ``Runtime.approve``: compare-and-set, execution as above, and the suggestion's result.

Prints one JSON document: per-order mean and p50/p99 in milliseconds, and the ratios to ``sdk``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from tickloop.actions import ORDER, Action


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"mean_ms": round(statistics.fmean(ordered) * 1000, 3),
            "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3)}


def _timed(n: int, one: Callable[[int], Any]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        one(i)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()

    import httpx
    from eth_account import Account
    from hyperliquid.exchange import Exchange

    from tickloop.runtime import Runtime
    from tickloop_paper import local_exchanges

    home = tempfile.mkdtemp(prefix="tickloop-bench-trading-")
    rt = Runtime.from_config(home=home, overrides={"runtime": {"executor": "inline"}})
    url = local_exchanges(home).hyperliquid.url
    n = args.orders

    trader = Account.create()
    httpx.post(f"{url}/paper/fund", json={"user": trader.address, "usdc": "100000"}, timeout=10)
    exchange = Exchange(trader, url)
    sdk = _timed(n, lambda i: exchange.order("ETH", i % 2 == 0, 0.01, 3100 if i % 2 == 0 else 2900,
                                             {"limit": {"tif": "Ioc"}}))

    from tickloop.testing import render_manifest

    folder = f"{home}/agent"
    import os

    os.makedirs(folder)
    with open(f"{folder}/circuit.toml", "w") as f:
        f.write(render_manifest({"name": "bench", "tagline": "bench", "walletType": "ethereum",
                                 "allowedExecutionModes": ["auto", "manual"], "runtimeIntervalMinutes": 60,
                                 "schedule": "rolling", "version": "0.1.0"}))
    with open(f"{folder}/main.py", "w") as f:
        f.write("def run(agent):\n    pass\n")
    wallet = rt.add_wallet(paper=True)
    auto_session = rt.start_session(folder, wallet, mode="auto")
    gateway = rt.gateway

    def action(session: Any, i: int) -> Action:
        buy = i % 2 == 0
        params = {"coin": "ETH", "side": "buy" if buy else "sell", "size": 0.01, "price": 3100 if buy else 2900,
                  "market": "perp", "type": "market"}
        return Action(venue="hyperliquid", kind=ORDER, method="place_order", params=params, session_id=session.id,
                      wallet=session.wallet)

    first = gateway.submit(auto_session, action(auto_session, 0))  # funds the paper account, warms up
    assert first.success, first.error
    auto = _timed(n, lambda i: gateway.submit(auto_session, action(auto_session, i + 1)))
    rt.stop(auto_session.id)

    manual_session = rt.start_session(folder, wallet, mode="manual")

    def suggest_and_approve(i: int) -> None:
        answer = gateway.submit(manual_session, action(manual_session, i))
        decided = rt.approve(answer.data["suggestionId"])
        assert decided.status == "executed", decided.error

    manual = _timed(n, suggest_and_approve)
    rt.close()
    base = _stats(sdk)
    out = {"orders": n, "sdk": base, "auto": _stats(auto), "manual": _stats(manual),
           "ratio_to_sdk": {name: round(_stats(s)["p50_ms"] / base["p50_ms"], 2)
                            for name, s in (("auto", auto), ("manual", manual))}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
