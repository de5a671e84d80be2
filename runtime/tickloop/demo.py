"""``tickloop demo``: the example agent through a session's whole life, on a simulated clock.

The demo drives ``Runtime.tick(now)`` with simulated time, so minutes of schedule pass in
seconds and every run happens exactly when the schedule says.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tickloop.errors import TickloopError

if TYPE_CHECKING:
    from rich.console import Console

    from tickloop.runs import Run

WALLET = "0x" + "de" * 20


def find_demo_agent() -> str:
    """The example agent: installed as ``hello``, else the ``agents/hello`` folder of a checkout."""
    from tickloop.agents import installed_agents

    if any(a.name == "hello" for a in installed_agents()):
        return "hello"
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        folder = base / "agents" / "hello"
        if (folder / "circuit.toml").is_file():
            return str(folder)
    raise TickloopError("the demo needs the example agent: pip install ./agents/hello (from a tickloop checkout)")


def run_demo(console: Console, *, home: str | None, runs: int = 6, keep: bool = False, pace: float = 0.3) -> None:
    """The tour; ``pace`` is the real seconds each simulated step is shown for (0: as fast as possible)."""
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.rule import Rule
    from rich.table import Table

    from tickloop.loop import Runtime

    scratch = home is None
    folder = Path(tempfile.mkdtemp(prefix="tickloop-demo-")) if scratch else Path(home)
    agent = find_demo_agent()
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    clock = [start]
    rt = Runtime.from_config(home=folder, overrides={"runtime": {"executor": "inline"}}, clock=lambda: clock[0])
    try:
        console.print(Rule("tickloop demo"))
        console.print(f"home: {folder}  (simulated clock starts at {start:%H:%M}Z)")
        session = rt.start_session(agent, WALLET, mode="auto", settings={"greeting": "gm"}, reason="demo")
        interval = session.schedule.interval or timedelta(minutes=1)
        console.print(f"started session {session.id}: [bold]{session.agent}[/] on {WALLET},"
                      f" {session.schedule.describe()}")

        def advance_to(when: datetime) -> list[Run]:
            clock[0] = when
            return rt.tick(when)

        table = Table("run", "scheduled", "status", "agent said", title="scheduled runs")
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=console, transient=True) as progress:
            task = progress.add_task("running on schedule", total=runs)
            for _ in range(runs):
                due = rt.session(session.id).next_run_at
                for r in advance_to(due):
                    table.add_row(str(r.id), f"{r.scheduled_at:%H:%M:%S}", r.status,
                                  "; ".join(line.message for line in r.logs))
                progress.advance(task)
                time.sleep(pace)
        console.print(table)

        paused_at = clock[0] + interval / 2
        rt.pause(session.id, paused_at, reason="demo: pause")
        console.print(f"{paused_at:%H:%M:%S} [yellow]paused[/]; three intervals pass with no runs:")
        idle = [r for k in range(1, 4) for r in advance_to(paused_at + k * interval)]
        time.sleep(pace)
        console.print(f"  runs while paused: {len(idle)}")
        resumed_at = clock[0] + interval / 3
        session = rt.resume(session.id, resumed_at, reason="demo: resume")
        console.print(f"{resumed_at:%H:%M:%S} [green]resumed[/]; next run at {session.next_run_at:%H:%M:%S}"
                      " (the next scheduled point, no catch-up run)")
        for r in advance_to(session.next_run_at):
            console.print(f"  run {r.id} {r.status}: " + "; ".join(line.message for line in r.logs))
        memory = rt.memory(session.id).get("runs")
        console.print(f"session memory 'runs' = {memory.data.value}")
        clock[0] += timedelta(seconds=5)
        session = rt.unwind(session.id, reason="demo: unwind")
        unwind_run = rt.runs(session.id)[-1]
        console.print(f"{clock[0]:%H:%M:%S} [magenta]unwind[/]: run {unwind_run.id} {unwind_run.status}: "
                      + "; ".join(line.message for line in unwind_run.logs))
        console.print(f"session {session.id} is {session.state}; session memory 'runs' ="
                      f" {rt.memory(session.id).get('runs').data.value}")
        trail = Table("at", "action", "from", "to", title="audit trail")
        for t in rt.transitions(session.id):
            trail.add_row(f"{t.at:%H:%M:%S}", t.action, str(t.from_state), str(t.to_state))
        console.print(trail)
        console.print(Rule())
        console.print("next: tickloop check ./agents/hello · tickloop run ./agents/hello --once ·"
                      " tickloop sessions start hello --wallet 0x… · tickloop serve")
    finally:
        rt.close()
        if scratch and not keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif scratch:
            console.print(f"kept the demo's home: {folder}")
