"""What an agent reference means: a folder path, or an installed agent's name (issue 8).

Installed agents here are real distributions: ``*.dist-info`` folders with ``entry_points.txt``
in a temporary directory on ``sys.path``, found by ``importlib.metadata`` as pip-installed ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import tickloop
from tickloop.agents import AgentLoader, is_folder_ref
from tickloop.errors import AgentError, UnknownAgentError
from tickloop.testing import MINIMAL_MANIFEST, render_manifest


def install(site: Path, distribution: str, version: str, agents: dict[str, str]) -> None:
    """Write an installed distribution declaring ``agents`` (name -> its package) into ``site``."""
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "".join(f"{name} = {package}.main\n" for name, package in agents.items())
    (info / "entry_points.txt").write_text(f"[tickloop.agents]\n{lines}")
    for name, package in agents.items():
        (site / package).mkdir()
        (site / package / "__init__.py").write_text("")
        (site / package / "main.py").write_text(f"def run(agent):\n    return {package!r}\n")
        (site / package / "circuit.toml").write_text(render_manifest({**MINIMAL_MANIFEST, "name": name}))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two distributions that both declare `twin`, and one that declares `solo`."""
    site = tmp_path / "site"
    install(site, "twin-one", "1.0", {"twin": "twin_one"})
    install(site, "twin-two", "2.5", {"twin": "twin_two"})
    install(site, "solo-agent", "0.3", {"solo": "solo_pkg"})
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_name_two_distributions_declare_is_refused_naming_both(site):
    """The second distribution declaring `twin` is not silently ignored: loading says which two
    declare it and how to resolve it; a name declared once loads as before."""
    with pytest.raises(AgentError) as refused:
        AgentLoader().load("twin")
    message = str(refused.value)
    for part in ("agent 'twin' is declared by 2 installed distributions", "twin-one 1.0 (twin_one.main)",
                 "twin-two 2.5 (twin_two.main)", "pip uninstall twin-one", "pip uninstall twin-two",
                 "folder path"):
        assert part in message
    solo = AgentLoader().load("solo")
    assert (solo.run(None), solo.source) == ("solo_pkg", "solo-agent 0.3")


def test_agents_list_warns_about_the_clash(site, tickloop_home):
    """`tickloop agents list` shows both declarations failing with the reason, and a warning line."""
    env = {"PYTHONPATH": str(site)}
    table = tickloop(tickloop_home, "agents", "list", env=env, check=True)
    assert "warning: agent 'twin' is declared by 2 installed distributions" in table.stderr
    listed = json.loads(tickloop(tickloop_home, "agents", "list", "--json", env=env, check=True).stdout)
    twins = [row for row in listed if row["name"] == "twin"]
    assert sorted(row["distribution"] for row in twins) == ["twin-one", "twin-two"]
    assert all("declared by 2 installed distributions" in row["error"] for row in twins)
    [solo] = [row for row in listed if row["name"] == "solo"]
    assert solo["error"] is None


@pytest.mark.parametrize("ref", ["./hello", "hello/", "agents/hello", "/abs/hello", ".", "..", ".hidden",
                                 "agents\\hello"])
def test_a_path_is_a_folder(ref):
    """A separator anywhere, or a leading '.', makes a reference a folder."""
    assert is_folder_ref(ref)


def test_a_bare_name_is_an_installed_agent_even_beside_a_folder_of_that_name(site, tmp_path, monkeypatch,
                                                                             agent_folder):
    """`solo` runs the installed agent though ./solo is an agent folder in the working directory;
    ./solo runs the folder."""
    folder = agent_folder("def run(agent):\n    return 'the folder'\n", name="solo")
    monkeypatch.chdir(folder.parent)
    assert not is_folder_ref("solo")
    loader = AgentLoader()
    assert loader.canonical("solo") == "solo"
    assert loader.load("solo").run(None) == "solo_pkg"
    assert loader.load("./solo").run(None) == "the folder"


def test_a_bare_name_that_is_only_a_folder_here_says_how_to_run_the_folder(tmp_path, monkeypatch, agent_folder):
    """Not installed, but ./hello is an agent folder: the error says to write ./hello."""
    folder = agent_folder(name="hello")
    monkeypatch.chdir(folder.parent)
    with pytest.raises(UnknownAgentError, match=r"unknown agent 'hello': no installed agent has that name"
                                                r" \(installed: .*\); to run the folder hello here, write \./hello"):
        AgentLoader().load("hello")


def test_a_bare_name_that_is_nothing_says_a_folder_needs_a_separator(tmp_path, monkeypatch):
    """Neither installed nor a folder here (an empty directory of that name does not count)."""
    (tmp_path / "ghost").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownAgentError, match=r"unknown agent 'ghost': .*a folder path needs a '/'"):
        AgentLoader().load("ghost")
