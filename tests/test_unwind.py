"""Unwind: the agent's unwind with the portfolio, then the closers; residue; manual-mode unwinds."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import sim_venue
import tickloop
import tickloop.scheduler
from tickloop.ledger import Book
from tickloop.testing import T0

D = Decimal
M = timedelta(minutes=1)
WALLET = "0x" + "ab" * 20

# run: places the orders of the "orders" setting (market orders at the sim's mid) and writes
# session and shared memory. unwind: logs the portfolio it received, then closes the coins of
# the "close" setting itself (or raises, when "explode" is set).
AGENT = """
import json
from decimal import Decimal

def run(agent):
    agent.memory.set("mine", "1")
    agent.memory.set("ours", "1", shared=True)
    for coin, size in json.loads(agent.settings["orders"]):
        side = "buy" if size > 0 else "sell"
        r = agent.platforms.sim.place_order({"coin": coin, "side": side, "size": abs(size),
                                             "price": 10**9 if size > 0 else 1, "market": "perp", "type": "market"})
        agent.log(f"order {coin} {size}: {r.success}")

def unwind(agent, portfolio):
    agent.log("received " + json.dumps(sorted([p.coin, p.size] for p in portfolio.positions)))
    if agent.settings["explode"]:
        raise RuntimeError("the agent's unwind broke")
    for coin in json.loads(agent.settings["close"]):
        [p] = [p for p in portfolio.positions if p.coin == coin]
        size, mark = Decimal(p.size), Decimal(p.markPriceUsd)
        r = agent.platforms.sim.place_order({"coin": coin, "side": "sell" if size > 0 else "buy",
                                             "size": float(abs(size)),
                                             "price": float(mark * (Decimal("0.9") if size > 0 else Decimal("1.1"))),
                                             "market": "perp", "type": "market", "reduceOnly": True})
        agent.log(f"agent closed {coin}: {r.success}")
"""
SETTINGS = {
    "orders": {"type": "text", "default": "[]", "description": "[coin, signed size] pairs to trade each run"},
    "close": {"type": "text", "default": "[]", "description": "coins the agent's unwind closes itself"},
    "explode": {"type": "boolean", "default": False, "description": "the unwind raises"},
}


@pytest.fixture
def sim(sim: Any) -> Any:
    """conftest's sim venue, with a SOL market too."""
    sim.MIDS["SOL"] = D(150)
    return sim


@pytest.fixture
def agent(agent_folder: Any) -> str:
    return str(agent_folder(AGENT, settings=SETTINGS))


def settings(orders: list[tuple[str, float]], close: list[str] = (), explode: bool = False) -> dict[str, Any]:
    return {"orders": json.dumps(orders), "close": json.dumps(list(close)), "explode": explode}


def held(rt: Any, session_id: int) -> dict[str, Decimal]:
    return {p.coin: D(p.size) for p in rt.portfolio(session_id).positions}


def closing_orders(session_id: int) -> list[tuple[str, str, float]]:
    """The reduce-only orders the venue executed for a session: (coin, side, size)."""
    return [(e["params"]["coin"], e["params"]["side"], e["params"]["size"]) for e in sim_venue.journal()
            if e["session_id"] == session_id and e["params"].get("reduceOnly")]


def messages(run: Any, level: str | None = None) -> list[str]:
    return [line.message for line in run.logs if level is None or line.level == level]


def assert_ended_flat(rt: Any, session_id: int) -> None:
    assert rt.session(session_id).state == "stopped"
    assert [t.action for t in rt.transitions(session_id)][-2:] == ["unwind", "unwound"]
    assert held(rt, session_id) == {}
    assert all(h.size == 0 for h in Book.replay(rt.store.ledger([session_id])).holdings.values())
    assert rt.memory(session_id).get("mine").data.value is None
    assert rt.memory(session_id).get("ours", shared=True).data.value == "1"


def test_the_agent_unwinds_first_and_the_closers_close_what_is_left(make_runtime, agent, sim):
    """The agent's unwind gets the whole portfolio; what it leaves open, the closers close with
    orders sized from the session's ledger; then the session stops, flat, memory cleared."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, settings=settings([("BTC", 0.01), ("ETH", -0.5)], close=["BTC"]), now=T0)
    rt.tick(T0)
    rt.tick(T0 + 15 * M)
    before = held(rt, s.id)
    assert before == {"BTC": D("0.02"), "ETH": D("-1.0")}

    done = rt.unwind(s.id, now=T0 + 20 * M)
    assert done.state == "stopped"
    unwind = rt.runs(s.id)[-1]
    assert (unwind.kind, unwind.status, unwind.error) == ("unwind", "succeeded", None)
    received = json.loads(messages(unwind)[0][len("received "):])
    assert {coin: D(size) for coin, size in received} == before
    assert "agent closed BTC: True" in messages(unwind)
    # The agent closed BTC; the closer closed only ETH, exactly the session's size.
    assert closing_orders(s.id) == [("BTC", "sell", float(before["BTC"])), ("ETH", "buy", float(-before["ETH"]))]
    assert any("closed ETH" in m for m in messages(unwind))
    assert_ended_flat(rt, s.id)
    assert rt.tick(T0 + 60 * M) == []


def test_an_unwind_of_some_assets_hands_over_and_closes_only_those(make_runtime, agent, sim):
    """unwind(assets=[...]): the agent receives the subset and the closers close only the subset."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, settings=settings([("BTC", 0.01), ("ETH", -0.5), ("SOL", 2)]), now=T0)
    rt.tick(T0)
    rt.unwind(s.id, assets=["eth", "SOL"], now=T0 + M)
    unwind = rt.runs(s.id)[-1]
    received = json.loads(messages(unwind)[0][len("received "):])
    assert sorted(coin for coin, _ in received) == ["ETH", "SOL"]
    assert sorted(closing_orders(s.id)) == [("ETH", "buy", 0.5), ("SOL", "sell", 2.0)]
    assert rt.session(s.id).state == "stopped"
    assert held(rt, s.id) == {"BTC": D("0.01")}  # not part of the unwind
    assert "sim BTC size 0.01 left open: not among the assets selected for unwind" in messages(unwind)


def test_what_the_venue_refuses_is_reported_and_stays_in_the_portfolio(make_runtime, agent, sim):
    """Residue: the unwind run's error and an error log line name it; the ledger still shows it."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, settings=settings([("BTC", 0.01), ("ETH", -0.5)]), now=T0)
    rt.tick(T0)
    sim.REFUSE.add("BTC")
    rt.unwind(s.id, now=T0 + M)
    unwind = rt.runs(s.id)[-1]
    assert (unwind.kind, unwind.status) == ("unwind", "failed")  # not flat: a failure people see
    assert unwind.error is not None and unwind.error.startswith("left open: sim BTC size 0.01 left open:")
    assert "could not immediately match" in unwind.error
    assert [m for m in messages(unwind, "error") if "BTC" in m] == [
        "sim BTC size 0.01 left open: Order could not immediately match against any resting orders."]
    assert closing_orders(s.id) == [("BTC", "sell", 0.01), ("ETH", "buy", 0.5)]  # both tried
    assert held(rt, s.id) == {"BTC": D("0.01")}
    assert rt.session(s.id).state == "stopped"


def test_a_raising_agent_unwind_still_gets_the_closers(make_runtime, agent, sim):
    """The agent's unwind fails: the run is failed with its error, and the closers close everything."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, settings=settings([("BTC", -0.01), ("ETH", 0.5)], explode=True), now=T0)
    rt.tick(T0)
    rt.unwind(s.id, now=T0 + M)
    unwind = rt.runs(s.id)[-1]
    assert (unwind.kind, unwind.status, unwind.error) == ("unwind", "failed", "RuntimeError: the agent's unwind broke")
    assert "raise RuntimeError" in unwind.traceback
    assert sorted(closing_orders(s.id)) == [("BTC", "buy", 0.01), ("ETH", "sell", 0.5)]
    assert_ended_flat(rt, s.id)


def test_an_agent_without_unwind_is_closed_by_the_closers(make_runtime, agent_folder, sim):
    """No unwind function: the closers alone close the session's positions."""
    main = """
def run(agent):
    agent.platforms.sim.place_order({"coin": "ETH", "side": "buy", "size": 0.3, "price": 10**9, "market": "perp"})
"""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(str(agent_folder(main)), WALLET, now=T0)
    rt.tick(T0)
    rt.unwind(s.id, now=T0 + M)
    unwind = rt.runs(s.id)[-1]
    assert unwind.status == "succeeded"
    assert "agent has no unwind function; the closers close what is open" in messages(unwind)
    assert closing_orders(s.id) == [("ETH", "sell", 0.3)]
    assert rt.session(s.id).state == "stopped" and held(rt, s.id) == {}


def test_an_unwind_that_dies_before_the_closers_gets_a_close_run(make_runtime, agent, sim):
    """When the unwind run ends without the closers having run (an executor or plugin failure),
    the session stays unwinding and a close run (closers only) is due at once."""

    class CrashingUnwind:
        @tickloop.hookimpl(tryfirst=True)
        def tickloop_run_call(self, job, context, function):
            if job.kind == "unwind":
                raise RuntimeError("the worker died")
            return None

    rt = make_runtime(plugins=[sim, CrashingUnwind()])
    s = rt.start_session(agent, WALLET, settings=settings([("BTC", 0.01)]), now=T0)
    rt.tick(T0)
    at = T0 + M
    session = rt.unwind(s.id, now=at)
    failed = rt.runs(s.id)[-1]
    assert (failed.kind, failed.status) == ("unwind", "failed") and "the worker died" in failed.error
    assert (session.state, session.unwind_stage, session.next_run_at) == ("unwinding", "close", at)
    assert closing_orders(s.id) == []
    [close] = rt.tick(at)
    assert (close.kind, close.status) == ("close", "succeeded")
    assert closing_orders(s.id) == [("BTC", "sell", 0.01)]
    assert_ended_flat(rt, s.id)


def test_a_routers_threshold_applies_to_closing_orders_too(make_runtime, agent, sim):
    """Routers see the closers' orders: with [routing] manual_above_usd, an auto session's large
    closing order waits for approval, a small one executes."""
    rt = make_runtime(plugins=[sim], overrides={"routing": {"manual_above_usd": 500}})
    s = rt.start_session(agent, WALLET, settings=settings([("BTC", 0.001), ("ETH", 1)]), now=T0)
    rt.tick(T0)  # the opening orders' limit (10**9) values them far above $500: both suggested
    for opening in rt.suggestions(session_id=s.id, status="pending"):
        rt.approve(opening.id, now=T0 + M)
    assert held(rt, s.id) == {"BTC": D("0.001"), "ETH": D("1")}

    session = rt.unwind(s.id, now=T0 + 2 * M)
    assert session.state == "unwinding"
    assert closing_orders(s.id) == [("BTC", "sell", 0.001)]  # $45: executed
    [eth] = rt.suggestions(session_id=s.id, status="pending")
    assert (eth.action.params["coin"], eth.action.params["reduceOnly"]) == ("ETH", True)
    rt.approve(eth.id, now=T0 + 3 * M)
    assert closing_orders(s.id) == [("BTC", "sell", 0.001), ("ETH", "sell", 1.0)]
    assert_ended_flat(rt, s.id)


def _manual_session_holding(rt: Any, agent: str, positions: list[tuple[str, float]]) -> Any:
    """A manual session whose first run's orders were all approved (so it holds ``positions``)."""
    s = rt.start_session(agent, WALLET, mode="manual", settings=settings(positions), now=T0)
    rt.tick(T0)
    for suggestion in rt.suggestions(session_id=s.id, status="pending"):
        assert rt.approve(suggestion.id, now=T0 + M).status == "executed"
    assert held(rt, s.id) == {coin: D(str(size)) for coin, size in positions}
    return s


def test_a_manual_unwind_waits_for_approval_of_the_closing_orders(make_runtime, agent, sim):
    """Manual mode: the closers' orders become suggestions, the session stays unwinding (not due);
    approving them executes them, the closers check again, and the session stops."""
    rt = make_runtime(plugins=[sim])
    s = _manual_session_holding(rt, agent, [("BTC", 0.01), ("ETH", -0.5)])
    journal = sim.journal()

    session = rt.unwind(s.id, now=T0 + 2 * M)
    assert (session.state, session.next_run_at) == ("unwinding", None)
    unwind = rt.runs(s.id)[-1]
    assert (unwind.kind, unwind.status) == ("unwind", "succeeded")
    pending = sorted(rt.suggestions(session_id=s.id, status="pending"), key=lambda x: x.action.params["coin"])
    assert [(p.action.params["coin"], p.action.params["side"], p.action.params["size"], p.action.params["reduceOnly"])
            for p in pending] == [("BTC", "sell", 0.01, True), ("ETH", "buy", 0.5, True)]
    assert any(m.startswith("sim: closing waits for approval of suggestion(s)") for m in messages(unwind))
    assert sim.journal() == journal  # nothing sent
    assert rt.tick(T0 + 600 * M) == []  # not due: it waits for people, not for time
    assert rt.memory(s.id).get("mine").data.value == "1"  # still open

    btc, eth = pending
    rt.approve(btc.id, now=T0 + 601 * M)
    assert rt.session(s.id).state == "unwinding"
    assert held(rt, s.id) == {"ETH": D("-0.5")}
    rt.approve(eth.id, now=T0 + 602 * M)
    last = rt.runs(s.id)[-1]
    assert (last.kind, last.status) == ("close", "succeeded")
    assert closing_orders(s.id) == [("BTC", "sell", 0.01), ("ETH", "buy", 0.5)]
    assert_ended_flat(rt, s.id)


def test_in_manual_mode_the_closers_wait_for_the_agents_own_closing_suggestions(make_runtime, agent, sim):
    """The agent's unwind suggests closing BTC: the closers do not suggest BTC again; once it is
    approved they close what the agent left (ETH), and every position is closed exactly once."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, mode="manual", settings=settings([("BTC", 0.01), ("ETH", -0.5)], close=["BTC"]),
                         now=T0)
    rt.tick(T0)
    for suggestion in rt.suggestions(session_id=s.id, status="pending"):
        rt.approve(suggestion.id, now=T0 + M)

    rt.unwind(s.id, now=T0 + 2 * M)
    [agents_close] = rt.suggestions(session_id=s.id, status="pending")
    assert (agents_close.action.params["coin"], agents_close.action.params["side"]) == ("BTC", "sell")
    assert rt.session(s.id).state == "unwinding"
    rt.approve(agents_close.id, now=T0 + 3 * M)
    close = rt.runs(s.id)[-1]
    assert close.kind == "close"
    [closers_close] = rt.suggestions(session_id=s.id, status="pending")
    assert (closers_close.action.params["coin"], closers_close.action.params["size"]) == ("ETH", 0.5)
    assert rt.session(s.id).state == "unwinding"
    rt.approve(closers_close.id, now=T0 + 4 * M)
    assert closing_orders(s.id) == [("BTC", "sell", 0.01), ("ETH", "buy", 0.5)]
    assert_ended_flat(rt, s.id)


def test_a_rejected_manual_close_leaves_the_session_unwinding_until_stopped(make_runtime, agent, sim):
    """A rejected closing order keeps the session unwinding (even after the others are approved);
    stop() forces it to end and deletes what is still pending; the rest stays in the portfolio."""
    rt = make_runtime(plugins=[sim])
    s = _manual_session_holding(rt, agent, [("BTC", 0.01), ("ETH", -0.5), ("SOL", 2)])
    rt.unwind(s.id, now=T0 + 2 * M)
    by_coin = {p.action.params["coin"]: p for p in rt.suggestions(session_id=s.id, status="pending")}
    assert sorted(by_coin) == ["BTC", "ETH", "SOL"]

    rt.reject(by_coin["BTC"].id, now=T0 + 3 * M)
    rt.approve(by_coin["ETH"].id, now=T0 + 4 * M)
    assert rt.session(s.id).state == "unwinding"
    assert rt.tick(T0 + 600 * M) == []
    assert rt.runs(s.id)[-1].kind == "unwind"  # no close run after the approval: a person said no

    stopped = rt.stop(s.id, now=T0 + 601 * M, reason="give up")
    assert stopped.state == "stopped"
    assert [(t.action, t.reason) for t in rt.transitions(s.id)][-1] == (
        "stop", "give up; left open: sim SOL 2, sim BTC 0.01")
    sol = rt.suggestion(by_coin["SOL"].id)
    assert (sol.status, sol.deleted_at) == ("deleted", T0 + 601 * M)
    assert rt.suggestions(session_id=s.id, status="pending") == []
    assert held(rt, s.id) == {"BTC": D("0.01"), "SOL": D("2")}
    assert closing_orders(s.id) == [("ETH", "buy", 0.5)]
    assert rt.memory(s.id).get("mine").data.value is None


def test_stop_deletes_the_pending_suggestions_of_a_running_session(make_runtime, agent, sim):
    """A stopped session leaves nothing to approve."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, mode="manual", settings=settings([("BTC", 0.01)]), now=T0)
    rt.tick(T0)
    [pending] = rt.suggestions(session_id=s.id)
    rt.stop(s.id, now=T0 + M)
    assert rt.suggestion(pending.id).status == "deleted"
    with pytest.raises(tickloop.TickloopError, match="it was deleted"):
        rt.approve(pending.id)
    assert sim.journal() == []


def test_a_closing_order_the_venue_refuses_after_approval_is_suggested_again(make_runtime, agent, sim):
    """Manual unwind: an approved closing order that the venue refuses is not a person's "no":
    the closers check again and suggest what is still open, until it executes."""
    rt = make_runtime(plugins=[sim])
    s = _manual_session_holding(rt, agent, [("BTC", 0.01)])
    rt.unwind(s.id, now=T0 + 2 * M)
    [first] = rt.suggestions(session_id=s.id, status="pending")
    sim.REFUSE.add("BTC")
    assert rt.approve(first.id, now=T0 + 3 * M).status == "failed"
    assert rt.session(s.id).state == "unwinding"
    [again] = rt.suggestions(session_id=s.id, status="pending")
    assert again.id != first.id and again.action.params == first.action.params
    sim.REFUSE.clear()
    assert rt.approve(again.id, now=T0 + 4 * M).status == "executed"
    assert_ended_flat(rt, s.id)


def test_closers_that_cannot_run_are_tried_again_after_a_pause(make_runtime, agent, sim, monkeypatch):
    """The agent's unwind ran but the closers could not (the store or a venue failed): a close
    run follows at once; if that fails too, the next one waits a minute instead of spinning."""
    import tickloop.runtime
    import tickloop.venues

    rt = make_runtime(plugins=[sim])
    s = rt.start_session(agent, WALLET, settings=settings([("ETH", 0.2)]), now=T0)
    rt.tick(T0)
    real = tickloop.venues.Gateway.close_positions

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the venue is down")

    monkeypatch.setattr(tickloop.venues.Gateway, "close_positions", broken)
    rt.unwind(s.id, now=T0 + M)
    unwind = rt.runs(s.id)[-1]
    assert unwind.kind == "unwind"
    assert "closing positions failed: RuntimeError: the venue is down" in messages(unwind, "error")
    session = rt.session(s.id)
    assert (session.state, session.unwind_stage, session.next_run_at) == ("unwinding", "close", T0 + M)
    [close] = rt.tick(T0 + M)
    assert close.kind == "close"
    assert rt.session(s.id).next_run_at == T0 + M + tickloop.scheduler.CLOSE_RETRY
    assert rt.tick(T0 + M + tickloop.scheduler.CLOSE_RETRY / 2) == []
    monkeypatch.setattr(tickloop.venues.Gateway, "close_positions", real)
    [again] = rt.tick(T0 + M + tickloop.scheduler.CLOSE_RETRY)
    assert (again.kind, again.status) == ("close", "succeeded")
    assert closing_orders(s.id) == [("ETH", "sell", 0.2)]
    assert_ended_flat(rt, s.id)
