"""``tickloop runs list`` (status, timing, errors) and ``tickloop logs`` (what agents logged)."""

from __future__ import annotations

import click

from tickloop.cli import render
from tickloop.cli.app import ID, LIMIT, runtime


@click.group()
def runs() -> None:
    """Runs of sessions: status, timing, errors."""


@runs.command("list")
@click.option("--session", "session_id", type=ID, default=None, help="Only this session's runs.")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "timed_out", "skipped"]), default=None)
@click.option("--limit", type=LIMIT, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs_list(ctx: click.Context, session_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    found = list(reversed(runtime(ctx).runs(session_id, status=status, limit=limit)))
    if as_json:
        render.json_out(found)
        return
    from rich.table import Table

    table = Table("run", "session", "kind", "scheduled", "started", "took", "status", "error")
    for r in found:
        table.add_row(str(r.id), str(r.session_id), r.kind, render.when(r.scheduled_at), render.when(r.started_at),
                      render.took(r), render.run_status(r.status), render.first_line(r.error))
    render.console().print(table if found else "no runs")


@click.command()
@click.option("--session", "session_id", type=ID, default=None, help="Only this session's lines.")
@click.option("--run", "run_id", type=ID, default=None, help="Only this run's lines.")
@click.option("--limit", type=LIMIT, default=200, show_default=True, help="The last N lines.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def logs(ctx: click.Context, session_id: int | None, run_id: int | None, limit: int, as_json: bool) -> None:
    """Show what agents logged with agent.log, oldest first."""
    lines = runtime(ctx).logs(session_id=session_id, run_id=run_id, limit=limit)
    if as_json:
        from tickloop.jsondata import to_data

        render.json_doc([{"run_id": rid, **to_data(line)} for rid, line in lines])
        return
    out = render.console()
    for rid, line in lines:
        style = {"error": "red", "debug": "dim"}.get(line.level, "")
        text = f"{render.when(line.at)} run {rid:<6} {line.level:<5} {line.message}"
        out.print(text, style=style or None, markup=False, soft_wrap=True)
    if not lines:
        out.print("no log lines")
