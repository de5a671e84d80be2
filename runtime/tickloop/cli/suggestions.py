"""``tickloop suggestions``: what manual-mode sessions proposed; list, show, approve or reject."""

from __future__ import annotations

import click

from tickloop.cli import render
from tickloop.cli.app import ID, LIMIT, runtime

SUGGESTION_STATUSES = ("pending", "approved", "rejected", "executed", "failed", "expired", "deleted")


@click.group()
def suggestions() -> None:
    """Suggestions of manual-mode sessions: list, show, approve (execute once) or reject."""


@suggestions.command("list")
@click.option("--session", "session_id", type=ID, default=None, help="Only this session's suggestions.")
@click.option("--status", type=click.Choice(SUGGESTION_STATUSES), default=None,
              help="Only suggestions with this status (a pending one past its expiry is expired).")
@click.option("--limit", type=LIMIT, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def suggestions_list(ctx: click.Context, session_id: int | None, status: str | None, limit: int,
                     as_json: bool) -> None:
    """List suggestions, newest first."""
    found = runtime(ctx).suggestions(session_id, status, limit=limit)
    if as_json:
        render.json_out(found)
        return
    from rich.table import Table

    # The action (venue, method and request, long values abbreviated) gets the room left over.
    table = Table("id", "session", "status", "created", "expires", "action")
    for column in (0, 1, 2, 3, 4):
        table.columns[column].no_wrap = True
    for s in found:
        table.add_row(str(s.id), str(s.session_id), render.suggestion_status(s.status), render.short_when(s.created_at),
                      render.short_when(s.expires_at), s.action.describe())
    render.console().print(table if found else "no suggestions")


@suggestions.command("show")
@click.argument("suggestion_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def suggestions_show(ctx: click.Context, suggestion_id: int, as_json: bool) -> None:
    """Show a suggestion: the action, its status and times, and its result or error."""
    s = runtime(ctx).suggestion(suggestion_id)
    if as_json:
        render.json_out(s)
        return
    out = render.console()
    out.print(f"[bold]suggestion {s.id}[/] of session {s.session_id}: {render.suggestion_status(s.status)}")
    out.print(f"  action    {s.action.describe()}", markup=False, soft_wrap=True)
    out.print(f"  kind      {s.action.kind}" + (f"    notional {s.action.notional_usd:.2f} USD"
                                                if s.action.notional_usd is not None else ""))
    if s.action.message:
        out.print(f"  message   {s.action.message}", markup=False)
    for label, value in (("created", s.created_at), ("expires", s.expires_at), ("decided", s.decided_at),
                         ("deleted", s.deleted_at), ("executed", s.executed_at)):
        if value is not None:
            out.print(f"  {label:<9} {render.when(value)}")
    if s.result is not None:
        out.print(f"  result    {render.compact(s.result)}", markup=False, soft_wrap=True)
    if s.error:
        out.print(f"  error     {s.error}", markup=False, soft_wrap=True)


@suggestions.command("approve")
@click.argument("suggestion_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def suggestions_approve(ctx: click.Context, suggestion_id: int, as_json: bool) -> None:
    """Execute a pending suggestion, exactly once.

    Refused (exit 1, with the reason) when it expired, was deleted, rejected, or already approved
    or executed. Exits 1 too when the venue failed to execute it (the suggestion is then failed).
    """
    s = runtime(ctx).approve(suggestion_id)
    if as_json:
        render.json_out(s)
    elif s.status == "executed":
        click.echo(f"suggestion {s.id} executed: {s.action.describe()}")
        click.echo(f"  result {render.compact(s.result)}")
    else:
        click.echo(f"suggestion {s.id} {s.status}: {s.action.describe()}")
        click.echo(f"  error {s.error}")
    if s.status != "executed":
        ctx.exit(1)


@suggestions.command("reject")
@click.argument("suggestion_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def suggestions_reject(ctx: click.Context, suggestion_id: int, as_json: bool) -> None:
    """Reject a pending suggestion: it will never execute."""
    s = runtime(ctx).reject(suggestion_id)
    if as_json:
        render.json_out(s)
    else:
        click.echo(f"suggestion {s.id} rejected: {s.action.describe()}")
