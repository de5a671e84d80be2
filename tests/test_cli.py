"""The command line: commands, JSON output, and one-line errors for user mistakes."""

from __future__ import annotations

import json

import pytest

from helpers import tickloop

WALLET = "0x" + "ab" * 20
COUNTER = """
def run(agent):
    n = int(agent.memory.get("n").data.value or 0) + 1
    agent.memory.set("n", str(n))
    agent.log(f"hello {agent.settings['who']} #{n}")
"""
SETTINGS = {"who": {"type": "text", "default": "world", "description": "who to greet"},
            "times": {"type": "integer", "default": 1, "description": "how often"}}


def assert_one_line_error(proc, *needles):
    """The command failed with exit 1 and a short message, never a traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_session_lifecycle_through_the_cli(tickloop_home, agent_folder):
    """start, list, pause, resume, show and stop work on the home without a running serve."""
    folder = agent_folder(COUNTER, settings=SETTINGS)
    started = json.loads(tickloop(tickloop_home, "sessions", "start", str(folder), "--wallet", WALLET,
                                  "--setting", "who=cli", "--json", check=True).stdout)
    sid = started["id"]
    assert (started["state"], started["settings"]) == ("running", {"who": "cli", "times": 1})
    listed = json.loads(tickloop(tickloop_home, "sessions", "list", "--json", check=True).stdout)
    assert [s["id"] for s in listed] == [sid]
    assert "is paused" in tickloop(tickloop_home, "sessions", "pause", str(sid), check=True).stdout
    assert "is running" in tickloop(tickloop_home, "sessions", "resume", str(sid), check=True).stdout
    shown = json.loads(tickloop(tickloop_home, "sessions", "show", str(sid), "--json", check=True).stdout)
    assert [t["action"] for t in shown["transitions"]] == ["start", "pause", "resume"]
    assert tickloop(tickloop_home, "sessions", "show", str(sid), check=True).stdout.count("->") == 3
    assert "is stopped" in tickloop(tickloop_home, "sessions", "stop", str(sid), check=True).stdout
    refused = tickloop(tickloop_home, "sessions", "pause", str(sid))
    assert_one_line_error(refused, f"session {sid}: cannot pause a session that is stopped")


def test_run_once_prints_the_logs_and_records_the_run(tickloop_home, agent_folder):
    """run --once runs one cycle, prints what the agent logged, and leaves a run record."""
    folder = agent_folder(COUNTER, settings=SETTINGS)
    proc = tickloop(tickloop_home, "run", str(folder), "--once", "--setting", "who=there", check=True)
    assert "succeeded" in proc.stdout and "hello there #1" in proc.stdout
    runs = json.loads(tickloop(tickloop_home, "runs", "list", "--json", check=True).stdout)
    assert [(r["kind"], r["status"]) for r in runs] == [("run", "succeeded")]
    logs = json.loads(tickloop(tickloop_home, "logs", "--json", check=True).stdout)
    assert [line["message"] for line in logs] == ["hello there #1"]
    session = json.loads(tickloop(tickloop_home, "sessions", "list", "--json", check=True).stdout)[0]
    assert session["state"] == "stopped"


def test_run_once_exits_1_when_the_agent_fails(tickloop_home, agent_folder):
    """A failing run is reported with its error and the command exits 1."""
    folder = agent_folder("def run(agent):\n    raise RuntimeError('no liquidity')\n")
    proc = tickloop(tickloop_home, "run", str(folder), "--once")
    assert proc.returncode == 1
    assert "failed" in proc.stdout and "RuntimeError: no liquidity" in proc.stdout


def test_check_reports_every_problem_with_file_and_key(tmp_path):
    """check lists each problem as file: key: reason and exits 1."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "circuit.toml").write_text('name = "x"\nwalletType = "bitcoin"\nruntimeIntervalMinutes = -1\n')
    proc = tickloop(tmp_path / "home", "check", str(folder))
    assert_one_line_error(proc, "circuit.toml: walletType", "circuit.toml: runtimeIntervalMinutes",
                          "circuit.toml: tagline", "main.py")
    assert len(proc.stderr.strip().splitlines()) >= 5


def test_check_reports_malformed_toml_with_its_position(tmp_path):
    """A TOML syntax error names the file and the line."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "circuit.toml").write_text('name = "x"\ntagline = \n')
    (folder / "main.py").write_text("def run(agent):\n    pass\n")
    assert_one_line_error(tickloop(tmp_path / "home", "check", str(folder)), "circuit.toml", "line 2")


def test_check_accepts_the_example_agents(tmp_path):
    """Both shipped example agents pass check."""
    from pathlib import Path

    root = Path(__file__).parents[1] / "agents"
    for name in ("hello", "dca"):
        proc = tickloop(tmp_path / "home", "check", str(root / name), check=True)
        assert proc.stdout.startswith(f"ok: {name}")


@pytest.mark.parametrize(("args", "needles"), [
    (["sessions", "start", "no-such-agent", "--wallet", WALLET], ["unknown agent 'no-such-agent'"]),
    (["sessions", "start", "./missing-folder", "--wallet", WALLET], ["missing-folder", "no such folder"]),
    (["sessions", "show", "999"], ["session 999 does not exist"]),
    (["run", "no-such-agent", "--once"], ["unknown agent 'no-such-agent'"]),
])
def test_user_mistakes_are_one_line_errors(tickloop_home, args, needles):
    """Unknown agents and sessions are reported in one line without a traceback."""
    assert_one_line_error(tickloop(tickloop_home, *args), *needles)


def test_bad_setting_override_is_named(tickloop_home, agent_folder):
    """A settings override of the wrong type names the setting and the expected type."""
    folder = agent_folder(COUNTER, settings=SETTINGS)
    proc = tickloop(tickloop_home, "sessions", "start", str(folder), "--wallet", WALLET, "--setting", "times=often")
    assert_one_line_error(proc, "settings.times")
    proc = tickloop(tickloop_home, "sessions", "start", str(folder), "--wallet", WALLET, "--setting", "nope=1")
    assert_one_line_error(proc, "settings.nope")


def test_bad_config_names_the_file_and_key(tickloop_home):
    """A bad tickloop.toml fails at start with the file, the key path and the reason."""
    (tickloop_home / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\nmissed_runs = "later"\n[memori]\n')
    proc = tickloop(tickloop_home, "sessions", "list")
    assert_one_line_error(proc, "tickloop.toml: runtime.missed_runs: must be one of 'coalesce', 'skip'",
                          "unknown key(s) (memori)")


def test_unknown_backend_in_config_lists_installed(tickloop_home):
    """An unknown backend name names the file and key and lists the installed ones."""
    (tickloop_home / "tickloop.toml").write_text('[memory]\nbackend = "etcd"\n')
    assert_one_line_error(tickloop(tickloop_home, "sessions", "list"),
                          f"{tickloop_home / 'tickloop.toml'}: memory.backend: unknown memory backend 'etcd';"
                          " installed: diskcache, memory")


def test_plugins_and_agents_list(tickloop_home):
    """plugins list shows the built-ins with what they provide; agents list answers in JSON."""
    rows = json.loads(tickloop(tickloop_home, "plugins", "list", "--json", check=True).stdout)
    provides = {r["name"]: r["provides"] for r in rows}
    assert provides["executors"] == ["executor:inline", "executor:process"]
    assert provides["sql"] == ["store:sqlite", "suggestions:sql"]
    assert isinstance(json.loads(tickloop(tickloop_home, "agents", "list", "--json", check=True).stdout), list)


def test_help_lists_the_commands_plugins_add(tickloop_home):
    """--help names every command, the paper plugin's too."""
    out = tickloop(tickloop_home, "--help", check=True).stdout
    for command in ("demo", "serve", "run", "check", "agents", "plugins", "sessions", "runs", "logs", "paper"):
        assert f"\n  {command} " in out


def test_plugin_commands_follow_the_plugins_table_of_the_selected_home(tmp_path):
    """[plugins] load and block of the --home/--config the command selects decide which plugin
    commands exist, as they decide the command's own plugins."""
    (tmp_path / "extra_commands.py").write_text(
        "import click\nimport tickloop\n\n\n@tickloop.hookimpl\ndef tickloop_register_commands(cli):\n"
        "    @cli.command()\n    def hello_extra():\n        click.echo('hello from a loaded plugin')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    home = tmp_path / "h"
    home.mkdir()
    (home / "tickloop.toml").write_text('[plugins]\nload = ["extra_commands"]\nblock = ["paper"]\n')
    assert tickloop(home, "hello-extra", env=env, check=True).stdout == "hello from a loaded plugin\n"
    assert "hello-extra" in tickloop(home, "--help", env=env, check=True).stdout
    blocked = tickloop(home, "paper", "--help", env=env)
    assert blocked.returncode == 2 and "No such command 'paper'" in blocked.stderr
    other = tmp_path / "other.toml"
    other.write_text("[plugins]\nload = []\n")
    assert tickloop(home, "--config", str(other), "paper", "--help", env=env, check=True).returncode == 0
    assert "No such command 'hello-extra'" in tickloop(home, "--config", str(other), "hello-extra", env=env).stderr
    (home / "tickloop.toml").write_text("[plugins\n")
    broken = tickloop(home, "sessions", "list", env=env)
    assert broken.returncode == 1 and "tickloop.toml" in broken.stderr and "Traceback" not in broken.stderr
