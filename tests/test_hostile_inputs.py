"""Hostile inputs to every command: a one-line error naming the thing, never a traceback.

Issue #8: "No user mistake may produce a traceback." Each case runs the CLI in-process
(``click.testing.CliRunner`` on ``tickloop.cli:cli``) with one bad input and checks that the
command was refused (exit 1, or 2 for a usage error), that exactly one error line names the
input (``needle``), and that no exception escaped: neither a traceback nor the CLI's last-resort
"internal error" message. The cases are generated from the tables below; every refusal they
found was fixed at its cause.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tickloop.cli import cli
from tickloop.store import MAX_ID
from tickloop.testing import render_manifest

LONE = "\udcff"  # click hands over the byte 0xff of an argument as this
WALLET = "0x" + "ab" * 20
INLINE = {"TICKLOOP_RUNTIME__EXECUTOR": "inline"}
SETTINGS = {
    "note": {"type": "text", "description": "text", "default": "x"},
    "loud": {"type": "boolean", "description": "flag", "default": False},
    "times": {"type": "integer", "description": "count", "default": 1},
    "size": {"type": "number", "description": "amount", "default": 1.5},
    "pct": {"type": "percentage", "description": "share", "default": 5},
    "coin": {"type": "single_select", "description": "pick", "options": ["ETH", "BTC"], "default": "ETH"},
    "to": {"type": "address", "description": "where"},
}
MANIFEST = {"name": "typed", "tagline": "every setting type", "walletType": "ethereum",
            "allowedExecutionModes": ["manual", "auto"], "runtimeIntervalMinutes": 15, "version": "0.1.0"}
MAIN = "def run(agent):\n    agent.log('ok')\n"


# -- the shared home ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with one running session (id 1) of the agent ``typed`` and a paper wallet, and a
    folder of odd files to point commands at."""
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    agent = root / "typed"
    agent.mkdir()
    (agent / "circuit.toml").write_text(render_manifest(MANIFEST, SETTINGS))
    (agent / "main.py").write_text(MAIN)
    files = _odd_files(root / "files")
    runner = CliRunner()
    started = runner.invoke(cli, ["--home", str(home), "sessions", "start", str(agent), "--wallet", WALLET,
                                  "--json"], env=INLINE)
    assert started.exit_code == 0, started.output
    added = runner.invoke(cli, ["--home", str(home), "wallets", "add", "--paper", "--json"], env=INLINE)
    assert added.exit_code == 0, added.output
    return {"root": root, "home": home, "agent": agent, "files": files, "paper": json.loads(added.stdout)["address"]}


def _odd_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files: dict[str, Path] = {}

    def write(name: str, data: bytes | str) -> None:
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        files[name] = path

    write("latin1.toml", b'name = "caf\xe9"\n')
    write("deep-array.toml", "a = " + "[" * 2000 + "]" * 2000 + "\n")
    write("deep-table.toml", "[" + ".".join(["t"] * 200) + "]\nx = 1\n")
    write("deep-inline.toml", "a = " + "{b = " * 500 + "1" + "}" * 500 + "\n")
    write("huge.toml", "# " + "x" * (2 << 20) + "\n")
    write("huge-int.toml", "a = " + "9" * 5000 + "\n")
    write("empty.json", "")
    write("list.json", "[]")
    write("text.json", "not json")
    write("deep.json", "[" * 100_000 + "]" * 100_000)
    write("no-crypto.json", json.dumps({"address": "ab" * 20, "version": 3}))
    write("bad-crypto.json", json.dumps({"address": "ab" * 20, "crypto": {"cipher": "rot13"}}))
    write("bad-address.json", json.dumps({"address": 5, "crypto": {}}))
    write("binary.bin", bytes(range(256)) * 4)
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    files["fifo"] = fifo
    loop = folder / "loop"
    loop.symlink_to(loop)
    files["loop"] = loop
    (folder / "dir").mkdir()
    files["dir"] = folder / "dir"
    return files


def _agent(world: dict[str, Any], name: str, toml: str | bytes, main: str | bytes = MAIN) -> Path:
    folder = world["root"] / "agents" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "circuit.toml").write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    (folder / "main.py").write_bytes(main if isinstance(main, bytes) else main.encode())
    return folder


def invoke(world: dict[str, Any], *args: str, env: dict[str, str | None] | None = None,
           home: Path | None = None) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home or world["home"]), *args], env={**INLINE, **(env or {})})


def assert_refused(result: Result, needle: str) -> None:
    """Exit 1 or 2, no escaped exception, and exactly one error line, naming ``needle``."""
    shown = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"an exception escaped: {trace}\n{shown}")
    assert result.exit_code in (1, 2), shown
    assert "Traceback" not in result.output and "internal error" not in result.output, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")] or lines
    assert len(errors) == 1, shown
    assert needle in errors[0], f"{needle!r} not in the error line\n{shown}"


# -- ids, limits and other numbers on the command line -----------------------------------------

ID_COMMANDS = [
    ("sessions", "show", "{}"), ("sessions", "pause", "{}"), ("sessions", "resume", "{}"),
    ("sessions", "stop", "{}"), ("sessions", "unwind", "{}"), ("suggestions", "show", "{}"),
    ("suggestions", "approve", "{}"), ("suggestions", "reject", "{}"),
    ("suggestions", "list", "--session", "{}"), ("runs", "list", "--session", "{}"),
    ("logs", "--session", "{}"), ("logs", "--run", "{}"), ("reconcile", "adopt", "{}"), ("reconcile", "close", "{}"),
]
BAD_IDS = ["0", "abc", "1.5", "1e3", "0x10", "", " ", "\u0663", "²", LONE, str(MAX_ID + 1), "9" * 30, "9" * 5000]


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("command", ID_COMMANDS, ids=lambda c: " ".join(c[:-1]))
def test_bad_ids_are_usage_errors(world: dict[str, Any], command: tuple[str, ...], bad: str) -> None:
    """Every id argument and option takes a whole number from 1 to 2**63 - 1 (issue: any id
    >= 2**63 gave OverflowError from SQLite)."""
    args = [bad if part == "{}" else part for part in command]
    assert_refused(invoke(world, *args), "is not an id: a whole number from 1 to 9223372036854775807")


@pytest.mark.parametrize("command", ID_COMMANDS[:8], ids=lambda c: " ".join(c[:-1]))
def test_the_largest_id_is_simply_not_found(world: dict[str, Any], command: tuple[str, ...]) -> None:
    args = [str(MAX_ID) if part == "{}" else part for part in command]
    assert_refused(invoke(world, *args), f"{MAX_ID} does not exist")


@pytest.mark.parametrize(("args", "needle"), [
    *[((cmd, *sub, "--limit", bad), "--limit") for cmd, *sub in (("runs", "list"), ("logs",), ("suggestions", "list"))
      for bad in ("0", "-5", "abc", "1e400", "9" * 30, "")],
    (("serve", "--port", "-1"), "--port"), (("serve", "--port", "65536"), "--port"),
    (("serve", "--port", "http"), "--port"), (("serve", "--host", "0.0.0.0"), "--token is required"),
    (("sessions", "list", "--state", "asleep"), "--state"),
    (("runs", "list", "--status", "fine"), "--status"), (("suggestions", "list", "--status", "maybe"), "--status"),
    (("sessions", "pause", "--", "-1"), "is not an id"),
    *[((*cmd, "1", "--asset", bad), needle) for bad in ("NOPE", "", LONE, "x" * 5000)
      for cmd, needle in ((("sessions", "unwind"), "holds no position"),
                          (("reconcile", "adopt"), "has no difference with the venues"),
                          (("reconcile", "close"), "has no difference with the venues"))],
    (("sessions", "frobnicate"), "No such command 'frobnicate'"),
    (("nope",), "No such command 'nope'"),
])
def test_bad_options(world: dict[str, Any], args: tuple[str, ...], needle: str) -> None:
    assert_refused(invoke(world, *args), needle)


# -- wallets, addresses and amounts ------------------------------------------------------------

BAD_ADDRESSES = ["", "0x123", "0x" + "g" * 40, "0x" + "ab" * 21, "ab" * 20, LONE, "x" * 10_000, " " + WALLET]


@pytest.mark.parametrize("bad", BAD_ADDRESSES, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("command", ["run", "sessions start"])
def test_bad_session_wallets(world: dict[str, Any], command: str, bad: str) -> None:
    args = [*command.split(), str(world["agent"]), "--wallet", bad] + (["--once"] if command == "run" else [])
    assert_refused(invoke(world, *args), "is not a well-formed ethereum address")


@pytest.mark.parametrize(("address", "asset", "amount", "needle"), [
    *[(bad, "ethereum:1:0xa0b8", "1", "has not been added") for bad in BAD_ADDRESSES],
    *[("{paper}", bad, "1", "expected NETWORK:TOKENADDRESS") for bad in ("", "nocolon", ":", "a:", ":b", LONE)],
    *[("{paper}", "ethereum:1:0xa0b8", bad, "must be a whole number of raw units")
      for bad in ("-1", "abc", "1.5", "²", "\u0663", "9" * 100, "9" * 5000, "", LONE, "1e6", "+5")],
])
def test_bad_funding(world: dict[str, Any], address: str, asset: str, amount: str, needle: str) -> None:
    address = address.format(paper=world["paper"]) if address == "{paper}" else address
    assert_refused(invoke(world, "wallets", "fund", address, "--asset", asset, "--amount", amount), needle)


@pytest.mark.parametrize(("file", "needle"), [
    ("binary.bin", "not UTF-8 text"), ("fifo", "not a regular file"), ("dir", "a folder"),
    ("loop", "cannot read"), ("missing.json", "No such file"), ("empty.json", "not JSON"),
    ("list.json", "no crypto section"), ("text.json", "not JSON"), ("deep.json", "not JSON"),
    ("no-crypto.json", "no crypto section"), ("huge.toml", "larger than 1024 KiB"),
])
def test_bad_keystores(world: dict[str, Any], file: str, needle: str) -> None:
    """wallets add --keystore reads only a regular JSON file of at most 1 MiB (issue: /bin/ls gave
    UnicodeDecodeError)."""
    path = world["files"].get(file, world["root"] / "files" / file)
    result = invoke(world, "wallets", "add", "--keystore", str(path))
    assert_refused(result, needle)
    assert result.stderr.startswith(f"Error: --keystore {path}: ")


@pytest.mark.parametrize(("file", "env", "needle"), [
    ("bad-crypto.json", {"TICKLOOP_KEYSTORE_PASSWORD": "pw"}, "not an Ethereum keystore file tickloop can read"),
    ("bad-address.json", {}, "its address is not 40 hex digits"),
    ("/bin/ls", {}, "not UTF-8 text"),
    ("/dev/zero", {}, "not a regular file"),
])
def test_bad_keystore_contents(world: dict[str, Any], file: str, env: dict[str, str], needle: str) -> None:
    path = world["files"].get(file, Path(file))
    assert_refused(invoke(world, "wallets", "add", "--keystore", str(path), env=env), needle)


@pytest.mark.parametrize(("args", "env", "needle"), [
    (("--key-env", "TICKLOOP_TEST_UNSET"), {}, "the environment variable is not set"),
    (("--key-env", "K"), {"K": "0x1234"}, "does not hold a hex private key"),
    (("--key-env", "K"), {"K": "zz" * 32}, "does not hold a hex private key"),
    (("--key-env", "K"), {"K": LONE}, "does not hold a hex private key"),
    (("--key-env", ""), {}, "give exactly one key source"),
    (("--key-env", "A=B"), {}, "the environment variable is not set"),
    ((), {}, "give exactly one key source"),
    (("--paper", "--keystore", "x.json"), {}, "(got --paper and --keystore)"),
    (("--password-env", "P", "--paper"), {}, "--password-env goes with --keystore"),
])
def test_bad_key_sources(world: dict[str, Any], args: tuple[str, ...], env: dict[str, str], needle: str) -> None:
    assert_refused(invoke(world, "wallets", "add", *args, env=env), needle)


# -- settings, modes, allocations and agents ---------------------------------------------------

BAD_SETTINGS = [
    ("novalue", "is not KEY=VALUE"), ("=x", "is not KEY=VALUE"), (" =x", "is not KEY=VALUE"),
    ("unknown=1", "settings.unknown: unknown setting"), (f"{LONE}=1", "unknown setting"),
    ("times=abc", "settings.times: must be an integer"), ("times=1.5", "settings.times: must be an integer"),
    ("times=1e400", "settings.times: must be an integer"), (f"times={10**30}", "settings.times: must be an integer"),
    (f"times={'9' * 5000}", "settings.times: must be an integer"), ("times=", "settings.times: must be an integer"),
    ("times=²", "settings.times: must be an integer"),
    ("size=nan", "settings.size: must be a number"), ("size=inf", "settings.size: must be a number"),
    ("size=-inf", "settings.size: must be a number"), ("size=1e999", "settings.size: must be a number"),
    ("size=1,5", "settings.size: must be a number"), (f"size={LONE}", "settings.size: must be a number"),
    ("pct=101", "settings.pct: must be a percentage"), ("pct=-1", "settings.pct: must be a percentage"),
    ("pct=nan", "settings.pct: must be a percentage"), ("pct=50%%", "settings.pct: must be a percentage"),
    ("loud=maybe", "settings.loud: must be true or false"), ("loud=", "settings.loud: must be true or false"),
    ("coin=DOGE", "settings.coin: must be one of the options"), ("coin=eth", "settings.coin: must be one of"),
    ("to=0x12", "settings.to: must be an Ethereum address"), (f"to={LONE}", "settings.to: must be an Ethereum"),
]


@pytest.mark.parametrize(("setting", "needle"), BAD_SETTINGS, ids=[repr(s)[:24] for s, _ in BAD_SETTINGS])
@pytest.mark.parametrize("command", ["run", "sessions start"])
def test_bad_settings(world: dict[str, Any], command: str, setting: str, needle: str) -> None:
    args = [*command.split(), str(world["agent"]), "--wallet", "0x" + "cd" * 20, "--setting", setting,
            "--setting", f"to={WALLET}"] + (["--once"] if command == "run" else [])
    if setting.startswith("to="):
        args = [*args[:-3], "--once"] if command == "run" else args[:-2]
    assert_refused(invoke(world, *args), needle)


@pytest.mark.parametrize(("extra", "needle"), [
    (("--mode", "turbo"), "--mode"), (("--mode", ""), "--mode"),
    (("--allocation", "-5"), "must be a whole number of raw units"),
    (("--allocation", "²"), "must be a whole number of raw units"),
    (("--allocation", "9" * 5000), "must be a whole number of raw units"),
    (("--allocation", "1.5"), "must be a whole number of raw units"),
    (("--allocation", "100"), "declares no [startingAsset]"),
])
def test_bad_start_options(world: dict[str, Any], extra: tuple[str, ...], needle: str) -> None:
    assert_refused(invoke(world, "sessions", "start", str(world["agent"]), "--wallet", "0x" + "ef" * 20,
                          "--setting", f"to={WALLET}", *extra), needle)


# Paths the loader cannot even resolve (a name too long, a symlink loop) included.
BAD_AGENTS = [
    ("nope", "nope"), ("./nope", "nope"), ("/dev/zero", "/dev/zero"), ("/dev/null", "/dev/null"), ("/", "/"),
    (LONE, "\\udcff"), ("./" + LONE, "\\udcff"), ("{fifo}", "fifo"), ("{dir}", "dir"), ("{binary.bin}", "binary.bin"),
    pytest.param("x" * 5000, "xxxxxxxx", id="long-name"),
    pytest.param("/" + "x" * 300, "/xxxxxxx", id="long-path"),
    pytest.param("{loop}", "loop", id="symlink-loop"),
]


@pytest.mark.parametrize(("agent", "needle"), BAD_AGENTS)
@pytest.mark.parametrize("command", ["run", "sessions start"])
def test_bad_agent_references(world: dict[str, Any], command: str, agent: str, needle: str) -> None:
    if agent.startswith("{"):
        agent = str(world["files"][agent[1:-1]])
    assert_refused(invoke(world, *command.split(), agent, "--wallet", WALLET), needle)


@pytest.mark.parametrize(("agent", "needle"), [
    *[case for case in BAD_AGENTS if not hasattr(case, "marks")],
    ("x" * 5000, "File name too long"), ("/" + "x" * 300, "File name too long"), ("{loop}", "loop"),
])
def test_bad_paths_in_check(world: dict[str, Any], agent: str, needle: str) -> None:
    if agent.startswith("{"):
        agent = str(world["files"][agent[1:-1]])
    _assert_check_refused(invoke(world, "check", agent), needle)


def _assert_check_refused(result: Result, needle: str) -> None:
    """``check`` prints each problem as its own line (no "Error:"), every one naming its file."""
    shown = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert result.exit_code == 1 and "Traceback" not in result.output and "internal error" not in result.output, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(": " in line for line in lines), shown
    assert any(needle in line for line in lines), shown


# -- manifests ---------------------------------------------------------------------------------

BAD_MANIFESTS = [
    ({"runtimeIntervalMinutes": 1e12}, "runtimeIntervalMinutes: must be a number of minutes from 0.0001 to 525600"),
    ({"runtimeIntervalMinutes": 1e300}, "runtimeIntervalMinutes: must be a number of minutes"),
    ({"runtimeIntervalMinutes": 2**63 - 1}, "runtimeIntervalMinutes: must be a number of minutes"),
    ({"runtimeIntervalMinutes": 0}, "runtimeIntervalMinutes: must be a number of minutes"),
    ({"runtimeIntervalMinutes": True}, "runtimeIntervalMinutes: must be a number of minutes"),
    ({"runtimeIntervalMinutes": "15"}, "runtimeIntervalMinutes: must be a number of minutes"),
    ({"startingAsset": {"network": "ethereum:1", "address": WALLET, "minimumAmount": "9" * 5000}},
     "startingAsset.minimumAmount: must be at most 2**256 - 1 raw units"),
    ({"startingAsset": {"network": "ethereum:1", "address": WALLET, "minimumAmount": "-1"}},
     "startingAsset.minimumAmount: must be a string of digits"),
    ({"name": "x" * 33}, "name: must be at most 32 characters"),
    ({"name": ""}, "name: must not be empty"),
    ({"schedule": {"cron": "99 * * * *"}}, "schedule.cron: not a valid cron expression"),
    ({"schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}}, "schedule.timezone: unknown time zone"),
    ({"schedule": {"cron": "0 0 31 2 *"}}, "schedule: invalid cron expression '0 0 31 2 *': it never matches"),
    ({"version": 1}, "version: must be a string"),
]
BAD_SETTING_DECLARATIONS = [
    ({"type": "integer", "default": 2**63}, "settings.s.default: must be an integer from"),
    ({"type": "integer", "default": -(2**63) - 1}, "settings.s.default: must be an integer from"),
    ({"type": "integer", "default": 1.5}, "settings.s.default: must be an integer"),
    ({"type": "number", "default": "nan"}, "settings.s.default: must be a number"),
    ({"type": "percentage", "default": 1e300}, "settings.s.default: must be a percentage"),
    ({"type": "single_select", "options": [1, 2]}, "settings.s.options: must be a non-empty list of strings"),
    ({"type": "single_select", "options": []}, "settings.s.options: must be a non-empty list of strings"),
    ({"type": "blob"}, 'settings.s.type: unknown type "blob"'),
    ({"type": "boolean", "default": "yes"}, "settings.s.default: must be true or false"),
]
RAW_MANIFESTS = [
    (b'name = "caf\xe9"\n', "not UTF-8 text (invalid byte at offset 11)"),
    ("a = " + "[" * 2000 + "]" * 2000, "nested more than 32 levels deep"),
    ("[" + ".".join(["t"] * 200) + "]", "nested more than 32 levels deep"),
    ("a = " + "{b = " * 500 + "1" + "}" * 500, "nested more than 32 levels deep"),
    ("a = " + "9" * 5000, "invalid TOML"),
    ("a = 1\na = 2", "invalid TOML at line 2"),
    ("\x00", "invalid TOML"),
    ("# " + "x" * (2 << 20), "larger than 1024 KiB"),
]


def _manifest_cases() -> Iterator[Any]:
    for change, needle in BAD_MANIFESTS:
        manifest = {**MANIFEST, **change}
        body = render_manifest({k: v for k, v in manifest.items() if k != "startingAsset"})
        if "startingAsset" in change:
            body += "\n[startingAsset]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                    for k, v in change["startingAsset"].items())
        if isinstance(change.get("schedule"), dict):
            body = body.replace("schedule = {", "schedule = {")
        yield pytest.param(body, needle, id=needle.split(":")[0] + "-" + str(next(iter(change.values())))[:16])
    for declaration, needle in BAD_SETTING_DECLARATIONS:
        body = render_manifest(MANIFEST) + "\n[settings.s]\ndescription = \"d\"\n" + "".join(
            f"{k} = {_toml(v)}\n" for k, v in declaration.items())
        yield pytest.param(body, needle, id=f"setting-{declaration}"[:40])
    for body, needle in RAW_MANIFESTS:
        yield pytest.param(body, needle, id=f"raw-{needle}"[:40])


def _toml(value: Any) -> str:
    if isinstance(value, float) and value != value:
        return "nan"
    return "nan" if value == "nan" else json.dumps(value)


@pytest.mark.parametrize(("body", "needle"), list(_manifest_cases()))
@pytest.mark.parametrize("command", ["check", "sessions start", "run"])
def test_bad_manifests(world: dict[str, Any], command: str, body: str | bytes, needle: str) -> None:
    """Bad circuit.toml files are refused by check, by sessions start and by run, naming the key
    (issue: runtimeIntervalMinutes = 1e12 passed check and crash-looped serve)."""
    folder = _agent(world, f"m{abs(hash(body)) % 10**8}", body)
    args = [*command.split(), str(folder)] + ([] if command == "check" else ["--wallet", WALLET])
    result = invoke(world, *args)
    if command == "check":
        _assert_check_refused(result, needle)
    else:
        assert_refused(result, needle)


@pytest.mark.parametrize(("main", "needle"), [
    (b"def run(agent):\n    x = '\xff'\n", "syntax error at line 2"),
    (b"\x00", "source code string cannot contain null bytes"),
    ("x = " + "-" * 100_000 + "1\ndef run(agent): pass\n", "nested too deeply"),
    ("def run(agent):\n    return " + "(" * 300 + ")" * 300 + "\n", "syntax error"),
    ("# " + "x" * (2 << 20) + "\ndef run(agent): pass\n", "larger than 1024 KiB"),
])
def test_bad_main_files_in_check(world: dict[str, Any], main: str | bytes, needle: str) -> None:
    folder = _agent(world, f"main{abs(hash(main)) % 10**8}", render_manifest(MANIFEST), main)
    _assert_check_refused(invoke(world, "check", str(folder)), needle)


# -- configuration: tickloop.toml, environment, --home and --config ----------------------------

BAD_CONFIGS = [
    ("[runtime]\nworkers = 1.5", "runtime.workers: must be a whole number from 1 to 256, got 1.5"),
    ("[runtime]\nworkers = true", "runtime.workers: must be a whole number from 1 to 256, got true"),
    ("[runtime]\nworkers = 100000", "runtime.workers: must be a whole number from 1 to 256, got 100000"),
    ("[runtime]\nworkers = 0", "runtime.workers: must be a whole number from 1 to 256, got 0"),
    ("[runtime]\nworkers = nan", "runtime.workers: must be a whole number from 1 to 256, got nan"),
    ('[runtime]\nworkers = "4"', 'runtime.workers: must be a whole number from 1 to 256, got "4"'),
    ("[runtime]\nworkers = 9223372036854775807", "runtime.workers: must be a whole number from 1 to 256"),
    ("[runtime]\nrun_timeout_seconds = nan", "runtime.run_timeout_seconds: must be a number greater than 0"),
    ("[runtime]\nrun_timeout_seconds = inf", "runtime.run_timeout_seconds: must be a number greater than 0"),
    ("[runtime]\nrun_timeout_seconds = 0", "runtime.run_timeout_seconds: must be a number greater than 0"),
    ("[runtime]\nrun_timeout_seconds = 1e300", "runtime.run_timeout_seconds: must be a number greater than 0"),
    ("[runtime]\nrun_timeout_seconds = false", "runtime.run_timeout_seconds: must be a number"),
    ("[runtime]\nmisfire_grace_seconds = -inf", "runtime.misfire_grace_seconds: must be a number greater than 0"),
    ("[runtime]\nmissed_runs = 1", "runtime.missed_runs: must be one of"),
    ('[runtime]\nexecutor = "threads"', "runtime.executor: unknown executor backend 'threads'"),
    ("[wallets]\nmargin_warning = nan", "wallets.margin_warning: must be a number greater than 0 and at most 1000"),
    ("[wallets]\nmargin_warning = 0", "wallets.margin_warning: must be a number greater than 0"),
    ('[wallets]\npaper_funding = "-5"', "wallets.paper_funding: must be a whole number of raw units"),
    ('[wallets]\npaper_funding = "1e6"', "wallets.paper_funding: must be a whole number of raw units"),
    ('[wallets]\npaper_funding = "²"', "wallets.paper_funding: must be a whole number of raw units"),
    (f'[wallets]\npaper_funding = "{"9" * 5000}"', "wallets.paper_funding: must be a whole number of raw units"),
    ("[wallets]\npaper_funding = 1.5", "wallets.paper_funding: must be a whole number of raw units"),
    ("[routing]\nmanual_above_usd = -1", "routing.manual_above_usd: must be a number from 0 to"),
    ("[routing]\nmanual_above_usd = nan", "routing.manual_above_usd: must be a number from 0 to"),
    ('[routing]\nmanual_above_usd = "500"', "routing.manual_above_usd: must be a number from 0 to"),
    ("[api]\nport = -1", "api.port: must be a whole number from 0 to 65535, got -1"),
    ("[api]\nport = 65536", "api.port: must be a whole number from 0 to 65535"),
    ("[api]\nport = 80.5", "api.port: must be a whole number from 0 to 65535"),
    ('[plugins]\nblock = "memory"', 'plugins.block: must be a list of strings, like ["memory"], got "memory"'),
    ("[plugins]\nload = [1]", "plugins.load: must be a list of strings"),
    ('[plugins]\nload = ["no_such_module_x"]', "no_such_module_x"),
    ('[memory]\nbackend = "redis"', "memory.backend: unknown memory backend 'redis'"),
    ('[suggestions]\nstore = "nope"', "suggestions.store"),
    ('[state]\nurl = "sqlite:///../../x.db"', "state.url: 'sqlite:///../../x.db': the relative path"),
    ('[state]\nurl = "sqlite:///a/../../x.db"', "leads out of the home folder"),
    ('[state]\nurl = "sqlite://"', "state.url"), ('[state]\nurl = "postgresql://h/db"', "state.url"),
    ('[state]\nurl = "not a url"', "state.url"), ('[state]\nurl = "sqlite:///x.db?mode=ro"', "state.url"),
    ('[state]\nurl = "sqlite:////dev/null/x.db"', "state.url: cannot create /dev/null"),
    ("[state]\nurl = 5", "state.url"),
    ("[venues]\nnope = {}", "venues.nope: no installed venue is called 'nope'"),
    ('[venues.hyperliquid]\ncolour = "red"', "venues.hyperliquid.colour: unknown key"),
    ("venues = 5", "venues"), ("runtime = 5", "runtime"), ("[nope]\nx = 1", "unknown key(s) (nope)"),
    ("[runtime]\nbogus = 1", "runtime: unknown key(s) (bogus)"),
    ("[runtime\n", "invalid TOML at line 1"),
    (b"[runtime]\nexecutor = \"\xff\"\n", "not UTF-8 text (invalid byte at offset 22)"),
    ("a = " + "[" * 2000 + "]" * 2000, "nested more than 32 levels deep"),
    ("[" + ".".join(["t"] * 100) + "]", "nested more than 32 levels deep"),
    ("# " + "x" * (2 << 20), "larger than 1024 KiB"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_CONFIGS, ids=[n[:40] for _, n in BAD_CONFIGS])
def test_bad_config_files(world: dict[str, Any], tmp_path: Path, body: str | bytes, needle: str) -> None:
    """Bad tickloop.toml values stop any command with the file, the key and the range (issue:
    workers = 1.5 or true, run_timeout_seconds = nan, api.port = -1 were accepted)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "tickloop.toml").write_bytes(body if isinstance(body, bytes) else body.encode())
    # No executor from the environment here: it would win over the file's.
    result = invoke(world, "sessions", "list", home=home, env={"TICKLOOP_RUNTIME__EXECUTOR": None})
    assert_refused(result, needle)
    if not any(key in needle for key in ("state.url", "venues", "no_such_module", "unknown memory", "unknown executor",
                                         "suggestions.store")):
        assert f"{home / 'tickloop.toml'}:" in result.stderr  # the others name the key only


@pytest.mark.parametrize(("variable", "value", "needle"), [
    ("TICKLOOP_RUNTIME__WORKERS", "1e999", "TICKLOOP_RUNTIME__WORKERS: runtime.workers: must be a whole number"),
    ("TICKLOOP_RUNTIME__WORKERS", "[" * 5000, "runtime.workers: must be a whole number"),
    ("TICKLOOP_RUNTIME__RUN_TIMEOUT_SECONDS", "nan", "runtime.run_timeout_seconds"),
    ("TICKLOOP_API__PORT", "-1", "TICKLOOP_API__PORT: api.port"),
    ("TICKLOOP_PLUGINS__BLOCK", "memory", "plugins.block: must be a list of strings"),
    ("TICKLOOP_NOPE__X", "1", "unknown key(s) (nope)"),
    ("TICKLOOP_RUNTIME__NOPE", "1", "runtime: unknown key(s) (nope)"),
])
def test_bad_environment_overrides(world: dict[str, Any], variable: str, value: str, needle: str) -> None:
    assert_refused(invoke(world, "sessions", "list", env={variable: value}), needle)


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--home", "/proc/1/x", "/proc/1/x: cannot create the home folder"),
    ("--home", "/dev/null/x", "/dev/null/x: cannot create the home folder"),
    ("--home", "{binary.bin}", "is a file"),
    ("--config", "/dev/zero", "/dev/zero: cannot read: not a regular file"),
    ("--config", "{fifo}", "not a regular file"),
    ("--config", "{dir}", "is a directory"),
    ("--config", "{latin1.toml}", "not UTF-8 text"),
    ("--config", "{deep-inline.toml}", "nested more than 32 levels deep"),
    ("--config", "{huge-int.toml}", "invalid TOML"),
    ("--config", "/nonexistent/t.toml", "no such file"),
    ("--config", "{loop}", "loop: no such file"),
])
def test_bad_home_and_config_paths(world: dict[str, Any], tmp_path: Path, option: str, value: str,
                                   needle: str) -> None:
    if value.startswith("{"):
        value = str(world["files"][value[1:-1]])
    args = [option, value, "sessions", "list"]
    if option == "--config":
        args = ["--home", str(tmp_path / "home"), *args]
    result = CliRunner().invoke(cli, args, env=INLINE)
    assert_refused(result, needle)


# -- the last resort ---------------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_its_traceback_is_kept(world: dict[str, Any]) -> None:
    """A bug (not a user mistake) still gives one line, naming the file that holds the traceback;
    TICKLOOP_DEBUG=1 lets the exception through instead."""
    import click

    @click.command("boom")
    def boom() -> None:
        raise KeyError("the bug")

    cli.add_command(boom)
    try:
        home = world["root"] / "boom-home"
        home.mkdir()
        result = invoke(world, "boom", home=home)
        assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
        assert result.stderr.startswith("Error: internal error (a bug in tickloop or a plugin): KeyError: 'the bug';")
        saved = list(home.glob("tickloop-error-*.txt"))
        assert len(saved) == 1 and str(saved[0]) in result.stderr
        assert "Traceback" in saved[0].read_text() and "the bug" in saved[0].read_text()
        debug = invoke(world, "boom", home=home, env={"TICKLOOP_DEBUG": "1"})
        assert isinstance(debug.exception, KeyError)
    finally:
        cli.commands.pop("boom")
