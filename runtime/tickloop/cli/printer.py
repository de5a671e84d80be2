"""What ``tickloop serve`` prints while it works: one line per finished run and per lifecycle change.

:class:`EventPrinter` implements the lifecycle hooks ``tickloop_run_finished`` and
``tickloop_session_transitioned`` and is registered with ``Runtime.observe``. It writes to
stdout: styled by rich on a terminal, plain text otherwise, or one JSON object per line. A line
holds ids, names, statuses, times and the first line of an error: never settings, keys or
tokens.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import click

from tickloop import hookimpl
from tickloop.cli import render

if TYPE_CHECKING:
    from rich.text import Text

    from tickloop.runs import Run
    from tickloop.sessions import Session, Transition


def run_event(session: Session, run: Run) -> dict[str, Any]:
    """A finished run as an event: ``{"event": "run_finished", ...}``."""
    duration = None
    if run.finished_at is not None and run.started_at is not None:
        duration = round((run.finished_at - run.started_at).total_seconds(), 6)
    return {"event": "run_finished", "at": _iso(run.finished_at), "session": session.id, "agent": session.agent,
            "run": run.id, "kind": str(run.kind), "status": str(run.status), "duration": duration,
            "error": render.first_line(run.error) or None}


def transition_event(session: Session, transition: Transition) -> dict[str, Any]:
    """A lifecycle change as an event: ``{"event": "session_transitioned", ...}``."""
    return {"event": "session_transitioned", "at": _iso(transition.at), "session": session.id,
            "agent": session.agent, "action": transition.action, "from": str(transition.from_state),
            "to": str(transition.to_state), "reason": transition.reason or None}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class EventPrinter:
    """Prints serve's events as they happen (from any thread, one whole line at a time)."""

    def __init__(self, *, as_json: bool = False) -> None:
        self._json = as_json
        self._console = None if as_json else render.console()
        self._lock = threading.Lock()

    @hookimpl
    def tickloop_run_finished(self, session: Session, run: Run) -> None:
        if self._json:
            self._write_json(run_event(session, run))
            return
        line = self._head(run.finished_at, session)
        line.append(f"{run.kind} {run.id} ")
        line.append(str(run.status), style=render.RUN_STYLES.get(str(run.status), ""))
        line.append(f" in {render.took(run)}")
        if run.error:
            line.append(": ")
            line.append(render.first_line(run.error), style="red")
        self._print(line)

    @hookimpl
    def tickloop_session_transitioned(self, session: Session, transition: Transition) -> None:
        if self._json:
            self._write_json(transition_event(session, transition))
            return
        line = self._head(transition.at, session)
        line.append(f"{transition.action} {transition.from_state} -> ")
        line.append(str(transition.to_state), style=render.STATE_STYLES.get(str(transition.to_state), ""))
        if transition.reason:
            line.append(f" ({transition.reason})")
        self._print(line)

    @staticmethod
    def _head(at: Any, session: Session) -> Text:
        from rich.text import Text

        return Text(f"{render.when(at)} session {session.id} ({session.agent}): ")

    def _print(self, line: Text) -> None:
        assert self._console is not None
        with self._lock:
            self._console.print(line, soft_wrap=True)

    def _write_json(self, event: dict[str, Any]) -> None:
        import json

        text = json.dumps(event, default=str)
        with self._lock:
            click.echo(text)  # flushed: a pipe's reader sees each event as it happens
