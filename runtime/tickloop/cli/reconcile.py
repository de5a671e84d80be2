"""``tickloop reconcile``: compare the venues with the sessions' ledgers; adopt or close differences."""

from __future__ import annotations

from typing import Any

import click

from tickloop.cli import render
from tickloop.cli.app import ID, runtime


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reconcile(ctx: click.Context, as_json: bool) -> None:
    """Compare each account on its venue with its sessions' ledgers; hold sessions that differ.

    \b
    First settles what dead processes left (orders sent but not booked, approvals stuck), then
    compares positions and open orders. A session whose ledger differs is held (not run) until
    `tickloop reconcile adopt` or `close` resolves it, or a later reconcile finds no difference.
    Exits 1 when something differs or a venue could not be reached.
    """
    if ctx.invoked_subcommand is not None:
        return
    found = runtime(ctx).reconcile()
    if as_json:
        render.json_doc(_reconciliation_data(found))
    else:
        _print_reconciliation(found)
    if not found.clean:
        ctx.exit(1)


def _difference_data(d: Any) -> dict[str, Any]:
    return {"venue": d.venue, "wallet": d.wallet, "asset": d.asset_key, "coin": d.coin,
            "venue_size": format(d.venue_size, "f"), "ledger_size": format(d.ledger_size, "f"),
            "difference": format(d.size, "f"), "sessions": list(d.sessions),
            "order_id": d.order.order_id if d.order is not None else None, "description": d.describe()}


def _reconciliation_data(found: Any) -> dict[str, Any]:
    return {"accounts": [{"wallet": a.wallet, "venue": a.venue, "status": a.status, "error": a.error,
                          "differences": [_difference_data(d) for d in a.differences]} for a in found.accounts],
            "held": list(found.held), "released": list(found.released),
            "recovered": [r.describe() for r in found.recovery.intents + found.recovery.suggestions]}


def _print_reconciliation(found: Any) -> None:
    for item in found.recovery.intents + found.recovery.suggestions:
        click.echo(f"recovered {item.describe()}")
    if not found.accounts:
        click.echo("no accounts to compare: no session has traded yet")
    for account in found.accounts:
        click.echo(account.describe())
        for d in account.differences:
            click.echo(f"  {d.describe()}")
    for session_id in found.held:
        click.echo(f"session {session_id} is held: it does not run until resolved with tickloop reconcile adopt"
                   f" {session_id} (book the venue's view) or tickloop reconcile close {session_id} (trade the"
                   " difference away)")
    for session_id in found.released:
        click.echo(f"session {session_id} is released: its ledger and the venues agree")


def _resolve(ctx: click.Context, how: str, session_id: int, asset: str | None, as_json: bool) -> None:
    rt = runtime(ctx)
    done = rt.adopt(session_id, asset) if how == "adopt" else rt.close_difference(session_id, asset)
    if as_json:
        render.json_doc({"session": session_id, "resolved": [_difference_data(d) for d in done.resolved],
                         "booked": list(done.booked),
                         "submitted": [{"action": text, "result": result.to_dict()} for text, result in done.submitted],
                         "released": done.released, "after": _reconciliation_data(done.after)})
        return
    for line in done.booked:
        click.echo(f"booked to session {session_id}: {line}")
    for text, result in done.submitted:
        click.echo(_submitted_text(text, result))
    left = done.after.for_session(session_id)
    if left:
        click.echo(f"session {session_id} is still held:")
        for d in left:
            click.echo(f"  {d.describe()}")
    else:
        click.echo(f"session {session_id} agrees with the venues and is not held")


def _submitted_text(text: str, result: Any) -> str:
    """What became of an order sent to close a difference: executed, suggested or failed."""
    data = result.data if result.success else None
    if data is not None and hasattr(data, "get") and data.get("suggested"):
        return (f"suggested: {text} (suggestion {data['suggestionId']}: approve it with tickloop suggestions"
                f" approve {data['suggestionId']})")
    if result.success:
        return f"executed: {text}"
    return f"failed: {text}: {result.error} (the difference stays booked: the ledger holds what the venue holds)"


@reconcile.command("adopt")
@click.argument("session_id", type=ID)
@click.option("--asset", default=None, metavar="KEY",
              help="Only this asset (an asset key, a coin or an order id); also takes residue no session explains.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reconcile_adopt(ctx: click.Context, session_id: int, asset: str | None, as_json: bool) -> None:
    """Adopt the venue's view: book each difference to the session's ledger as an adjustment
    entry (at the venue's price), and unknown open orders as the session's."""
    _resolve(ctx, "adopt", session_id, asset, as_json)


@reconcile.command("close")
@click.argument("session_id", type=ID)
@click.option("--asset", default=None, metavar="KEY",
              help="Only this asset (an asset key, a coin or an order id); also takes residue no session explains.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reconcile_close(ctx: click.Context, session_id: int, asset: str | None, as_json: bool) -> None:
    """Close the difference: book it (as adopt does), then trade it away with an order through
    the gateway (manual mode: a suggestion to approve), or cancel an unknown open order."""
    _resolve(ctx, "close", session_id, asset, as_json)
