"""``tickloop sessions``: start, list, show, pause, resume, stop and unwind sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tickloop.cli import render
from tickloop.cli.app import ID, parse_settings, runtime

if TYPE_CHECKING:
    from tickloop.runtime import Runtime
    from tickloop.sessions import Session
    from tickloop.views import SessionView, SharedMargin


@click.group()
def sessions() -> None:
    """Start, list, inspect, pause, resume, stop and unwind sessions."""


@sessions.command("start")
@click.argument("agent")
@click.option("--wallet", required=True, help="The wallet address the session trades from.")
@click.option("--mode", type=click.Choice(["auto", "manual"]), default=None,
              help="Execution mode [default: the first of allowedExecutionModes].")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="Override a setting (repeatable).")
@click.option("--allocation", default=None, help="Amount of the startingAsset, in raw units.")
@click.option("--reason", default="", help="Recorded in the session's audit trail.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sessions_start(ctx: click.Context, agent: str, wallet: str, mode: str | None, settings: tuple[str, ...],
                   allocation: str | None, reason: str, as_json: bool) -> None:
    """Start AGENT (an installed agent's name or a folder path) on a wallet."""
    rt = runtime(ctx)
    loaded = rt.agent(agent)
    session = rt.start_session(agent, wallet, mode=mode or loaded.manifest.default_mode,
                               settings=parse_settings(settings), allocation=allocation,
                               reason=reason or "tickloop sessions start")
    if as_json:
        render.json_out(session)
    else:
        click.echo(f"started session {session.id}: {session.agent} on {session.wallet} ({session.mode},"
                   f" {session.schedule.describe()}); first run due now")


@sessions.command("list")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["created", "running", "paused", "unwinding", "stopped"]),
              help="Only sessions in this state (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sessions_list(ctx: click.Context, states: tuple[str, ...], as_json: bool) -> None:
    """List sessions."""
    rt = runtime(ctx)
    found = rt.sessions(states=states or None)
    holds = rt.holds()
    if as_json:
        from tickloop.jsondata import to_data

        render.json_out([{**to_data(s), "hold": to_data(holds.get(s.id))} for s in found])
        return
    from rich.table import Table

    table = Table("id", "agent", "wallet", "mode", "state", "schedule", "next run")
    for s in found:
        next_run = render.when(s.next_run_at) if s.state in ("running", "unwinding") else "-"
        state = render.state_text(s.state) + (" [red](held)[/]" if s.id in holds else "")
        table.add_row(str(s.id), s.agent, s.wallet, s.mode, state, s.schedule.describe(), next_run)
    out = render.console()
    out.print(table if found else "no sessions")
    if holds.keys() & {s.id for s in found}:
        out.print("held sessions do not run until reconciled: tickloop sessions show ID says why")


@sessions.command("show")
@click.argument("session_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sessions_show(ctx: click.Context, session_id: int, as_json: bool) -> None:
    """Show a session: settings, schedule, allocation, portfolio, pending suggestions, margin
    shared with other sessions of its wallet, upcoming runs, audit trail and recent runs."""
    view = runtime(ctx).session_view(session_id)
    if as_json:
        _show_json(view)
    else:
        _show_text(view)


def _show_json(view: SessionView) -> None:
    from tickloop.jsondata import to_data

    portfolio = view.portfolio
    render.json_doc({"session": to_data(view.session), "hold": to_data(view.hold),
                     "transitions": to_data(view.transitions), "upcoming": [u.isoformat() for u in view.upcoming],
                     "runs": to_data(view.recent_runs), "allocation": _allocation_data(view.session),
                     "portfolio": portfolio.to_dict(),
                     "left_open": [to_data(p) for p in portfolio.positions] if view.left_open else [],
                     "pending_suggestions": view.pending_suggestions, "margin": to_data(view.margin)})


def _show_text(view: SessionView) -> None:
    session, pending = view.session, view.pending_suggestions
    out = render.console()
    out.print(f"[bold]session {session.id}[/]: {session.agent} ({session.agent_ref})")
    out.print(f"  state      {render.state_text(session.state)}")
    if view.hold is not None:
        from tickloop.reconcile import hold_text

        out.print(f"  held       {hold_text(view.hold)}", style="red", markup=False, soft_wrap=True)
    out.print(f"  wallet     {session.wallet}    mode {session.mode}")
    out.print(f"  schedule   {session.schedule.describe()}")
    if view.upcoming:
        out.print("  next runs  " + ", ".join(render.when(u) for u in view.upcoming))
    if session.state == "paused" and session.next_run_at is not None:
        out.print("  paused; on resume the next run is the first scheduled point at or after the resume time")
    if session.state == "unwinding" and session.next_run_at is None:
        waiting = ("the closers' orders wait for approval (tickloop suggestions list --session"
                   f" {session.id})" if pending else "a closing suggestion was rejected, failed or expired")
        out.print(f"  unwinding; {waiting}; `tickloop sessions stop {session.id}` ends it as it is", soft_wrap=True)
    if session.allocation:
        out.print(f"  allocation {_allocation_text(session, session.allocation)}", markup=False, soft_wrap=True)
    for key, value in session.settings.items():
        out.print(f"  setting    {key} = {value!r}", markup=False)
    if pending:
        out.print(f"  suggestions {pending} pending (tickloop suggestions list --session {session.id})")
    if view.margin is not None and view.margin.warning:
        out.print(_margin_warning(session, view.margin), style="yellow", markup=False, soft_wrap=True)
    render.print_portfolio(out, view.portfolio, left_open=view.left_open)
    out.print("[bold]audit trail[/]")
    for t in view.transitions:
        reason = f" ({t.reason})" if t.reason else ""
        out.print(f"  {render.when(t.at)}  {t.action:<8} {t.from_state} -> {t.to_state}{reason}", markup=False)
    if view.recent_runs:
        out.print("[bold]recent runs[/]")
        for r in reversed(view.recent_runs):
            out.print(f"  run {r.id:<6} {r.kind:<6} {render.when(r.scheduled_at)}  {r.status}"
                      + (f"  {render.first_line(r.error)}" if r.error else ""), markup=False)


def _allocation_data(session: Session) -> dict[str, Any] | None:
    if not session.allocation:
        return None
    from tickloop.wallets import asset_info

    symbol, decimals = asset_info(session.allocation_asset or "", session.allocation_network)
    return {"amount": session.allocation, "network": session.allocation_network, "asset": session.allocation_asset,
            "symbol": symbol, "decimals": decimals}


def _allocation_text(session: Session, allocation: str) -> str:
    if not session.allocation_asset:
        return f"{allocation} raw units"
    return (f"{render.human(allocation, session.allocation_asset, session.allocation_network)}"
            f" ({session.allocation_asset} on {session.allocation_network})")


def _margin_warning(session: Session, margin: SharedMargin) -> str:
    ratio = margin.ratio
    use = "unbounded (no collateral)" if ratio.is_infinite() else f"{ratio * 100:.0f}%"
    names = ", ".join(str(i) for i in margin.sessions)
    return (f"warning: shared liquidation risk: sessions {names} trade on one perp account of wallet"
            f" {session.wallet}; their combined margin use is {use} ({margin.margin_used:.2f} of"
            f" {margin.account_value:.2f} USD, from the {margin.source}), at or above [wallets] margin_warning"
            f" {margin.threshold * 100:.0f}%: a loss in one session can liquidate the positions of the others")


def _lifecycle(action: str, help_text: str) -> None:
    @sessions.command(action, help=help_text)
    @click.argument("session_id", type=ID)
    @click.option("--reason", default="", help="Recorded in the session's audit trail.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def command(ctx: click.Context, session_id: int, reason: str, as_json: bool) -> None:
        rt = runtime(ctx)
        session: Session = getattr(rt, action)(session_id, reason=reason or f"tickloop sessions {action}")
        _print_lifecycle(rt, session, as_json)
        if action == "stop":
            _warn_left_open(rt, session)


def _print_lifecycle(rt: Runtime, session: Session, as_json: bool) -> None:
    if as_json:
        render.json_out(session)
        return
    extra = ""
    if session.state == "running" and session.next_run_at is not None:
        extra = f"; next run {render.when(session.next_run_at)}"
    elif session.state == "unwinding" and session.next_run_at is None:
        pending = len(rt.suggestions(session.id, status="pending"))
        extra = (f"; closing waits for approval of {pending} suggestion(s) (tickloop suggestions list --session"
                 f" {session.id}); `tickloop sessions stop {session.id}` ends it as it is")
    elif session.state == "unwinding":
        extra = "; the running serve will unwind it now"
    click.echo(f"session {session.id} is {session.state}{extra}")
    if session.state == "stopped":
        last = rt.runs(session.id, limit=1)
        if last and last[-1].kind != "run" and last[-1].error:
            click.echo(f"  {last[-1].error}")


def _warn_left_open(rt: Runtime, session: Session) -> None:
    """Stopping never leaves positions silently: say what stays open, and how to close it."""
    positions = rt.portfolio(session.id).positions
    if not positions:
        return
    left = ", ".join(f"{p.venue} {p.coin} {p.size}" for p in positions)
    click.echo(f"warning: session {session.id} stopped with positions left open: {left}. They stay on the"
               " venue and tickloop no longer trades them; to close a session's positions, unwind it instead of"
               f" stopping it (tickloop sessions unwind ID), or close them on the venue yourself", err=True)


_lifecycle("pause", "Pause a running session: no cycles run; schedule, memory and allocation are kept.")
_lifecycle("resume", "Resume a paused session at its next scheduled point (no catch-up run).")
_lifecycle("stop", "Stop a session without unwinding (also ends an unwind waiting for approvals); its session"
                   " memory is cleared and its pending suggestions are deleted.")


@sessions.command("unwind")
@click.argument("session_id", type=ID)
@click.option("--asset", "assets", multiple=True, metavar="KEY",
              help="Unwind only this position: an asset key or a coin (repeatable) [default: everything].")
@click.option("--reason", default="", help="Recorded in the session's audit trail.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sessions_unwind(ctx: click.Context, session_id: int, assets: tuple[str, ...], reason: str,
                    as_json: bool) -> None:
    """Call the agent's unwind with the portfolio (or the --asset positions), let the closers close
    what is still open, then stop the session. What could not be closed is reported."""
    rt = runtime(ctx)
    session = rt.unwind(session_id, assets=list(assets) or None, reason=reason or "tickloop sessions unwind")
    _print_lifecycle(rt, session, as_json)
    if session.state == "stopped" and not as_json:
        # What the venue holds that no ledger explains is not "nothing left": the unwind said so.
        from tickloop.runner import VENUE_RESIDUE

        last = rt.runs(session.id, limit=1)
        for line in last[-1].logs if last else ():
            if line.message.startswith(VENUE_RESIDUE):
                click.echo(f"  {line.message.removeprefix(VENUE_RESIDUE)}")
