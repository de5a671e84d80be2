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

``Runtime.tick(now)`` with simulated time makes fifteen-minute schedules pass in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tickloop.errors import TickloopError

if TYPE_CHECKING:
    from rich.console import Console

    from tickloop.runtime import Runtime
    from tickloop.runs import Run

AGENTS = ("hl-trend", "pm-basket")
#: The ETH mid the paper exchange shows at each hl-trend run: flat, then an uptrend.
ETH_PATH = (3000, 3001, 2999, 3000, 3030, 3060, 3090)


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


def _approve_with_cli(home: Path, suggestion_id: int) -> dict[str, Any]:
    """``tickloop --home HOME suggestions approve ID --json`` in its own process."""
    command = [sys.executable, "-m", "tickloop.cli", "--home", str(home), "suggestions", "approve", str(suggestion_id),
               "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    if done.returncode != 0:
        raise TickloopError(f"tickloop suggestions approve {suggestion_id} failed: {done.stderr.strip() or done.stdout}")
    return json.loads(done.stdout)


def run_demo(console: Console, *, home: str | None, runs: int = len(ETH_PATH), keep: bool = False,
             pace: float = 0.3) -> None:
    """The tour; ``pace`` is the real seconds each simulated step is shown for (0: as fast as possible)."""
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.rule import Rule

    from tickloop.runtime import Runtime
    from tickloop_paper import local_exchanges

    scratch = home is None
    folder = Path(tempfile.mkdtemp(prefix="tickloop-demo-")) if scratch else Path(home).absolute()
    hl_agent, pm_agent = (find_agent(name) for name in AGENTS)
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    clock = [start]
    rt = Runtime.from_config(home=folder, overrides={"runtime": {"executor": "inline"}}, clock=lambda: clock[0])
    exchanges = local_exchanges(folder)
    try:
        console.print(Rule("tickloop demo"))
        console.print(f"home: {folder}  (simulated clock starts at {start:%H:%M}Z)")
        for name, url in exchanges.urls().items():
            console.print(f"  paper {name}: {url}")
        wallet = rt.add_wallet(paper=True, label="demo")
        console.print(f"paper wallet {wallet} (key generated, kept encrypted in the home)")

        def advance_to(when: datetime) -> list[Run]:
            clock[0] = max(clock[0], when)
            return rt.tick(clock[0])

        def set_mid(px: float) -> None:
            import httpx

            httpx.post(f"{exchanges.hyperliquid.url}/paper/mid", json={"coin": "ETH", "px": str(px)}, timeout=10)

        # 1. hl-trend in auto mode -------------------------------------------------------------
        console.print(Rule("1. hl-trend, auto mode: orders execute at once"))
        hl = rt.start_session(hl_agent, wallet, mode="auto", settings={"coin": "ETH", "size": 0.5, "window": 3},
                              allocation=1_000_000_000, reason="demo")
        console.print(f"session {hl.id}: [bold]{hl.agent}[/] on {wallet}, {hl.schedule.describe()},"
                      f" allocated 1,000 USDC")
        steps = ETH_PATH[:max(1, runs)]
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=console, transient=True) as progress:
            task = progress.add_task("hl-trend on schedule", total=len(steps))
            for px in steps:
                set_mid(px)
                for r in advance_to(rt.session(hl.id).next_run_at):
                    _print_run(console, r)
                console.print("    " + _holding(rt, hl.id))
                progress.advance(task)
                time.sleep(pace)

        # 2. pm-basket in manual mode ----------------------------------------------------------
        console.print(Rule("2. pm-basket, manual mode: orders become suggestions"))
        pm = rt.start_session(pm_agent, wallet, mode="manual", settings={"basket_size": 1, "amount_usd": 20},
                              allocation=100_000_000, reason="demo")
        console.print(f"session {pm.id}: [bold]{pm.agent}[/], manual mode, allocated 100 pUSD")
        for r in advance_to(clock[0] + timedelta(minutes=1)):
            if r.session_id == pm.id:
                _print_run(console, r)
        for suggestion in rt.suggestions(session_id=pm.id, status="pending"):
            console.print(f"  suggestion {suggestion.id}: {suggestion.action.describe()}")
            console.print(f"  $ tickloop suggestions approve {suggestion.id}")
            answer = _approve_with_cli(folder, suggestion.id)
            console.print(f"    {answer['status']}: {_short(answer.get('result') or answer.get('error'))}")
        console.print("    " + _holding(rt, pm.id))
        time.sleep(pace)

        # 3. pause and resume ------------------------------------------------------------------
        console.print(Rule("3. pause and resume"))
        interval = hl.schedule.interval or timedelta(minutes=15)
        paused_at = clock[0] + timedelta(minutes=1)
        clock[0] = paused_at
        rt.pause(hl.id, paused_at, reason="demo: pause")
        idle = [r for k in range(1, 4) for r in advance_to(paused_at + k * interval) if r.session_id == hl.id]
        console.print(f"{paused_at:%H:%M} [yellow]paused[/] session {hl.id}; three intervals later it has run"
                      f" {len(idle)} times")
        resumed = rt.resume(hl.id, clock[0] + timedelta(minutes=2), reason="demo: resume")
        clock[0] += timedelta(minutes=2)
        console.print(f"{clock[0]:%H:%M} [green]resumed[/]; next run at {resumed.next_run_at:%H:%M}"
                      " (the next scheduled point, no catch-up run)")
        set_mid(ETH_PATH[-1] + 30)
        for r in advance_to(resumed.next_run_at):
            if r.session_id == hl.id:
                _print_run(console, r)
        time.sleep(pace)

        # 4. unwind ----------------------------------------------------------------------------
        console.print(Rule("4. unwind: close everything the sessions hold, then stop"))
        clock[0] += timedelta(minutes=1)
        console.print(f"before: hl-trend {_holding(rt, hl.id)}")
        session = rt.unwind(hl.id, reason="demo: unwind")
        _print_run(console, rt.runs(hl.id)[-1])
        console.print(f"  session {hl.id} is {session.state}: {_holding(rt, hl.id)}")
        session = rt.unwind(pm.id, reason="demo: unwind")
        _print_run(console, rt.runs(pm.id)[-1])
        for suggestion in rt.suggestions(session_id=pm.id, status="pending"):
            console.print(f"  closing suggestion {suggestion.id}: {suggestion.action.describe()}")
            console.print(f"  $ tickloop suggestions approve {suggestion.id}")
            answer = _approve_with_cli(folder, suggestion.id)
            console.print(f"    {answer['status']}: {_short(answer.get('result') or answer.get('error'))}")
        if rt.session(pm.id).state == "unwinding":
            advance_to(clock[0] + timedelta(seconds=1))  # the closers check again once approved
        console.print(f"  session {pm.id} is {rt.session(pm.id).state}: {_holding(rt, pm.id)}")
        console.print(Rule())
        console.print("next: tickloop check ./agents/hl-trend · tickloop wallets add --paper ·"
                      " tickloop sessions start hl-trend --wallet 0x… --allocation 100000000 · tickloop serve")
    finally:
        rt.close()
        if scratch and not keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif scratch:
            console.print(f"kept the demo's home: {folder}")


def _print_run(console: Console, run: Run) -> None:
    colour = "green" if run.status == "succeeded" else "red"
    said = "; ".join(line.message for line in run.logs) or "-"
    console.print(f"  {run.scheduled_at:%H:%M} {run.kind} {run.id} [{colour}]{run.status}[/]: {said}")
    if run.error and run.status != "succeeded":
        console.print(f"    [red]{run.error}[/]")


def _holding(rt: Runtime, session_id: int) -> str:
    """One line: the session's positions and cash, from its ledger."""
    portfolio = rt.portfolio(session_id)
    parts = [f"{p.coin} {p.size} @ {_price(p.averageEntryPrice)} (uPnL {_price(p.unrealizedPnlUsd)})"
             for p in portfolio.positions] or ["flat"]
    cash = [f"{b.symbol or b.assetKey[:10]} {_price(b.valueUsd)}" for b in portfolio.balances if b.valueUsd]
    return "portfolio: " + ", ".join(parts) + (" | cash " + ", ".join(cash) if cash else "")


def _price(value: str | None) -> str:
    if value is None:
        return "?"
    return f"{float(value):,.2f}"


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 160 else text[:157] + "..."
