"""Execution modes, routing and suggestions, through the Python interface and the sim venue.

The sim venue (tests/sim_venue.py) journals every action it executes, so "the venue received
nothing" is checked on the venue's side, not on tickloop's.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import sim_venue
import tickloop
from tickloop.errors import NotFoundError, TickloopError
from tickloop.suggestions import APPROVED
from tickloop.testing import T0

M = timedelta(minutes=1)
WALLET = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20

# Each run places the orders of its "orders" setting (a JSON list; "clear" clears the session's
# suggestions) and logs every answer on a "result ..." line. The memory writes and the other log
# lines do not depend on the answers, so auto and manual sessions must agree on them.
TRADER = """
import json

def run(agent):
    n = int(agent.memory.get("n").data.value or 0) + 1
    agent.memory.set("n", str(n))
    agent.log(f"run {n}")
    for order in json.loads(agent.settings["orders"]):
        if order == "clear":
            agent.log("cleared " + json.dumps(agent.clear_suggested_transactions().to_dict()))
            continue
        result = agent.platforms.sim.place_order(order)
        agent.log("result " + json.dumps(result.to_dict()))
    agent.log(f"run {n} done")
"""
SETTINGS = {"orders": {"type": "text", "default": "[]", "description": "orders placed by every run"}}


def order(coin: str = "BTC", side: str = "buy", size: float = 0.01, price: float | None = None,
          **extra: Any) -> dict[str, Any]:
    """A market order whose limit crosses the sim's mid (so it fills at the mid)."""
    mid = sim_venue.MIDS[coin]
    limit = price if price is not None else float(mid * (Decimal("1.1") if side == "buy" else Decimal("0.9")))
    return {"coin": coin, "side": side, "size": size, "price": limit, "market": "perp", "type": "market", **extra}


def orders(*items: Any) -> dict[str, str]:
    return {"orders": json.dumps(list(items))}


def results(run: Any) -> list[dict[str, Any]]:
    return [json.loads(line.message[len("result "):]) for line in run.logs if line.message.startswith("result ")]


def journal_of(session_id: int) -> list[dict[str, Any]]:
    return [entry for entry in sim_venue.journal() if entry["session_id"] == session_id]


@pytest.fixture
def trader(agent_folder: Any) -> str:
    return str(agent_folder(TRADER, settings=SETTINGS))


class Clock:
    """A clock the test moves (the runtime reads it outside tick)."""

    def __init__(self, at: Any = T0) -> None:
        self.at = at

    def __call__(self) -> Any:
        return self.at


# -- execution modes -----------------------------------------------------------------------------


def test_auto_and_manual_differ_only_in_executing_or_suggesting(make_runtime, trader, sim):
    """The same agent in both modes: same statuses, logs (but the answers), memory; auto executes,
    manual answers Circuit's suggestion shape and the venue hears nothing."""
    rt = make_runtime(plugins=[sim])
    wanted = order("BTC", size=0.01)
    auto = rt.start_session(trader, WALLET, mode="auto", settings=orders(wanted), now=T0)
    manual = rt.start_session(trader, OTHER, mode="manual", settings=orders(wanted), now=T0)
    ticks = [rt.tick(T0), rt.tick(T0 + 15 * M)]
    assert [sorted(r.session_id for r in runs) for runs in ticks] == [[auto.id, manual.id]] * 2

    auto_runs, manual_runs = rt.runs(auto.id), rt.runs(manual.id)
    assert [r.status for r in auto_runs] == [r.status for r in manual_runs] == ["succeeded", "succeeded"]

    def other_lines(runs: list[Any]) -> list[Any]:
        return [(line.at, line.level, line.message) for r in runs for line in r.logs
                if not line.message.startswith("result ")]

    assert other_lines(auto_runs) == other_lines(manual_runs)
    assert other_lines(auto_runs)  # the comparison compared something

    def memory(session_id: int) -> dict[str, str]:
        mem = rt.memory(session_id)
        return {item["key"]: mem.get(item["key"]).data.value for item in mem.list().data["items"]}

    assert memory(auto.id) == memory(manual.id) == {"n": "2"}

    # Auto: each run executed the order; manual: each run answered a suggestion, nothing executed.
    executed = journal_of(auto.id)
    assert [(e["method"], e["params"]) for e in executed] == [("place_order", wanted)] * 2
    assert [r["success"] for run in auto_runs for r in results(run)] == [True, True]
    assert [r["data"]["status"] for run in auto_runs for r in results(run)] == ["filled", "filled"]
    assert journal_of(manual.id) == []

    answers = [r for run in manual_runs for r in results(run)]
    stored = sorted(rt.suggestions(session_id=manual.id), key=lambda s: s.id)
    assert len(answers) == len(stored) == 2
    for answer, suggestion in zip(answers, stored):
        assert answer == {"success": True, "error": None,
                          "data": {"suggested": True, "suggestionId": suggestion.id,
                                   "details": {"venue": "sim", "method": "place_order", "kind": "order", **wanted}}}
        assert isinstance(answer["data"]["suggestionId"], int)
    # The second run's start soft-deleted the first run's suggestion.
    assert [s.status for s in stored] == ["deleted", "pending"]

    # Approval executes exactly the intent the agent asked for, for the manual session.
    done = rt.approve(stored[1].id)
    assert done.status == "executed"
    assert journal_of(manual.id) == [{"method": "place_order", "params": wanted, "session_id": manual.id}]
    assert done.result["status"] == "filled" and done.result["size"] == wanted["size"]
    [position] = rt.portfolio(manual.id).positions
    assert (position.coin, Decimal(position.size)) == ("BTC", Decimal(str(wanted["size"])))


def test_manual_mode_sends_the_venue_nothing_until_approval(make_runtime, trader, sim):
    """Orders and cancels of a manual session reach the venue only when approved, one by one;
    an intent is executed at approval time (at the price then), never pre-filled."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(trader, WALLET, mode="manual", settings=orders(order("BTC"), order("ETH", "sell", 0.5)),
                         now=T0)
    rt.tick(T0)
    assert sim.journal() == []
    btc, eth = sorted(rt.suggestions(session_id=s.id), key=lambda x: x.id)
    sim.MIDS["ETH"] = Decimal(3100)  # the market moves between the run and the approval
    rt.approve(eth.id)
    assert [e["params"] for e in sim.journal()] == [eth.action.params]
    [position] = rt.portfolio(s.id).positions
    assert (position.coin, Decimal(position.size), Decimal(position.averageEntryPrice)) == (
        "ETH", -Decimal("0.5"), sim.MIDS["ETH"])
    assert rt.suggestion(btc.id).status == "pending"
    assert len(sim.journal()) == 1


def test_manual_cancels_are_suggestions_too(make_runtime, agent_folder, sim):
    """A cancel is a signature-producing action: in manual mode it is suggested, not sent."""
    main = """
def run(agent):
    r = agent.platforms.sim.delete_order("17", "ETH")
    agent.log(f"{r.success} {r.data.suggested} {r.data.details.method} {r.data.details.orderId}")
"""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(str(agent_folder(main)), WALLET, mode="manual", now=T0)
    [run] = rt.tick(T0)
    [suggestion] = rt.suggestions(session_id=s.id)
    assert [line.message for line in run.logs] == ["True True delete_order 17"]
    assert (suggestion.action.kind, suggestion.action.params) == ("cancel", {"orderId": "17", "coin": "ETH"})
    assert sim.journal() == []


def test_notional_guard_suggests_large_orders_in_auto_mode(make_runtime, trader, sim):
    """With [routing] manual_above_usd = 500, an auto order above $500 becomes a suggestion and a
    smaller one executes; without the setting both execute."""
    big = order("BTC", size=0.02, price=50000.0)  # $1000
    small = order("BTC", size=0.005, price=50000.0)  # $250
    assert big["size"] * big["price"] > 500 > small["size"] * small["price"]
    rt = make_runtime(plugins=[sim], overrides={"routing": {"manual_above_usd": 500}})
    s = rt.start_session(trader, WALLET, mode="auto", settings=orders(big, small), now=T0)
    [run] = rt.tick(T0)
    big_answer, small_answer = results(run)
    assert big_answer["data"]["suggested"] is True
    assert small_answer["data"]["status"] == "filled"
    assert [e["params"] for e in journal_of(s.id)] == [small]
    [suggestion] = rt.suggestions(session_id=s.id, status="pending")
    assert suggestion.id == big_answer["data"]["suggestionId"] and suggestion.action.params == big
    assert rt.session(s.id).mode == "auto"

    unguarded = make_runtime(plugins=[sim], home=rt.config.home.parent / "other-home")
    t = unguarded.start_session(trader, WALLET, mode="auto", settings=orders(big, small), now=T0)
    [run] = unguarded.tick(T0)
    assert [r["data"]["status"] for r in results(run)] == ["filled", "filled"]
    assert unguarded.suggestions(session_id=t.id) == []


def test_a_plugin_router_decides_before_the_built_in_one(make_runtime, trader, sim):
    """A plugin's tickloop_route_action wins over the built-in router; None leaves the decision to it."""
    seen = []

    class EthExecutes:
        @tickloop.hookimpl
        def tickloop_route_action(self, session, action, mode, config):
            seen.append((session.id, action.params["coin"], mode, config is not None))
            return "execute" if action.params.get("coin") == "ETH" else None

    rt = make_runtime(plugins=[sim, EthExecutes()])
    s = rt.start_session(trader, WALLET, mode="manual", settings=orders(order("ETH"), order("BTC")), now=T0)
    [run] = rt.tick(T0)
    eth, btc = results(run)
    assert eth["data"]["status"] == "filled" and btc["data"]["suggested"] is True
    assert [e["params"]["coin"] for e in sim.journal()] == ["ETH"]
    assert seen == [(s.id, "ETH", "manual", True), (s.id, "BTC", "manual", True)]


def test_a_router_answering_nonsense_fails_the_call_and_sends_nothing(make_runtime, trader, sim):
    """A router that answers something other than execute/suggest: the agent gets a failed result."""

    class Broken:
        @tickloop.hookimpl
        def tickloop_route_action(self, session, action, mode, config):
            return "maybe"

    rt = make_runtime(plugins=[sim, Broken()])
    s = rt.start_session(trader, WALLET, settings=orders(order()), now=T0)
    [run] = rt.tick(T0)
    [answer] = results(run)
    assert run.status == "succeeded"  # API failures never raise into agent code
    assert answer["success"] is False and "'maybe'" in answer["error"]
    assert sim.journal() == [] and rt.suggestions(session_id=s.id) == []


# -- suggestions ---------------------------------------------------------------------------------


def test_a_run_start_soft_deletes_only_its_own_sessions_pending_suggestions(make_runtime, trader, sim):
    """At a run's start the session's pending suggestions become deleted; decided ones and other
    sessions' stay as they are."""
    rt = make_runtime(plugins=[sim])
    a = rt.start_session(trader, WALLET, mode="manual", settings=orders(order("BTC"), order("ETH")), now=T0)
    b = rt.start_session(trader, OTHER, mode="manual", settings=orders(order("BTC")), now=T0 + 5 * M)
    rt.tick(T0)
    rt.tick(T0 + 5 * M)
    first_btc, first_eth = sorted(rt.suggestions(session_id=a.id), key=lambda s: s.id)
    [b_pending] = rt.suggestions(session_id=b.id)
    rt.reject(first_eth.id, now=T0 + 6 * M)

    assert [r.session_id for r in rt.tick(T0 + 15 * M)] == [a.id]  # b is due at :20
    deleted = rt.suggestion(first_btc.id)
    assert (deleted.status, deleted.deleted_at) == ("deleted", T0 + 15 * M)
    assert rt.suggestion(first_eth.id).status == "rejected"
    assert rt.suggestion(b_pending.id).status == "pending"
    assert [s.status for s in rt.suggestions(session_id=a.id)] == ["pending", "pending", "rejected", "deleted"]
    with pytest.raises(TickloopError, match=f"cannot approve suggestion {first_btc.id}: it was deleted"):
        rt.approve(first_btc.id)
    assert sim.journal() == []


def test_expires_at_shortens_a_suggestions_life(make_runtime, trader, sim):
    """An expiresAt in the request: approving before it executes, after it is refused as expired."""
    soon, later = T0 + 5 * M, T0 + 10 * M
    clock = Clock()
    rt = make_runtime(plugins=[sim], clock=clock)
    s = rt.start_session(trader, WALLET, mode="manual",
                         settings=orders(order("BTC", expiresAt=soon.isoformat()),
                                         order("ETH", expiresAt=later.isoformat()), order("BTC", size=0.02)),
                         now=T0)
    [run] = rt.tick(T0)
    short, long_, forever = sorted(rt.suggestions(session_id=s.id), key=lambda x: x.id)
    assert (short.expires_at, long_.expires_at, forever.expires_at) == (soon, later, None)
    assert [r["data"]["details"].get("expiresAt") for r in results(run)] == [soon.isoformat(), later.isoformat(), None]

    clock.at = soon + M
    assert {x.id: x.status for x in rt.suggestions(session_id=s.id)} == {
        short.id: "expired", long_.id: "pending", forever.id: "pending"}
    assert [x.id for x in rt.suggestions(status="expired")] == [short.id]
    with pytest.raises(TickloopError, match=f"cannot approve suggestion {short.id}: it expired at "
                                            + soon.isoformat().replace("+", r"\+")):
        rt.approve(short.id)
    assert sim.journal() == []
    assert rt.approve(long_.id).status == "executed"
    assert [e["params"]["coin"] for e in sim.journal()] == ["ETH"]
    # The refusal recorded the expiry; rejecting it is refused too.
    with pytest.raises(TickloopError, match=r"cannot reject suggestion .*: it expired"):
        rt.reject(short.id)
    assert rt.suggestion(short.id).status == "expired"
    assert [x.id for x in rt.suggestions(status="expired")] == [short.id]  # also once recorded expired


def test_an_expiry_is_decided_at_the_approval_time_given(make_runtime, trader, sim):
    """approve(now=...) decides expiry at the time given: at the expiry itself it is too late."""
    rt = make_runtime(plugins=[sim])
    at = T0 + 5 * M
    s = rt.start_session(trader, WALLET, mode="manual", settings=orders(order(expiresAt=at.isoformat()),
                                                                        order("ETH", expiresAt=at.isoformat())),
                         now=T0)
    rt.tick(T0)
    first, second = sorted(rt.suggestions(session_id=s.id), key=lambda x: x.id)
    with pytest.raises(TickloopError, match="expired"):
        rt.approve(first.id, now=at)
    assert rt.approve(second.id, now=at - timedelta(seconds=1)).status == "executed"


def test_clear_suggested_transactions_soft_deletes_mid_run(make_runtime, trader, sim):
    """agent.clear_suggested_transactions() deletes what the run suggested so far, not what comes after."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(trader, WALLET, mode="manual",
                         settings=orders(order("BTC"), order("ETH"), "clear", order("BTC", "sell")), now=T0)
    [run] = rt.tick(T0)
    cleared = [json.loads(line.message[len("cleared "):]) for line in run.logs if line.message.startswith("cleared ")]
    assert cleared == [{"success": True, "data": {"cleared": 2}, "error": None}]
    found = sorted(rt.suggestions(session_id=s.id), key=lambda x: x.id)
    assert [(x.action.params["coin"], x.status) for x in found] == [("BTC", "deleted"), ("ETH", "deleted"),
                                                                     ("BTC", "pending")]
    assert all(x.deleted_at == T0 for x in found[:2])
    assert rt.approve(found[2].id).status == "executed"
    assert [e["params"]["side"] for e in sim.journal()] == ["sell"]


def test_every_refused_approval_says_why_and_executes_nothing(make_runtime, trader, sim):
    """Approving a rejected, executed, failed, in-flight, expired, deleted or unknown suggestion is
    refused with the reason; rejecting a decided one too."""
    clock = Clock()
    rt = make_runtime(plugins=[sim], clock=clock)
    expiry = T0 + 5 * M
    s = rt.start_session(trader, WALLET, mode="manual",
                         settings=orders(order("BTC"), order("BTC", size=0.02), order("ETH"), order("BTC", size=0.03),
                                         order("BTC", size=0.04, expiresAt=expiry.isoformat())), now=T0)
    rt.tick(T0)
    rejected, executed, failed, in_flight, expired = sorted(rt.suggestions(session_id=s.id), key=lambda x: x.id)

    assert rt.reject(rejected.id).status == "rejected"
    assert rt.approve(executed.id).status == "executed"
    sim.REFUSE.add("ETH")
    refused = rt.approve(failed.id)  # approved, executed, refused by the venue: recorded, not raised
    assert (refused.status, refused.error) == (
        "failed", "Order could not immediately match against any resting orders.")
    # A crash between approval and execution leaves a suggestion approved; it is never retried.
    assert rt.gateway.suggestions.decide(in_flight.id, APPROVED, at=T0).status == APPROVED
    journal = sim.journal()
    assert [e["params"]["coin"] for e in journal] == ["BTC", "ETH"]

    clock.at = expiry
    reasons = {
        rejected.id: f"cannot approve suggestion {rejected.id}: it was rejected at {T0.isoformat()}",
        executed.id: f"cannot approve suggestion {executed.id}: it was already executed at {T0.isoformat()}",
        failed.id: f"cannot approve suggestion {failed.id}: it was already approved and its execution failed at"
                   f" {T0.isoformat()}: Order could not immediately match",
        in_flight.id: f"cannot approve suggestion {in_flight.id}: it was already approved at {T0.isoformat()} and is"
                      " executing",
        expired.id: f"cannot approve suggestion {expired.id}: it expired at {expiry.isoformat()}",
    }
    for suggestion_id, reason in reasons.items():
        with pytest.raises(TickloopError) as refused_approval:
            rt.approve(suggestion_id)
        assert str(refused_approval.value).startswith(reason)
        with pytest.raises(TickloopError, match=f"cannot reject suggestion {suggestion_id}: it "):
            rt.reject(suggestion_id)
    unknown = max(reasons) + 100
    with pytest.raises(NotFoundError, match=f"suggestion {unknown} does not exist"):
        rt.approve(unknown)
    with pytest.raises(NotFoundError, match=f"suggestion {unknown} does not exist"):
        rt.reject(unknown)

    # A new run deletes nothing decided; the next run's pending suggestions are new ones.
    rt.tick(T0 + 15 * M)
    with pytest.raises(TickloopError, match=f"cannot approve suggestion {expired.id}: it expired"):
        rt.approve(expired.id)
    assert {x.id: x.status for x in rt.suggestions(session_id=s.id) if x.id <= expired.id} == {
        rejected.id: "rejected", executed.id: "executed", failed.id: "failed", in_flight.id: "approved",
        expired.id: "expired"}
    # The second run's suggestions are deleted by the third run's start.
    second_run = max(rt.suggestions(session_id=s.id), key=lambda x: x.id)
    rt.tick(T0 + 30 * M)
    with pytest.raises(TickloopError) as refused_approval:
        rt.approve(second_run.id)
    assert str(refused_approval.value).startswith(
        f"cannot approve suggestion {second_run.id}: it was deleted at {(T0 + 30 * M).isoformat()} (a new run")
    assert sim.journal() == journal


def test_reject_then_approve_is_refused(make_runtime, trader, sim):
    """A rejected suggestion never executes."""
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(trader, WALLET, mode="manual", settings=orders(order()), now=T0)
    rt.tick(T0)
    [suggestion] = rt.suggestions(session_id=s.id)
    decided = rt.reject(suggestion.id, now=T0 + M)
    assert (decided.status, decided.decided_at) == ("rejected", T0 + M)
    with pytest.raises(TickloopError, match=f"cannot approve suggestion {suggestion.id}: it was rejected"):
        rt.approve(suggestion.id, now=T0 + 2 * M)
    with pytest.raises(TickloopError, match=r"cannot reject suggestion .*: it was rejected"):
        rt.reject(suggestion.id, now=T0 + 2 * M)
    assert sim.journal() == [] and rt.portfolio(s.id).positions == ()


def test_concurrent_approvals_in_threads_execute_once(make_runtime, trader, sim):
    """N threads approve one suggestion at the same moment: one execution, N-1 clear refusals."""
    threads = 8
    rt = make_runtime(plugins=[sim])
    s = rt.start_session(trader, WALLET, mode="manual", settings=orders(order()), now=T0)
    rt.tick(T0)
    [suggestion] = rt.suggestions(session_id=s.id)
    barrier = threading.Barrier(threads)
    outcomes: list[Any] = [None] * threads

    def approve(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = rt.approve(suggestion.id)
        except TickloopError as exc:
            outcomes[i] = exc

    workers = [threading.Thread(target=approve, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    executed = [o for o in outcomes if not isinstance(o, Exception)]
    refusals = [o for o in outcomes if isinstance(o, TickloopError)]
    assert len(executed) == 1 and executed[0].status == "executed"
    assert len(refusals) == threads - 1
    for refusal in refusals:
        assert str(refusal).startswith(f"cannot approve suggestion {suggestion.id}: it was already ")
    assert journal_of(s.id) == [{"method": "place_order", "params": suggestion.action.params, "session_id": s.id}]
    [position] = rt.portfolio(s.id).positions
    assert Decimal(position.size) == Decimal(str(suggestion.action.params["size"]))


RAW = """
import json

def run(agent):
    tx = {"network": agent.settings["network"], "message": "pay the invoice",
          "request": {"to_address": "0x" + "11" * 20, "data": "0x", "value": "1000"}}
    for answer in (agent.sign_and_send(tx),
                   agent.sign_message({"messageType": "eip191", "data": {"message": "gm"}, "chainId": 1})):
        agent.log("answer " + json.dumps(answer.to_dict()))
"""


class EvmVenue:
    """A venue for raw EVM transactions: remembers them and answers a transaction hash."""

    name = "evm"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def agent_api(self, session: Any, gateway: Any) -> Any:
        return None

    def execute(self, action: Any, wallet: Any) -> Any:
        from tickloop.actions import Execution

        self.sent.append(action)
        return Execution(data={"txHash": "0x" + "ab" * 32} if action.method == "sign_and_send"
                         else {"v": 27, "r": "0x1", "s": "0x2", "type": "evm"})


def _raw_answers(run: Any) -> list[dict[str, Any]]:
    return [json.loads(line.message[len("answer "):]) for line in run.logs if line.message.startswith("answer ")]


def test_raw_transactions_and_messages_are_actions_routed_like_orders(make_runtime, agent_folder):
    """sign_and_send and sign_message (Circuit's names) become actions: executed by the venue for
    the chain family in auto mode (a clear failure when none is installed), suggestions in
    manual mode; a malformed request fails without raising."""
    from tickloop.registry import Backend

    evm = EvmVenue()

    class Plugin:
        @tickloop.hookimpl
        def tickloop_register_venues(self, register: Any) -> None:
            register(Backend(name="evm", factory=lambda config: evm))

    settings = {"network": {"type": "text", "default": "ethereum:8453", "description": "d"}}
    folder = str(agent_folder(RAW, settings=settings))
    bare = make_runtime()
    bare.start_session(folder, WALLET, now=T0)
    [run] = bare.tick(T0)
    assert [a["error"] for a in _raw_answers(run)] == [
        "no evm venue is installed in this runtime (installed: hyperliquid, polymarket)"] * 2

    rt = make_runtime(plugins=[Plugin()], home=None)
    auto = rt.start_session(folder, OTHER, now=T0)
    manual = rt.start_session(str(agent_folder(RAW, name="manual", settings=settings)), OTHER, mode="manual", now=T0)
    runs = {r.session_id: r for r in rt.tick(T0)}
    assert [a["data"] for a in _raw_answers(runs[auto.id])] == [
        {"txHash": "0x" + "ab" * 32}, {"v": 27, "r": "0x1", "s": "0x2", "type": "evm"}]
    tx, message = _raw_answers(runs[manual.id])
    assert tx["data"]["suggested"] is True and tx["data"]["details"]["network"] == "ethereum:8453"
    assert message["data"]["suggested"] is True and message["data"]["details"]["messageType"] == "eip191"
    assert [a.method for a in evm.sent] == ["sign_and_send", "sign_message"]  # the auto session's only
    rt.approve(tx["data"]["suggestionId"], now=T0 + M)
    assert [a.method for a in evm.sent][-1] == "sign_and_send" and evm.sent[-1].session_id == manual.id

    bad = rt.start_session(str(agent_folder(RAW, name="bad", settings=settings)), WALLET,
                           settings={"network": "bitcoin"}, now=T0)
    [run] = [r for r in rt.tick(T0 + 15 * M) if r.session_id == bad.id]
    assert _raw_answers(run)[0]["error"] == (
        "sign_and_send: network must be 'ethereum:<chainId>' or 'solana', got 'bitcoin'")
