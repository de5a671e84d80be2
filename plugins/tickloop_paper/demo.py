"""``tickloop demo``: two example agents trading on the paper exchanges, through a session's life.

The demo starts the paper Hyperliquid and Polymarket exchanges in-process (loopback servers that
speak the real protocols; tickloop's venues reach them through the official clients), adds a
paper wallet and then:

1. runs ``hl-trend`` in auto mode on a simulated clock while the paper ETH price trends, so it
   opens a position (the portfolio is printed after every run);
2. runs ``pm-basket`` in manual mode: its buys become suggestions, approved with the real
   ``tickloop suggestions approve`` command in a separate process;
3. pauses and resumes ``hl-trend`` (no catch-up run);
4. unwinds both: hl-trend's closer sends reduce-only IOC orders sized from its ledger; the
   Polymarket closer's sell becomes a suggestion (manual mode), approved the same way; both end
   flat and stopped.

``Runtime.tick(now)`` with simulated time makes fifteen-minute schedules pass in seconds. The
demo is part of the paper plugin (registered with its ``paper`` commands): the core never
imports a plugin, and the demo needs the paper exchanges.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tickloop.errors import TickloopError

if TYPE_CHECKING:
    from rich.console import Console

    from tickloop.actions import Action
    from tickloop.portfolio import Position
    from tickloop.runs import Run
    from tickloop.runtime import Runtime
    from tickloop_paper import Exchanges

AGENTS = ("hl-trend", "pm-basket")
#: The ETH mid the paper exchange shows at each hl-trend run: flat, then an uptrend.
ETH_PATH = (3000, 3001, 2999, 3000, 3030, 3060, 3090)
#: How long a venue's answer may be on one line before later fields are left out.
ANSWER_WIDTH = 160


@click.command()
@click.option("--runs", default=7, show_default=True, help="Scheduled runs of hl-trend to show before pausing.")
@click.option("--keep", is_flag=True, help="Keep the demo's folder and print where it is.")
@click.option("--fast", is_flag=True, help="Don't pause between steps.")
@click.pass_context
def demo(ctx: click.Context, runs: int, keep: bool, fast: bool) -> None:
    """A guided tour on the paper exchanges: hl-trend trading in auto mode, a pm-basket
    suggestion approved with the CLI, pause and resume, and unwinds that leave both flat.

    Uses a scratch home (deleted afterwards unless --keep) and a simulated clock, so minutes of
    schedule pass in seconds. With --home it uses that home instead.
    """
    from tickloop.cli.app import Options
    from tickloop.cli.render import console

    options = ctx.find_object(Options)
    run_demo(console(), home=options.home if options else None, runs=runs, keep=keep, pace=0.0 if fast else 0.3)


def find_agent(name: str) -> str:
    """An example agent: installed under ``name``, else the ``agents/<name>`` folder of a checkout."""
    from tickloop.agents import installed_agents

    if any(a.name == name for a in installed_agents()):
        return name
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        folder = base / "agents" / name
        if (folder / "circuit.toml").is_file():
            return str(folder)
    raise TickloopError(f"the demo needs the example agent {name!r}: pip install ./agents/{name}"
                        " (from a tickloop checkout)")


def run_demo(console: Console, *, home: str | None, runs: int = len(ETH_PATH), keep: bool = False,
             pace: float = 0.3) -> None:
    """The tour; ``pace`` is the real seconds each simulated step is shown for (0: as fast as possible)."""
    from tickloop.runtime import Runtime
    from tickloop_paper import local_exchanges

    scratch = home is None
    folder = Path(tempfile.mkdtemp(prefix="tickloop-demo-")) if scratch else Path(home).absolute()
    hl_agent, pm_agent = (find_agent(name) for name in AGENTS)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    clock = [start]
    rt = Runtime.from_config(home=folder, overrides={"runtime": {"executor": "inline"}}, clock=lambda: clock[0])
    try:
        tour = Tour(console, rt, folder, local_exchanges(folder), clock, pace)
        tour.heading("tickloop demo")
        console.print(f"home: {folder}  (simulated clock starts at {start:%H:%M}Z)")
        for name, url in tour.exchanges.urls().items():
            console.print(f"  paper {name}: {url}")
        console.print(f"paper wallet {tour.wallet} (key generated, kept encrypted in the home)")
        hl = tour.trend(hl_agent, ETH_PATH[:max(1, runs)])
        pm = tour.basket(pm_agent)
        tour.pause_and_resume(hl)
        tour.unwind(hl, pm)
        tour.heading("")
        console.print("next: tickloop check ./agents/hl-trend · tickloop wallets add --paper ·"
                      " tickloop sessions start hl-trend --wallet 0x… --allocation 100000000 · tickloop serve")
    finally:
        rt.close()
        if scratch and not keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif scratch:
            console.print(f"kept the demo's home: {folder}")


class Tour:
    """The demo's steps, on one runtime with a simulated clock and one paper wallet."""

    def __init__(self, console: Console, rt: Runtime, home: Path, exchanges: Exchanges, clock: list[datetime],
                 pace: float) -> None:
        self.console, self.rt, self.home, self.exchanges, self.clock, self.pace = \
            console, rt, home, exchanges, clock, pace
        self.wallet = rt.add_wallet(paper=True, label="demo")

    def heading(self, title: str) -> None:
        from rich.rule import Rule

        self.console.print(Rule(title))

    def advance_to(self, when: datetime) -> list[Run]:
        """Move the clock to ``when`` (never back) and run what is due."""
        self.clock[0] = max(self.clock[0], when)
        return self.rt.tick(self.clock[0])

    def set_mid(self, px: float) -> None:
        import httpx

        httpx.post(f"{self.exchanges.hyperliquid.url}/paper/mid", json={"coin": "ETH", "px": str(px)}, timeout=10)

    def trend(self, agent: str, prices: tuple[int, ...]) -> int:
        """Step 1: hl-trend in auto mode, one scheduled run per price; returns its session id."""
        from rich.progress import BarColumn, Progress, TextColumn

        self.heading("1. hl-trend, auto mode: orders execute at once")
        hl = self.rt.start_session(agent, self.wallet, mode="auto", settings={"coin": "ETH", "size": 0.5, "window": 3},
                                   allocation=1_000_000_000, reason="demo")
        self.console.print(f"session {hl.id}: [bold]{hl.agent}[/] on {self.wallet}, {hl.schedule.describe()},"
                           f" allocated 1,000 USDC; it trades 0.5 ETH (the setting size is in ETH)")
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=self.console, transient=True) as progress:
            task = progress.add_task("hl-trend on schedule", total=len(prices))
            for px in prices:
                self.set_mid(px)
                for r in self.advance_to(self.rt.session(hl.id).next_run_at):
                    _print_run(self.console, r)
                self.console.print("    " + _holding(self.rt, hl.id))
                progress.advance(task)
                time.sleep(self.pace)
        return hl.id

    def basket(self, agent: str) -> int:
        """Step 2: pm-basket in manual mode; its suggestion approved with the CLI. Returns its session id."""
        self.heading("2. pm-basket, manual mode: orders become suggestions")
        pm = self.rt.start_session(agent, self.wallet, mode="manual", settings={"basket_size": 1, "amount_usd": 20},
                                   allocation=100_000_000, reason="demo")
        self.console.print(f"session {pm.id}: [bold]{pm.agent}[/], manual mode, allocated 100 pUSD")
        for r in self.advance_to(self.clock[0] + timedelta(minutes=1)):
            if r.session_id == pm.id:
                _print_run(self.console, r)
        self.approve_pending(pm.id, "suggestion")
        self.console.print("    " + _holding(self.rt, pm.id))
        time.sleep(self.pace)
        return pm.id

    def approve_pending(self, session_id: int, label: str) -> None:
        """Approve each pending suggestion of the session with ``tickloop suggestions approve``."""
        for suggestion in self.rt.suggestions(session_id=session_id, status="pending"):
            what = suggestion.action.message or suggestion.action.describe()
            self.console.print(f"  {label} {suggestion.id}: {what}", markup=False)
            self.console.print(f"    order: {_order_text(suggestion.action)}", markup=False)
            self.console.print(f"  $ tickloop suggestions approve {suggestion.id}")
            answer = _approve_with_cli(self.home, suggestion.id)
            self.console.print(f"    {answer['status']}: {_answer_text(answer)}", markup=False)

    def pause_and_resume(self, session_id: int) -> None:
        """Step 3: no run while paused, and none to catch up on resume."""
        self.heading("3. pause and resume")
        interval = self.rt.session(session_id).schedule.interval or timedelta(minutes=15)
        paused_at = self.clock[0] + timedelta(minutes=1)
        self.clock[0] = paused_at
        self.rt.pause(session_id, paused_at, reason="demo: pause")
        idle = [r for k in range(1, 4) for r in self.advance_to(paused_at + k * interval) if r.session_id == session_id]
        self.console.print(f"{paused_at:%H:%M} [yellow]paused[/] session {session_id}; three intervals later it has"
                           f" run {len(idle)} times")
        resumed = self.rt.resume(session_id, self.clock[0] + timedelta(minutes=2), reason="demo: resume")
        self.clock[0] += timedelta(minutes=2)
        self.console.print(f"{self.clock[0]:%H:%M} [green]resumed[/]; next run at {resumed.next_run_at:%H:%M}"
                           " (the next scheduled point, no catch-up run)")
        self.set_mid(ETH_PATH[-1] + 30)
        for r in self.advance_to(resumed.next_run_at):
            if r.session_id == session_id:
                _print_run(self.console, r)
        time.sleep(self.pace)

    def unwind(self, hl: int, pm: int) -> None:
        """Step 4: unwind both; Polymarket's closing sell is a suggestion, approved with the CLI."""
        self.heading("4. unwind: close everything the sessions hold, then stop")
        self.clock[0] += timedelta(minutes=1)
        self.console.print(f"before: hl-trend {_holding(self.rt, hl)}")
        session = self.rt.unwind(hl, reason="demo: unwind")
        _print_run(self.console, self.rt.runs(hl)[-1])
        self.console.print(f"  session {hl} is {session.state}: {_holding(self.rt, hl)}")
        self.rt.unwind(pm, reason="demo: unwind")
        _print_run(self.console, self.rt.runs(pm)[-1])
        self.approve_pending(pm, "closing suggestion")
        if self.rt.session(pm).state == "unwinding":
            self.advance_to(self.clock[0] + timedelta(seconds=1))  # the closers check again once approved
        self.console.print(f"  session {pm} is {self.rt.session(pm).state}: {_holding(self.rt, pm)}")


def _approve_with_cli(home: Path, suggestion_id: int) -> dict[str, Any]:
    """``tickloop --home HOME suggestions approve ID --json`` in its own process."""
    command = [sys.executable, "-m", "tickloop.cli", "--home", str(home), "suggestions", "approve", str(suggestion_id),
               "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False)
    if done.returncode != 0:
        raise TickloopError(
            f"tickloop suggestions approve {suggestion_id} failed: {done.stderr.strip() or done.stdout}")
    return json.loads(done.stdout)


def _print_run(console: Console, run: Run) -> None:
    from rich.markup import escape

    colour = "green" if run.status == "succeeded" else "red"
    said = "; ".join(line.message for line in run.logs) or "-"
    console.print(f"  {run.scheduled_at:%H:%M} {run.kind} {run.id} [{colour}]{run.status}[/]: {escape(said)}")
    if run.error and run.status != "succeeded":
        console.print(f"    {run.error}", style="red", markup=False)


def _holding(rt: Runtime, session_id: int) -> str:
    """One line: the session's positions and cash, from its ledger, with their units."""
    portfolio = rt.portfolio(session_id)
    parts = [_position_text(p) for p in portfolio.positions] or ["flat"]
    cash = [f"{b.symbol or b.assetKey[:10]} {_price(b.valueUsd)}" for b in portfolio.balances if b.valueUsd]
    return "portfolio: " + ", ".join(parts) + (" | cash " + ", ".join(cash) if cash else "")


def _position_text(p: Position) -> str:
    """``ETH 0.5 @ 3,030.00 USD (uPnL 0.00 USD)``; outcome positions count shares."""
    size = f"{p.size} shares" if p.polymarketMetadata is not None else p.size
    return f"{p.coin} {size} @ {_price(p.averageEntryPrice)} USD (uPnL {_price(p.unrealizedPnlUsd)} USD)"


def _price(value: str | None) -> str:
    if value is None:
        return "?"
    return f"{float(value):,.2f}"


def _order_text(action: Action) -> str:
    """The order with its units: a Polymarket market buy's size is USD, a sell's is shares."""
    from tickloop.portfolio import decimal_text

    params = action.params
    if action.venue != "polymarket" or action.method != "market_order" or "size" not in params:
        return action.describe()
    side, size = str(params.get("side", "")).upper(), Decimal(str(params["size"]))
    amount = f"{size:,.2f} USD of" if side == "BUY" else f"{decimal_text(size)} shares of"
    kind = f" ({params['orderType']})" if params.get("orderType") else ""
    return f"polymarket market_order: {side.lower()} {amount} outcome token {_ends(params.get('tokenId'))}{kind}"


def _ends(value: Any) -> str:
    """A long id (77-digit token ids, 66-character order ids) shortened to its ends."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:10]}…{text[-6:]}"


def _answer_text(answer: dict[str, Any]) -> str:
    """What approving did, in one line: the fill with its units, else the answer's first whole fields."""
    result = answer.get("result")
    info = result.get("orderInfo") if isinstance(result, dict) else None
    if isinstance(info, dict) and {"side", "size", "priceUsd"} <= info.keys():
        verb = "bought" if str(info["side"]).upper() == "BUY" else "sold"
        total = f", {_price(info['totalPriceUsd'])} USD in all" if info.get("totalPriceUsd") is not None else ""
        each = Decimal(str(info["priceUsd"])).quantize(Decimal("0.0001"))
        return f"{verb} {info['size']} shares at {each} USD each{total} (order {_ends(info.get('orderId'))})"
    return _whole_fields(result if result is not None else answer.get("error"))


def _whole_fields(value: Any, width: int = ANSWER_WIDTH) -> str:
    """``value`` as JSON on one line (text as it is); a long object keeps its first fields whole and
    counts the rest."""
    if isinstance(value, str):
        return value
    text = json.dumps(value, default=str)
    if len(text) <= width or not isinstance(value, dict):
        return text
    shown: list[str] = []
    for key, item in value.items():
        field = f"{json.dumps(key)}: {json.dumps(item, default=str)}"
        if sum(len(f) + 2 for f in shown) + len(field) > width:
            break
        shown.append(field)
    left = len(value) - len(shown)
    return "{" + ", ".join(shown) + f", … {left} more field(s)" + "}"
