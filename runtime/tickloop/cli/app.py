"""The root of the ``tickloop`` command line: the group, its options, and the entry point.

It holds what every command shares: the global ``--home``/``--config`` options and the runtime
they select (:class:`Options`), the record-id and limit parameter types, the net that turns
tickloop's errors into one-line messages (and a bug into a saved traceback), and :func:`main`,
which lets plugins add their commands before running the CLI.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from tickloop.errors import TickloopError
from tickloop.text import storable

if TYPE_CHECKING:
    from tickloop.runtime import Runtime


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
        # Not every stream is a text stream we can reconfigure (a test runner's, a closed one).
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
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
    """The global options, and the runtime they select (opened on first use, closed at exit)."""

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


def cli_options(ctx: click.Context) -> Options:
    """The options of the ``tickloop`` group, which makes them before any of its commands runs."""
    options = ctx.find_object(Options)
    if options is None:
        raise RuntimeError(f"{ctx.command_path}: not run under the tickloop command group")
    return options


def runtime(ctx: click.Context) -> Runtime:
    """The runtime of the home the command line selects."""
    return cli_options(ctx).runtime()


def stop_on_signals(stop: threading.Event, also: Callable[[], None] | None = None) -> None:
    """SIGINT and SIGTERM set ``stop`` (and call ``also``) instead of raising in the middle of work,
    so a long-running command ends its loop, closes the runtime and exits 0."""
    import signal

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        if also is not None:
            also()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def parse_settings(values: Iterable[str]) -> dict[str, str]:
    """``--setting KEY=VALUE`` options as a dict (values are checked against the manifest later)."""
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
