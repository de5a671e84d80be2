"""``tickloop serve`` (every session on its schedule) and ``tickloop run`` (one agent, locally)."""

from __future__ import annotations

import threading

import click

from tickloop.cli import render
from tickloop.cli.app import parse_settings, runtime, stop_on_signals
from tickloop.errors import TickloopError

DEV_WALLET = "0x" + "0" * 39 + "1"  # `tickloop run` needs some address; this one holds nothing


@click.command()
@click.option("--host", default=None, help="Address for the HTTP API [default from [api] host: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port for the HTTP API [default from [api] port].")
@click.option("--token", default=None, envvar="TICKLOOP_API_TOKEN",
              help="Token clients must send; required when --host is not a loopback address.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the events on stdout as JSON lines (one object per line) instead of text.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, token: str | None, as_json: bool) -> None:
    """Run every session of the home on its schedule until interrupted.

    One serve owns a home at a time; a second one says so and exits.

    \b
    Prints one line on stdout per finished run (time, session, agent, kind, run id, status,
    duration, the first line of its error) and per lifecycle change serve makes (time, session,
    agent, action, from -> to state, reason); coloured on a terminal, plain text otherwise.
    With --json each line is an object:
      {"event": "run_finished", "at", "session", "agent", "run", "kind", "status",
       "duration" (seconds), "error" (first line, or null)}
      {"event": "session_transitioned", "at", "session", "agent", "action", "from", "to", "reason"}
    Changes made by other processes (tickloop sessions pause ...) are printed by them, not here.
    Start-up and shutdown messages go to stderr.
    """
    from tickloop.cli.printer import EventPrinter

    rt = runtime(ctx)
    host = host or rt.config.api.host
    token = token or rt.config.api.token
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise TickloopError(f"--host {host}: a --token is required when serving beyond this machine")
    stop = threading.Event()
    stop_on_signals(stop, rt.wake)
    err = render.console(stderr=True)

    def ready() -> None:
        open_sessions = len(rt.sessions(states=["running", "paused", "unwinding"]))
        isolation = rt.isolation()
        if isolation is not None:
            err.print(f"tickloop serve: {isolation}")
        err.print(f"tickloop serve: home {rt.config.home}, {open_sessions} open session(s),"
                  f" executor {rt.config.runtime.executor}; Ctrl-C to stop")

    rt.observe(EventPrinter(as_json=as_json))
    rt.serve(stop=stop, ready=ready)
    err.print("tickloop serve: stopped")


@click.command()
@click.argument("agent")
@click.option("--once", is_flag=True, help="Run one cycle now, then stop the session.")
@click.option("--mode", type=click.Choice(["auto", "manual"]), default=None,
              help="Execution mode [default: the first of allowedExecutionModes].")
@click.option("--wallet", default=DEV_WALLET, show_default=True, help="Session wallet address.")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="Override a setting (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the run(s) as JSON.")
@click.pass_context
def run(ctx: click.Context, agent: str, once: bool, mode: str | None, wallet: str, settings: tuple[str, ...],
        as_json: bool) -> None:
    """Run AGENT (a folder path or an installed agent's name) locally, like `circuit run`.

    Without --once it keeps running on the agent's schedule until interrupted; the session is
    stopped at the end either way. Exits 1 when a run fails.
    """
    rt = runtime(ctx)
    rt.claim()  # a running serve would run this session too; refuse instead
    loaded = rt.agent(agent)
    session = rt.start_session(agent, wallet, mode=mode or loaded.manifest.default_mode,
                               settings=parse_settings(settings), reason="tickloop run")
    out = render.console()
    failed = False
    try:
        if once:
            run_ = rt.run_now(session.id)
            failed = run_.status != "succeeded"
            render.json_out(run_) if as_json else render.print_run(out, run_)
        else:
            stop = threading.Event()
            stop_on_signals(stop)
            out.print(f"running {loaded.name} as session {session.id} ({session.schedule.describe()}); Ctrl-C to stop")
            while not stop.is_set():
                run_ = rt.run_now(session.id)
                failed = failed or run_.status != "succeeded"
                render.json_out(run_) if as_json else render.print_run(out, run_)
                next_run_at = rt.session(session.id).next_run_at
                if next_run_at is None:  # stopped meanwhile (by another process): no next cycle
                    break
                stop.wait(max(0.0, (next_run_at - rt.now()).total_seconds()))
    finally:
        rt.stop(session.id, reason="tickloop run finished")
    if failed:
        ctx.exit(1)
