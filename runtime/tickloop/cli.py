"""The ``tickloop`` command line.

Every command works whether or not ``serve`` is running: commands write to the state store, and
a running ``serve`` is told of each change at once. Heavy modules are imported inside commands,
so ``tickloop --help`` stays fast.
"""

from __future__ import annotations

import errno
import gc
import json
import signal
import sys
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import click

from tickloop.errors import TickloopError
from tickloop.text import storable

if TYPE_CHECKING:
    from rich.console import Console

    from tickloop.runtime import Runtime
    from tickloop.views import SharedMargin
    from tickloop.runs import Run
    from tickloop.sessions import Session

DEV_WALLET = "0x" + "0" * 39 + "1"  # `tickloop run` needs some address; this one holds nothing


class Group(click.Group):
    """A click group that turns tickloop's user errors into one-line messages (exit 1)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _safe_output()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TickloopError as exc:
            raise click.ClickException(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click's main() handles a closed pipe (`tickloop logs | head`)
            _internal_error(ctx, exc)
        except Exception as exc:
            _internal_error(ctx, exc)


def _safe_output() -> None:
    """Print text UTF-8 cannot encode (lone surrogates: arguments that are not UTF-8, what
    agents logged) as its escape, ``\\udcff``, instead of failing (rich and click.echo write
    through these streams)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass  # not a text stream we can reconfigure (a test runner's, a closed one)


def _internal_error(ctx: click.Context, exc: Exception) -> None:
    """The last resort for a bug: one line naming where the traceback went (or, with
    ``TICKLOOP_DEBUG=1``, the traceback itself). User mistakes never get here; they are
    TickloopErrors or click usage errors."""
    import os
    import tempfile
    import traceback

    if os.environ.get("TICKLOOP_DEBUG") == "1":
        raise exc
    text = "".join(traceback.format_exception(exc))
    options = ctx.find_object(Options)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    where = "not saved"
    for folder in ([options.home] if options is not None and options.home else []) + [tempfile.gettempdir()]:
        path = os.path.join(folder, f"tickloop-error-{stamp}-{os.getpid()}.txt")
        try:
            with open(path, "x", encoding="utf-8", errors="backslashreplace") as f:
                f.write(text)
            where = f"in {path}"
            break
        except OSError:
            continue
    raise click.ClickException(f"internal error (a bug in tickloop or a plugin): {type(exc).__name__}: {exc};"
                               f" the traceback is {where} (TICKLOOP_DEBUG=1 prints it)") from None


class IdType(click.ParamType):
    """A record id on the command line: a whole number from 1 to MAX_ID (ids are signed 64-bit
    integers in every store), refused as a usage error otherwise."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from tickloop.store import MAX_ID

        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            # Length first: int() of thousands of digits is slow, and refused past 4300.
            number = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
        if not 1 <= number <= MAX_ID:
            self.fail(f"{value!r} is not an id: a whole number from 1 to {MAX_ID}", param, ctx)
        return number


ID = IdType()
#: --limit: how many records at most (up to tickloop.store.MAX_ID, not imported: --help stays fast).
LIMIT = click.IntRange(1, 2**63 - 1)


class Options:
    def __init__(self, home: str | None, config: str | None) -> None:
        self.home = home
        self.config = config
        self._runtime: Runtime | None = None

    def runtime(self) -> Runtime:
        if self._runtime is None:
            from tickloop.runtime import Runtime

            self._runtime = Runtime.from_config(self.config, home=self.home)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _rt(ctx: click.Context) -> Runtime:
    return ctx.find_object(Options).runtime()


def _json_out(obj: Any) -> None:
    from tickloop.jsondata import dumps

    click.echo(dumps(obj))


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _parse_settings(values: Iterable[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in values:
        key, sep, value = storable(item).partition("=")  # stored in the session: must be storable
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--setting")
        settings[key.strip()] = value
    return settings


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(file_okay=False), envvar="TICKLOOP_HOME",
              help="Folder for state, memory and tickloop.toml [env TICKLOOP_HOME; default ~/.tickloop].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="TICKLOOP_CONFIG",
              help="Config file to use instead of <home>/tickloop.toml.")
@click.version_option(package_name="tickloop", prog_name="tickloop")
@click.pass_context
def cli(ctx: click.Context, home: str | None, config_path: str | None) -> None:
    """tickloop: run Circuit-style trading agents on your own machine.

    \b
    Quick start:
      tickloop demo                                # a guided tour in a scratch folder
      tickloop check ./my-agent                    # validate circuit.toml
      tickloop run ./my-agent --once               # one local cycle
      tickloop wallets add --paper                 # a paper wallet (prints its address)
      tickloop sessions start ./my-agent --wallet 0x...
      tickloop serve                               # run every session on its schedule
      tickloop suggestions list                    # manual mode: approve or reject
      tickloop reconcile                           # compare the venues with the ledgers
    """
    options = Options(home, config_path)
    ctx.obj = options
    ctx.call_on_close(options.close)


# -- demo, serve, run, check --------------------------------------------------------------------


@cli.command()
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
    from tickloop.demo import run_demo

    options = ctx.find_object(Options)
    run_demo(_console(), home=options.home, runs=runs, keep=keep, pace=0.0 if fast else 0.3)


@cli.command()
@click.option("--host", default=None, help="Address for the HTTP API [default from [api] host: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port for the HTTP API [default from [api] port].")
@click.option("--token", default=None, envvar="TICKLOOP_API_TOKEN",
              help="Token clients must send; required when --host is not a loopback address.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, token: str | None) -> None:
    """Run every session of the home on its schedule until interrupted.

    One serve owns a home at a time; a second one says so and exits.
    """
    rt = _rt(ctx)
    host = host or rt.config.api.host
    token = token or rt.config.api.token
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise TickloopError(f"--host {host}: a --token is required when serving beyond this machine")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        rt.wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    err = _console(stderr=True)

    def ready() -> None:
        open_sessions = len(rt.sessions(states=["running", "paused", "unwinding"]))
        isolation = rt.isolation()
        if isolation is not None:
            err.print(f"tickloop serve: {isolation}")
        err.print(f"tickloop serve: home {rt.config.home}, {open_sessions} open session(s),"
                  f" executor {rt.config.runtime.executor}; Ctrl-C to stop")

    # Objects alive after start-up live as long as serve: keeping them out of the collector's
    # full passes shortens those pauses (15-20 ms -> about 2 ms at 5,000 sessions).
    gc.freeze()
    rt.serve(stop=stop, ready=ready)
    err.print("tickloop serve: stopped")


@cli.command()
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
    rt = _rt(ctx)
    rt.claim()  # a running serve would run this session too; refuse instead
    loaded = rt.agent(agent)
    session = rt.start_session(agent, wallet, mode=mode or loaded.manifest.default_mode,
                               settings=_parse_settings(settings), reason="tickloop run")
    console = _console()
    failed = False
    try:
        if once:
            run_ = rt.run_now(session.id)
            failed = run_.status != "succeeded"
            _json_out(run_) if as_json else _print_run(console, run_)
        else:
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *a: stop.set())
            signal.signal(signal.SIGTERM, lambda *a: stop.set())
            console.print(f"running {loaded.name} as session {session.id} ({session.schedule.describe()});"
                          " Ctrl-C to stop")
            while not stop.is_set():
                run_ = rt.run_now(session.id)
                failed = failed or run_.status != "succeeded"
                _json_out(run_) if as_json else _print_run(console, run_)
                wait = (rt.session(session.id).next_run_at - rt.now()).total_seconds()
                stop.wait(max(0.0, wait))
    finally:
        rt.stop(session.id, reason="tickloop run finished")
    if failed:
        ctx.exit(1)


def _print_run(console: Console, run_: Run) -> None:
    from rich.markup import escape  # what agents log is text, not markup ("[venues.x]" must show)

    style = {"succeeded": "green", "failed": "red", "timed_out": "red", "skipped": "yellow"}.get(run_.status, "")
    console.print(f"run {run_.id} ({run_.kind}) [{style}]{run_.status}[/] at {_when(run_.finished_at)}")
    for line in run_.logs:
        level = {"error": "[red]error[/]", "debug": "[dim]debug[/]"}.get(line.level, "info ")
        console.print(f"  {level} {escape(line.message)}", markup=True, soft_wrap=True)
    if run_.error:
        console.print(f"  [red]{escape(run_.error)}[/]", soft_wrap=True)
        if run_.traceback:
            console.print(run_.traceback.rstrip(), markup=False, style="dim", soft_wrap=True)


@cli.command()
@click.argument("path", type=click.Path())
def check(path: str) -> None:
    """Validate an agent folder (or its circuit.toml): report every problem, exit 1 if any."""
    from tickloop.manifest import Manifest, check_agent_folder

    problems = check_agent_folder(path)
    if problems:
        err = _console(stderr=True)
        for problem in problems:
            err.print(str(problem), markup=False, soft_wrap=True)
        raise SystemExit(1)
    manifest = Manifest.from_file(path)
    click.echo(f"ok: {manifest.name} {manifest.version} ({manifest.schedule.describe()},"
               f" {len(manifest.settings)} setting(s))")


# -- agents, plugins ----------------------------------------------------------------------------


@cli.group()
def agents() -> None:
    """Installed agents (the tickloop.agents entry points)."""


@agents.command("list")
@click.option("--json", "as_json", is_flag=True)
def agents_list(as_json: bool) -> None:
    """List installed agents with their manifest's name, version and schedule."""
    from tickloop.agents import AgentLoader, clashes, installed_agents

    loader = AgentLoader()
    rows = []
    installed = installed_agents()
    clashing = clashes(installed)
    for info in installed:
        row: dict[str, Any] = {"name": info.name, "entry_point": info.value, "distribution": info.distribution,
                               "version": info.version}
        try:
            manifest = loader.load(info.name).manifest
            row.update(agent=manifest.name, tagline=manifest.tagline, schedule=manifest.schedule.describe(),
                       modes=list(manifest.allowedExecutionModes), error=None)
        except TickloopError as exc:
            row.update(agent=None, tagline=None, schedule=None, modes=[], error=str(exc))
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        _warn_clashes(clashing)
        return
    from rich.table import Table

    table = Table("name", "version", "tagline", "schedule", "modes", "from")
    for row in rows:
        if row["error"]:
            clash = clashing.get(row["name"])
            error = f"{len(clash)} distributions declare this name (below)" if clash else row["error"]
            table.add_row(row["name"], "", f"[red]{error}[/]", "", "", row["distribution"] or "")
        else:
            table.add_row(row["name"], row["version"] or "", row["tagline"], row["schedule"], ",".join(row["modes"]),
                          f"{row['distribution']} {row['version']}")
    console = _console()
    console.print(table if rows else "no agents installed (pip install ./agents/hello, or run a folder by path)")
    _warn_clashes(clashing)


def _warn_clashes(clashing: Mapping[str, Any]) -> None:
    from tickloop.agents import clash_message

    for name, found in clashing.items():
        _console(stderr=True).print(f"warning: {clash_message(name, found)}", style="yellow", markup=False,
                                    soft_wrap=True)


@cli.group()
def plugins() -> None:
    """Loaded plugins and the hooks they implement."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins: name, distribution, version and hooks."""
    from tickloop.config import Config
    from tickloop.bootstrap import configured_plugin_manager
    from tickloop.pluginmanager import describe
    from tickloop.registry import FAMILIES, Registry

    options = ctx.find_object(Options)
    config = Config.load(options.config, home=options.home)
    pm = configured_plugin_manager(config)
    rows = describe(pm)
    registry = Registry.from_plugin_manager(pm)
    provides: dict[str, list[str]] = {}
    for family in FAMILIES:
        for name in registry.names(family):
            provides.setdefault(registry.backends[family][name].plugin, []).append(f"{family}:{name}")
    for row in rows:
        row["provides"] = provides.get(row["name"], [])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("plugin", "distribution", "provides", "hooks")
    for row in rows:
        if row["blocked"]:
            table.add_row(row["name"], "[yellow]blocked[/]", "", "")
            continue
        dist = f"{row['distribution']} {row['version']}" if row["distribution"] else row["module"]
        hooks = ", ".join(h.removeprefix("tickloop_") for h in row["hooks"])
        table.add_row(row["name"], dist, ", ".join(row["provides"]), hooks)
    _console().print(table)


# -- sessions -----------------------------------------------------------------------------------


@cli.group()
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
    rt = _rt(ctx)
    loaded = rt.agent(agent)
    session = rt.start_session(agent, wallet, mode=mode or loaded.manifest.default_mode,
                               settings=_parse_settings(settings), allocation=allocation,
                               reason=reason or "tickloop sessions start")
    if as_json:
        _json_out(session)
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
    rt = _rt(ctx)
    found = rt.sessions(states=states or None)
    holds = rt.holds()
    if as_json:
        from tickloop.jsondata import to_data

        _json_out([{**to_data(s), "hold": to_data(holds.get(s.id))} for s in found])
        return
    from rich.table import Table

    table = Table("id", "agent", "wallet", "mode", "state", "schedule", "next run")
    for s in found:
        next_run = _when(s.next_run_at) if s.state in ("running", "unwinding") else "-"
        state = _state_text(s.state) + (" [red](held)[/]" if s.id in holds else "")
        table.add_row(str(s.id), s.agent, s.wallet, s.mode, state, s.schedule.describe(), next_run)
    _console().print(table if found else "no sessions")
    if holds.keys() & {s.id for s in found}:
        _console().print("held sessions do not run until reconciled: tickloop sessions show ID says why")


def _state_text(state: Any) -> str:
    colour = {"running": "green", "paused": "yellow", "unwinding": "magenta", "stopped": "dim"}.get(str(state), "")
    return f"[{colour}]{state}[/]" if colour else str(state)


@sessions.command("show")
@click.argument("session_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sessions_show(ctx: click.Context, session_id: int, as_json: bool) -> None:
    """Show a session: settings, schedule, allocation, portfolio, pending suggestions, margin
    shared with other sessions of its wallet, upcoming runs, audit trail and recent runs."""
    rt = _rt(ctx)
    view = rt.session_view(session_id)
    session, portfolio, pending, margin, hold = view.session, view.portfolio, view.pending_suggestions, view.margin, \
        view.hold
    transitions, recent, upcoming, left_open = view.transitions, view.recent_runs, view.upcoming, view.left_open
    if as_json:
        from tickloop.jsondata import to_data

        click.echo(json.dumps({"session": to_data(session), "hold": to_data(hold), "transitions": to_data(transitions),
                               "upcoming": [u.isoformat() for u in upcoming], "runs": to_data(recent),
                               "allocation": _allocation_data(session), "portfolio": portfolio.to_dict(),
                               "left_open": [to_data(p) for p in portfolio.positions] if left_open else [],
                               "pending_suggestions": pending, "margin": to_data(margin)}, indent=2))
        return
    console = _console()
    console.print(f"[bold]session {session.id}[/]: {session.agent} ({session.agent_ref})")
    console.print(f"  state      {_state_text(session.state)}")
    if hold is not None:
        from tickloop.reconcile import hold_text

        console.print(f"  held       {hold_text(hold)}", style="red", markup=False, soft_wrap=True)
    console.print(f"  wallet     {session.wallet}    mode {session.mode}")
    console.print(f"  schedule   {session.schedule.describe()}")
    if upcoming:
        console.print("  next runs  " + ", ".join(_when(u) for u in upcoming))
    if session.state == "paused" and session.next_run_at is not None:
        console.print("  paused; on resume the next run is the first scheduled point at or after the resume time")
    if session.state == "unwinding" and session.next_run_at is None:
        waiting = ("the closers' orders wait for approval (tickloop suggestions list --session"
                   f" {session.id})" if pending else "a closing suggestion was rejected, failed or expired")
        console.print(f"  unwinding; {waiting}; `tickloop sessions stop {session.id}` ends it as it is",
                      soft_wrap=True)
    if session.allocation:
        console.print(f"  allocation {_allocation_text(session)}", markup=False, soft_wrap=True)
    for key, value in session.settings.items():
        console.print(f"  setting    {key} = {value!r}", markup=False)
    if pending:
        console.print(f"  suggestions {pending} pending (tickloop suggestions list --session {session.id})")
    if margin is not None and margin.warning:
        console.print(_margin_warning(session, margin), style="yellow", markup=False, soft_wrap=True)
    _print_portfolio(console, portfolio, left_open=left_open)
    console.print("[bold]audit trail[/]")
    for t in transitions:
        reason = f" ({t.reason})" if t.reason else ""
        console.print(f"  {_when(t.at)}  {t.action:<8} {t.from_state} -> {t.to_state}{reason}", markup=False)
    if recent:
        console.print("[bold]recent runs[/]")
        for r in reversed(recent):
            console.print(f"  run {r.id:<6} {r.kind:<6} {_when(r.scheduled_at)}  {r.status}"
                          + (f"  {r.error.splitlines()[0]}" if r.error else ""), markup=False)


def _asset_name(network: str | None, asset: str | None) -> str:
    from tickloop.wallets import asset_info

    symbol, _ = asset_info(asset or "", network)
    return f"{symbol} ({asset} on {network})" if symbol else f"{asset} on {network}"


def _human(raw: int | str, asset: str | None, network: str | None = None) -> str:
    """``raw`` units, with the amount in whole tokens when the asset's decimals are known."""
    from decimal import Decimal

    from tickloop.wallets import asset_info

    symbol, decimals = asset_info(asset or "", network)
    if decimals is None:
        return f"{raw} raw units"
    whole = format(Decimal(int(raw)).scaleb(-decimals).normalize(), "f")
    return f"{raw} raw units = {whole} {symbol}"


def _allocation_data(session: Session) -> dict[str, Any] | None:
    if not session.allocation:
        return None
    from tickloop.wallets import asset_info

    symbol, decimals = asset_info(session.allocation_asset or "", session.allocation_network)
    return {"amount": session.allocation, "network": session.allocation_network, "asset": session.allocation_asset,
            "symbol": symbol, "decimals": decimals}


def _allocation_text(session: Session) -> str:
    if not session.allocation_asset:
        return f"{session.allocation} raw units"
    return (f"{_human(session.allocation, session.allocation_asset, session.allocation_network)}"
            f" ({session.allocation_asset} on {session.allocation_network})")


def _margin_warning(session: Session, margin: SharedMargin) -> str:
    ratio = margin.ratio
    use = "unbounded (no collateral)" if ratio.is_infinite() else f"{ratio * 100:.0f}%"
    names = ", ".join(str(i) for i in margin.sessions)
    return (f"warning: shared liquidation risk: sessions {names} trade on one perp account of wallet"
            f" {session.wallet}; their combined margin use is {use} ({margin.margin_used:.2f} of"
            f" {margin.account_value:.2f} USD, from the {margin.source}), at or above [wallets] margin_warning"
            f" {margin.threshold * 100:.0f}%: a loss in one session can liquidate the positions of the others")


def _print_portfolio(console: Console, portfolio: Any, *, left_open: bool = False) -> None:
    from rich.table import Table

    if portfolio.balances:
        table = Table("network", "asset", "symbol", "amount (raw)", "value USD", "class", title="balances",
                      title_justify="left", title_style="bold")
        for b in portfolio.balances:
            table.add_row(b.network, b.assetKey, b.symbol or "", b.amountRaw, b.valueUsd or "-", b.assetClass)
        console.print(table)
    else:
        console.print("[bold]balances[/]  none")
    title = "positions left open (residue)" if left_open else "positions"
    if portfolio.positions:
        table = Table("venue", "coin", "asset", "size", "entry", "mark", "unrealized PnL", title=title,
                      title_justify="left", title_style="bold red" if left_open else "bold")
        for p in portfolio.positions:
            table.add_row(p.venue or "", p.coin, p.assetKey, p.size, p.averageEntryPrice or "-",
                          p.markPriceUsd or "-", p.unrealizedPnlUsd or "-")
        console.print(table)
    else:
        console.print(f"[bold]{title}[/]  none")


def _lifecycle(action: str, help_text: str) -> None:
    @sessions.command(action, help=help_text)
    @click.argument("session_id", type=ID)
    @click.option("--reason", default="", help="Recorded in the session's audit trail.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def command(ctx: click.Context, session_id: int, reason: str, as_json: bool) -> None:
        rt = _rt(ctx)
        session: Session = getattr(rt, action)(session_id, reason=reason or f"tickloop sessions {action}")
        _print_lifecycle(rt, session, as_json)
        if action == "stop":
            _warn_left_open(rt, session)


def _print_lifecycle(rt: Runtime, session: Session, as_json: bool) -> None:
    if as_json:
        _json_out(session)
        return
    extra = ""
    if session.state == "running" and session.next_run_at is not None:
        extra = f"; next run {_when(session.next_run_at)}"
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
    rt = _rt(ctx)
    session = rt.unwind(session_id, assets=list(assets) or None, reason=reason or "tickloop sessions unwind")
    _print_lifecycle(rt, session, as_json)
    if session.state == "stopped" and not as_json:
        # What the venue holds that no ledger explains is not "nothing left": the unwind said so.
        from tickloop.runner import VENUE_RESIDUE

        last = rt.runs(session.id, limit=1)
        for line in last[-1].logs if last else ():
            if line.message.startswith(VENUE_RESIDUE):
                click.echo(f"  {line.message.removeprefix(VENUE_RESIDUE)}")


# -- wallets ------------------------------------------------------------------------------------


@cli.group()
def wallets() -> None:
    """Wallets sessions trade from: add (paper, key in an environment variable, keystore), list, fund.

    Keys are never stored in plain text and never printed.
    """


@wallets.command("add")
@click.option("--paper", is_flag=True, help="Generate a paper wallet (its key is kept encrypted in the home).")
@click.option("--key-env", metavar="VAR", default=None,
              help="A real wallet whose hex private key is in environment variable VAR (only the name is stored).")
@click.option("--keystore", metavar="FILE", default=None,
              help="A real wallet from an encrypted Ethereum keystore file (only the path is stored).")
@click.option("--password-env", metavar="VAR", default=None,
              help="With --keystore: the variable holding its password [default: TICKLOOP_KEYSTORE_PASSWORD].")
@click.option("--label", default="", help="A name for people.")
@click.option("--json", "as_json", is_flag=True, help="Print address, kind and key source as JSON.")
@click.pass_context
def wallets_add(ctx: click.Context, paper: bool, key_env: str | None, keystore: str | None,
                password_env: str | None, label: str, as_json: bool) -> None:
    """Add a wallet and print its address. Give exactly one of --paper, --key-env, --keystore."""
    given = [name for name, value in (("--paper", paper), ("--key-env", key_env), ("--keystore", keystore))
             if value]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise TickloopError(f"give exactly one key source: --paper, --key-env VAR or --keystore FILE{got}")
    if password_env and not keystore:
        raise TickloopError("--password-env goes with --keystore (the variable holding the keystore's password)")
    rt = _rt(ctx)
    address = rt.add_wallet(paper=paper, key_env=key_env, keystore=keystore, password_env=password_env, label=label)
    wallet = rt.wallet(address)
    if as_json:
        _json_out(_wallet_data(rt, wallet))
        return
    click.echo(f"added {wallet.kind} wallet {wallet.address} (key: {wallet.key_source()})")
    if wallet.is_paper:
        click.echo(f"  funded on first use with {rt.config.wallets.paper_funding} raw units of a session's starting"
                   " asset ([wallets] paper_funding); or: tickloop wallets fund")


def _wallet_data(rt: Runtime, wallet: Any) -> dict[str, Any]:
    """A wallet, where its key comes from (never the key), and its funds per asset."""
    from tickloop.jsondata import to_data

    view = rt.wallet_view(wallet.address)
    assets = [{"network": a.network, "asset": a.asset, "symbol": a.symbol, "decimals": a.decimals,
               "funds": None if a.funds is None else str(a.funds), "allocated": str(a.allocated),
               "free": None if a.free is None else str(a.free)} for a in view.assets]
    return {**to_data(wallet), "key_source": wallet.key_source(), "assets": assets,
            "open_sessions": list(view.open_sessions)}


@wallets.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def wallets_list(ctx: click.Context, as_json: bool) -> None:
    """List wallets: kind, where the key comes from, funds, what open sessions hold, and what is free."""
    rt = _rt(ctx)
    rows = [_wallet_data(rt, w) for w in rt.wallets()]
    if as_json:
        _json_out(rows)
        return
    if not rows:
        _console().print("no wallets (add one: tickloop wallets add --paper, --key-env VAR or --keystore FILE)")
        return
    console = _console()
    for row in rows:
        label = f"  {row['label']!r}" if row["label"] else ""
        console.print(f"[bold]{row['address']}[/]  {row['kind']}{label}")
        console.print(f"  key       {row['key_source']}", markup=False, soft_wrap=True)
        for a in row["assets"]:
            funds = _human(a["funds"], a["asset"], a["network"]) if a["funds"] is not None else "(as its venue reports)"
            free = a["free"] if a["free"] is not None else "-"
            console.print(f"  {_asset_name(a['network'], a['asset'])}", markup=False, soft_wrap=True)
            console.print(f"            funds {funds}  allocated {a['allocated']}  free {free}", markup=False,
                          soft_wrap=True)
        if not row["assets"]:
            console.print("  funds     none yet" + (" (a paper wallet is funded on first use)"
                                                    if row["kind"] == "paper" else ""))
        sessions_ = ", ".join(str(i) for i in row["open_sessions"])
        console.print(f"  sessions  {sessions_ or 'none open'}")


@wallets.command("fund")
@click.argument("address")
@click.option("--asset", required=True, metavar="NETWORK:TOKEN",
              help="The asset: its network and token address, e.g. ethereum:1:0xa0b8...eb48 or"
                   " hypercore:perp:0x0000...0000.")
@click.option("--amount", required=True, metavar="RAW", help="How much to add, in raw units.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def wallets_fund(ctx: click.Context, address: str, asset: str, amount: str, as_json: bool) -> None:
    """Add paper money to a paper wallet (real wallets hold what their venues say)."""
    network, sep, token = asset.rpartition(":")
    if not sep or not network or not token:
        raise TickloopError(f"--asset {asset!r}: expected NETWORK:TOKENADDRESS, e.g. ethereum:1:0xa0b8...eb48")
    rt = _rt(ctx)
    balance = rt.fund_wallet(address, network, token, amount)
    wallet = rt.wallet(address)
    if as_json:
        _json_out({"address": wallet.address, "network": network, "asset": token.lower(), "added": amount,
                   "balance": str(balance)})
        return
    click.echo(f"wallet {wallet.address} now holds {_human(balance, token, network)} of {_asset_name(network, token)}")


# -- suggestions --------------------------------------------------------------------------------

SUGGESTION_STATUSES = ("pending", "approved", "rejected", "executed", "failed", "expired", "deleted")


@cli.group()
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
    rt = _rt(ctx)
    found = rt.suggestions(session_id, status, limit=limit)
    if as_json:
        _json_out(found)
        return
    from rich.table import Table

    # The action (venue, method and request, long values abbreviated) gets the room left over.
    table = Table("id", "session", "status", "created", "expires", "action")
    for column in (0, 1, 2, 3, 4):
        table.columns[column].no_wrap = True
    for s in found:
        table.add_row(str(s.id), str(s.session_id), _suggestion_status(s.status), _short_when(s.created_at),
                      _short_when(s.expires_at), s.action.describe())
    _console().print(table if found else "no suggestions")


def _short_when(value: datetime | None) -> str:
    """``MM-DD HH:MM`` (UTC) for tables; ``suggestions show`` has the full time."""
    return value.astimezone(timezone.utc).strftime("%m-%d %H:%M") if value is not None else "-"


def _compact(value: Any) -> str:
    from tickloop.jsondata import to_data

    return json.dumps(to_data(value), separators=(", ", ": "), default=str)


def _suggestion_status(status: str) -> str:
    colour = {"pending": "yellow", "executed": "green", "failed": "red", "rejected": "dim", "expired": "dim",
              "deleted": "dim", "approved": "cyan"}.get(status, "")
    return f"[{colour}]{status}[/]" if colour else status


@suggestions.command("show")
@click.argument("suggestion_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def suggestions_show(ctx: click.Context, suggestion_id: int, as_json: bool) -> None:
    """Show a suggestion: the action, its status and times, and its result or error."""
    rt = _rt(ctx)
    s = rt.suggestion(suggestion_id)
    if as_json:
        _json_out(s)
        return
    console = _console()
    console.print(f"[bold]suggestion {s.id}[/] of session {s.session_id}: {_suggestion_status(s.status)}")
    console.print(f"  action    {s.action.describe()}", markup=False, soft_wrap=True)
    console.print(f"  kind      {s.action.kind}" + (f"    notional {s.action.notional_usd:.2f} USD"
                                                    if s.action.notional_usd is not None else ""))
    if s.action.message:
        console.print(f"  message   {s.action.message}", markup=False)
    for label, value in (("created", s.created_at), ("expires", s.expires_at), ("decided", s.decided_at),
                         ("deleted", s.deleted_at), ("executed", s.executed_at)):
        if value is not None:
            console.print(f"  {label:<9} {_when(value)}")
    if s.result is not None:
        console.print(f"  result    {_compact(s.result)}", markup=False, soft_wrap=True)
    if s.error:
        console.print(f"  error     {s.error}", markup=False, soft_wrap=True)


@suggestions.command("approve")
@click.argument("suggestion_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def suggestions_approve(ctx: click.Context, suggestion_id: int, as_json: bool) -> None:
    """Execute a pending suggestion, exactly once.

    Refused (exit 1, with the reason) when it expired, was deleted, rejected, or already approved
    or executed. Exits 1 too when the venue failed to execute it (the suggestion is then failed).
    """
    rt = _rt(ctx)
    s = rt.approve(suggestion_id)
    if as_json:
        _json_out(s)
    elif s.status == "executed":
        click.echo(f"suggestion {s.id} executed: {s.action.describe()}")
        click.echo(f"  result {_compact(s.result)}")
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
    rt = _rt(ctx)
    s = rt.reject(suggestion_id)
    if as_json:
        _json_out(s)
    else:
        click.echo(f"suggestion {s.id} rejected: {s.action.describe()}")


# -- runs, logs ---------------------------------------------------------------------------------


@cli.group()
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
    rt = _rt(ctx)
    found = list(reversed(rt.runs(session_id, status=status, limit=limit)))
    if as_json:
        _json_out(found)
        return
    from rich.table import Table

    table = Table("run", "session", "kind", "scheduled", "started", "took", "status", "error")
    for r in found:
        took = f"{(r.finished_at - r.started_at).total_seconds():.3f}s" if r.finished_at and r.started_at else "-"
        style = {"succeeded": "green", "failed": "red", "timed_out": "red", "skipped": "yellow"}.get(r.status, "")
        table.add_row(str(r.id), str(r.session_id), r.kind, _when(r.scheduled_at), _when(r.started_at), took,
                      f"[{style}]{r.status}[/]" if style else r.status, (r.error or "").splitlines()[0] if r.error else "")
    _console().print(table if found else "no runs")


@cli.command()
@click.option("--session", "session_id", type=ID, default=None, help="Only this session's lines.")
@click.option("--run", "run_id", type=ID, default=None, help="Only this run's lines.")
@click.option("--limit", type=LIMIT, default=200, show_default=True, help="The last N lines.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def logs(ctx: click.Context, session_id: int | None, run_id: int | None, limit: int, as_json: bool) -> None:
    """Show what agents logged with agent.log, oldest first."""
    rt = _rt(ctx)
    lines = rt.logs(session_id=session_id, run_id=run_id, limit=limit)
    if as_json:
        from tickloop.jsondata import to_data

        click.echo(json.dumps([{"run_id": rid, **to_data(line)} for rid, line in lines], indent=2))
        return
    console = _console()
    for rid, line in lines:
        style = {"error": "red", "debug": "dim"}.get(line.level, "")
        text = f"{_when(line.at)} run {rid:<6} {line.level:<5} {line.message}"
        console.print(text, style=style or None, markup=False, soft_wrap=True)
    if not lines:
        console.print("no log lines")


# -- reconcile ----------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
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
    found = _rt(ctx).reconcile()
    if as_json:
        click.echo(json.dumps(_reconciliation_data(found), indent=2))
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
    rt = _rt(ctx)
    done = rt.adopt(session_id, asset) if how == "adopt" else rt.close_difference(session_id, asset)
    if as_json:
        click.echo(json.dumps({"session": session_id, "resolved": [_difference_data(d) for d in done.resolved],
                               "booked": list(done.booked),
                               "submitted": [{"action": text, "result": result.to_dict()}
                                             for text, result in done.submitted],
                               "released": done.released, "after": _reconciliation_data(done.after)},
                              indent=2, default=str))
        return
    for line in done.booked:
        click.echo(f"booked to session {session_id}: {line}")
    for text, result in done.submitted:
        data = result.data if result.success else None
        if data is not None and hasattr(data, "get") and data.get("suggested"):
            click.echo(f"suggested: {text} (suggestion {data['suggestionId']}: approve it with tickloop suggestions"
                       f" approve {data['suggestionId']})")
        elif result.success:
            click.echo(f"executed: {text}")
        else:
            click.echo(f"failed: {text}: {result.error} (the difference stays booked: the ledger holds what the"
                       " venue holds)")
    left = done.after.for_session(session_id)
    if left:
        click.echo(f"session {session_id} is still held:")
        for d in left:
            click.echo(f"  {d.describe()}")
    else:
        click.echo(f"session {session_id} agrees with the venues and is not held")


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


def _register_plugin_commands(args: list[str]) -> None:
    """Let plugins add their commands, with the ``[plugins]`` table of the config these arguments
    select (--home, --config, environment). A bad config or a broken plugin is reported by the
    command that needs them; help and the version always work."""
    from tickloop.bootstrap import configured_plugin_manager, plugin_manager
    from tickloop.config import Config

    with cli.make_context("tickloop", list(args), resilient_parsing=True) as ctx:
        home, path = ctx.params.get("home"), ctx.params.get("config_path")
    try:
        config = Config.load(path, home=home)
    except TickloopError:
        pm = plugin_manager()  # the command itself reports the bad config
    else:
        pm = configured_plugin_manager(config)
    pm.hook.tickloop_register_commands(cli=cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tickloop`` script: loads plugin commands, then runs the CLI."""
    _safe_output()
    args = sys.argv[1:] if argv is None else argv
    helping = not args or args in (["-h"], ["--help"], ["--version"])
    try:
        _register_plugin_commands(args)
    except TickloopError as exc:
        if not helping:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        # A broken plugin cannot hide help: it is named, and the built-in commands are listed.
        click.echo(f"warning: plugin commands are not listed: {exc}", err=True)
    try:
        cli.main(args=args, prog_name="tickloop")
    except SystemExit as exc:
        _leave(exc.code)


def _leave(code: Any) -> None:
    """Exit with ``code``, even when threads an agent started (inline executor) still run: they
    must not keep ``serve`` or ``run`` from ending. The runtime is closed by now."""
    import os

    lingering = [t for t in threading.enumerate()
                 if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not lingering:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
