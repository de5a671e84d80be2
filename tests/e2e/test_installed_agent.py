"""Entry-point discovery with a really installed example agent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tickloop

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """agents/hello installed with pip into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT / "agents" / "hello")], check=True, capture_output=True)
    return target


def test_an_installed_agent_is_found_by_name_and_runs(site, tickloop_home):
    """pip-installed hello shows in agents list and runs by its entry-point name."""
    env = {"PYTHONPATH": str(site)}
    listed = json.loads(tickloop(tickloop_home, "agents", "list", "--json", env=env, check=True).stdout)
    [hello] = [a for a in listed if a["name"] == "hello"]
    assert hello["error"] is None and hello["agent"] == "hello"
    proc = tickloop(tickloop_home, "run", "hello", "--once", env=env, check=True)
    assert "succeeded" in proc.stdout
    sessions = json.loads(tickloop(tickloop_home, "sessions", "list", "--json", env=env, check=True).stdout)
    assert sessions[0]["agent_ref"] == "hello"
    without = tickloop(tickloop_home, "run", "hello", "--once")
    assert without.returncode == 1 and "unknown agent 'hello'" in without.stderr
