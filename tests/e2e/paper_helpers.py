"""Shared by the money e2e tests (the ``paper`` fixture in conftest.py runs ``tickloop paper serve``
in its own process): faults armed over HTTP, and what the exchange says an account holds and placed,
to compare with the ledgers."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from hyperliquid.info import Info

from tickloop.intents import SENDING
from tickloop.ledger import Book

D = Decimal


def configure(home: Path, paper: dict[str, str], executor: str = "inline", extra: str = "") -> None:
    (home / "tickloop.toml").write_text(
        f'[runtime]\nexecutor = "{executor}"\nworkers = 1\n{extra}[memory]\nbackend = "diskcache"\n'
        f'[venues.hyperliquid]\nbase_url = "{paper["hyperliquid"]}"\npaper = true\n'
        f'[venues.polymarket]\nclob_url = "{paper["polymarket_clob"]}"\ndata_url = "{paper["polymarket_data"]}"\n'
        'paper = true\n')


def arm(url: str, **fault: Any) -> None:
    requests.post(url + "/paper/faults", json=fault, timeout=5).raise_for_status()


def disarm(url: str) -> None:
    requests.delete(url + "/paper/faults", timeout=5).raise_for_status()


def position(paper: dict[str, str], wallet: str) -> dict[str, Decimal]:
    state = Info(paper["hyperliquid"], skip_ws=True).user_state(wallet)
    return {p["position"]["coin"]: D(p["position"]["szi"]) for p in state["assetPositions"]}


def orders_placed(paper: dict[str, str], wallet: str) -> list[dict[str, Any]]:
    """Every order the exchange placed for the wallet (filled, resting or cancelled), oldest first."""
    found = Info(paper["hyperliquid"], skip_ws=True).historical_orders(wallet)
    return sorted((entry["order"] for entry in found), key=lambda o: o["oid"])


def ledger_holds(rt: Any, session_id: int) -> dict[str, Decimal]:
    return {h.coin: h.size for h in Book.replay(rt.store.ledger([session_id])).open_holdings()}


def approve(home: Path, suggestion_id: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tickloop.cli", "--home", str(home), "suggestions", "approve",
                             str(suggestion_id)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)


def assert_books_match_the_exchange(rt: Any, paper: dict[str, str], session: Any) -> None:
    """Every fill booked once, nothing sent twice, nothing stuck."""
    intents = rt.store.intents(session_id=session.id)
    assert [i for i in intents if i.status == SENDING] == []
    placed = orders_placed(paper, session.wallet)
    executed = [i for i in intents if i.status == "executed"]
    assert sorted(o["cloid"] for o in placed) == sorted(i.client_id for i in executed)
    assert position(paper, session.wallet) == {k: v for k, v in ledger_holds(rt, session.id).items() if v}
    assert rt.suggestions(session_id=session.id, status="approved") == []
    by_suggestion = [i.suggestion_id for i in intents if i.suggestion_id is not None]
    assert len(by_suggestion) == len(set(by_suggestion))  # no suggestion sent twice
