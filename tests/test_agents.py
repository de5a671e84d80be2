"""Finding and loading agents from folders (entry points are covered in tests/e2e)."""

from __future__ import annotations

import pytest

from tickloop.agents import AgentLoader
from tickloop.errors import AgentError, ManifestError, UnknownAgentError


def test_a_folder_agent_imports_its_sibling_modules(agent_folder):
    """main.py can import a helper module next to it, as under `python main.py`."""
    folder = agent_folder("from strategy import signal\n\ndef run(agent):\n    agent.log(signal())\n", name="sib")
    (folder / "strategy.py").write_text("def signal():\n    return 'long'\n")
    agent = AgentLoader().load(str(folder))
    assert (agent.name, agent.ref, agent.source, agent.unwind) == ("sib", str(folder), "folder", None)


def test_two_agents_main_modules_do_not_collide(agent_folder):
    """Each folder's main.py is its own module, though both are called main.py."""
    loader = AgentLoader()
    a = loader.load(str(agent_folder("def run(agent):\n    return 'a'\n", name="a")))
    b = loader.load(str(agent_folder("def run(agent):\n    return 'b'\n", name="b")))
    assert (a.run(None), b.run(None)) == ("a", "b")


def test_the_circuit_toml_path_and_relative_paths_name_the_same_agent(agent_folder, monkeypatch):
    """A folder, its circuit.toml and a relative path all resolve to one absolute reference."""
    folder = agent_folder()
    loader = AgentLoader()
    monkeypatch.chdir(folder.parent)
    assert loader.canonical(str(folder / "circuit.toml")) == loader.canonical("./probe") == str(folder)
    assert loader.load("./probe") is loader.load(str(folder))


def test_a_broken_main_py_is_reported_with_file_and_line(agent_folder):
    """A syntax error in main.py names the file and line, not a traceback."""
    folder = agent_folder("def run(agent)\n    pass\n", name="broken")
    with pytest.raises(AgentError, match=r"broken/main.py:1: cannot import the agent: SyntaxError"):
        AgentLoader().load(str(folder))


def test_main_py_without_run_is_refused(agent_folder):
    """An agent needs a run(agent) function."""
    with pytest.raises(AgentError, match="the agent has no run"):
        AgentLoader().load(str(agent_folder("def start(agent):\n    pass\n", name="norun")))


def test_missing_folders_and_bad_manifests(tmp_path, agent_folder):
    """A missing folder and a broken circuit.toml are named; unknown names list installed agents."""
    with pytest.raises(UnknownAgentError, match="no such folder"):
        AgentLoader().load(str(tmp_path / "nowhere"))
    with pytest.raises(ManifestError, match="walletType"):
        AgentLoader().load(str(agent_folder(walletType="bitcoin", name="badwallet")))
    with pytest.raises(UnknownAgentError, match=r"unknown agent 'ghost'.*installed: "):
        AgentLoader().load("ghost")
