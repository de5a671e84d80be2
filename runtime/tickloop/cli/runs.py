"""``tickloop runs list`` (status, timing, errors) and ``tickloop logs`` (what agents logged)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from tickloop.cli import render
from tickloop.cli.app import ID, LIMIT, runtime, stop_on_signals

if TYPE_CHECKING:
    from tickloop.runs import LogLine
    from tickloop.runtime import Runtime


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


#: Seconds between looks for new lines with --follow, and how many lines one look takes at most.
FOLLOW_POLL = 0.5
FOLLOW_BATCH = 1000


@click.command()
@click.option("--session", "session_id", type=ID, default=None, help="Only this session's lines.")
@click.option("--run", "run_id", type=ID, default=None, help="Only this run's lines.")
@click.option("--limit", type=LIMIT, default=200, show_default=True, help="The last N lines.")
@click.option("--follow", "-f", is_flag=True, help="Then print new lines as runs log them, until interrupted.")
@click.option("--json", "as_json", is_flag=True,
              help="JSON: an array of lines; with --follow one object per line (JSON lines).")
@click.pass_context
def logs(ctx: click.Context, session_id: int | None, run_id: int | None, limit: int, follow: bool,
         as_json: bool) -> None:
    """Show what agents logged with agent.log, oldest first.

    With --follow, keep printing the lines of runs as they finish (a run's lines are stored when
    it ends) until Ctrl-C, then exit 0.
    """
    rt = runtime(ctx)
    stop = threading.Event()
    if follow:
        stop_on_signals(stop)  # before the first line is out: Ctrl-C from then on ends the command quietly
    lines = rt.logs(session_id=session_id, run_id=run_id, limit=limit)
    if follow:
        show = _json_lines if as_json else _text_lines
        show(lines)
        if not lines:
            click.echo("no log lines yet; waiting for new ones (Ctrl-C to stop)", err=True)
        _follow(rt, session_id, run_id, _last_id(lines) if lines else 0, show, stop)
    elif as_json:
        from tickloop.jsondata import to_data

        render.json_doc([{"run_id": rid, **to_data(line)} for rid, line in lines])
    else:
        _text_lines(lines)
        if not lines:
            render.console().print("no log lines")


def _follow(rt: Runtime, session_id: int | None, run_id: int | None, after: int,
            show: Callable[[list[tuple[int, LogLine]]], None], stop: threading.Event) -> None:
    """Print the lines stored after line ``after`` as they come, until ``stop`` is set."""
    while not stop.wait(FOLLOW_POLL):
        while not stop.is_set():
            new = rt.logs(session_id=session_id, run_id=run_id, limit=FOLLOW_BATCH, after=after)
            if new:
                show(new)
                after = _last_id(new)
            if len(new) < FOLLOW_BATCH:
                break


def _last_id(lines: list[tuple[int, LogLine]]) -> int:
    """The store's id of the last of ``lines`` (lines read from the store always carry theirs)."""
    last = lines[-1][1].id
    assert last is not None, "a log line read from the store has no id"
    return last


def _text_lines(lines: list[tuple[int, LogLine]]) -> None:
    out = render.console()
    for rid, line in lines:
        style = {"error": "red", "debug": "dim"}.get(line.level, "")
        text = f"{render.when(line.at)} run {rid:<6} {line.level:<5} {line.message}"
        out.print(text, style=style or None, markup=False, soft_wrap=True)


def _json_lines(lines: list[tuple[int, LogLine]]) -> None:
    import json

    from tickloop.jsondata import to_data

    for rid, line in lines:
        click.echo(json.dumps({"run_id": rid, **to_data(line)}, default=str))
