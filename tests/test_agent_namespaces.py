"""Each folder agent's modules live in a namespace of its own (issue 8, isolation).

The attacks: agent folders used to go on ``sys.path`` for the whole process, so agent ``beta``'s
``import helpers`` loaded agent ``alpha``'s, and a folder holding ``hyperliquid/__init__.py``
replaced the SDK the Hyperliquid venue signs other sessions' orders with.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from tickloop.agents import AgentLoader
from tickloop.errors import AgentError

USES_HELPERS = """\
import helpers
from helpers import WHO


def run(agent):
    from helpers import who   # an import at run time resolves the same way
    return helpers.WHO, WHO, who(), helpers.__name__
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def helpers_agent(agent_folder, name: str) -> Path:
    folder = agent_folder(USES_HELPERS, name=name)
    return write(folder, {"helpers.py": f"WHO = {name!r}\n\ndef who():\n    return WHO\n"})


@pytest.mark.parametrize("order", [("alpha", "beta"), ("beta", "alpha")])
def test_two_agents_each_import_their_own_helpers(agent_folder, order):
    """Two folders with a helpers.py each, loaded in one process in either order: each agent
    gets its own, under a private name, and the bare name `helpers` is never registered."""
    folders = {name: helpers_agent(agent_folder, name) for name in order}
    before = sys.modules.get("helpers")
    loader = AgentLoader()
    agents = {name: loader.load(str(folders[name])) for name in order}
    for name, agent in agents.items():
        who, imported, called, module_name = agent.run(None)
        assert (who, imported, called) == (name, name, name)
        assert module_name.startswith("tickloop_agent_") and module_name.endswith(".helpers")
    assert sys.modules.get("helpers") is before  # tests/helpers.py, or nothing: never an agent's


def test_no_agent_module_goes_on_sys_path_or_under_a_bare_name(agent_folder):
    """Loading leaves sys.path as it was, and every module from the folder has the private prefix."""
    folder = helpers_agent(agent_folder, "gamma")
    path_before = list(sys.path)
    AgentLoader().load(str(folder)).run(None)
    assert sys.path == path_before
    from_folder = [name for name, module in list(sys.modules.items())
                   if str(getattr(module, "__file__", None) or "").startswith(str(folder))]
    assert sorted(from_folder) and all(name.startswith("tickloop_agent_gamma_") for name in from_folder)


SHADOWS = {
    "hyperliquid/__init__.py": "STOLEN = True\n",
    "hyperliquid/exchange.py": "class Exchange:\n    STOLEN = True\n",
    "tickloop/__init__.py": "STOLEN = True\n",
    "json.py": "STOLEN = True\n",
    "colorsys.py": "STOLEN = True\n",
}
SHADOWING_MAIN = """\
import colorsys
import hyperliquid
import json
import tickloop
from hyperliquid.exchange import Exchange


def run(agent):
    return [getattr(m, "STOLEN", False) for m in (colorsys, hyperliquid, json, tickloop, Exchange)]
"""
# A fresh process: the agent is loaded first, then the runtime imports the real modules (as the
# Hyperliquid venue does when a session on another wallet runs).
AFTER_LOADING = """\
import json as _json, sys
path_before = list(sys.path)
from tickloop.agents import AgentLoader
agent = AgentLoader().load(sys.argv[1])
ran = agent.run(None)
import colorsys, hyperliquid, json, tickloop, tickloop.cli
from hyperliquid.exchange import Exchange   # as tickloop_hyperliquid.venue does when it signs
modules = [colorsys, hyperliquid, sys.modules[Exchange.__module__], json, tickloop, tickloop.cli]
print(_json.dumps({"ran": ran, "files": [m.__file__ for m in modules],
                   "stolen": [hasattr(m, "STOLEN") for m in modules + [Exchange]],
                   "path_unchanged": sys.path == path_before}))
"""


def test_a_folder_cannot_replace_the_sdk_tickloop_or_the_stdlib_for_the_process(agent_folder):
    """A folder with hyperliquid/, tickloop/, json.py and colorsys.py gets its own copies inside
    the agent, while the rest of the process (the venue signing orders) gets the real ones."""
    folder = write(agent_folder(SHADOWING_MAIN, name="shadow"), SHADOWS)
    proc = subprocess.run([sys.executable, "-c", AFTER_LOADING, str(folder)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["ran"] == [True] * 5  # the agent sees its own modules
    assert seen["stolen"] == [False] * 7
    assert not any(file.startswith(str(folder)) for file in seen["files"])
    assert seen["path_unchanged"]


PACKAGE_MAIN = """\
import importlib

import pkg.sub
import pkg.sub as sub_alias
from pkg import sub
from pkg.sub import VALUE
from . import helpers
from .pkg.sub import VALUE as RELATIVE_VALUE
import spaced.mod

if __name__ == "__main__":
    raise SystemExit("main.py is imported, not run as a script")


def run(agent):
    dynamic = importlib.import_module(".helpers", __package__)
    return (pkg.sub.VALUE, sub_alias.VALUE, sub.VALUE, VALUE, RELATIVE_VALUE, sub.HELPER, sub.SIBLING,
            dynamic is helpers, spaced.mod.WHERE)
"""
PACKAGE_FILES = {
    "helpers.py": "WHO = 'helpers'\n",
    "pkg/__init__.py": "",
    "pkg/sub.py": "from . import sibling\nfrom .. import helpers\nVALUE = 'sub'\nHELPER = helpers.WHO\n"
                  "SIBLING = sibling.NAME\n",
    "pkg/sibling.py": "NAME = 'sibling'\n",
    "spaced/mod.py": "WHERE = 'namespace package'\n",  # no __init__.py, nothing else is called spaced
}


def test_sibling_packages_and_relative_imports_work(agent_folder):
    """`import pkg.sub`, `from pkg.sub import x`, `import a.b as c`, relative imports (also
    importlib.import_module with __package__) and a directory without __init__.py all resolve
    inside the folder; main.py's `if __name__ == "__main__"` block does not run."""
    folder = write(agent_folder(PACKAGE_MAIN, name="packaged"), PACKAGE_FILES)
    result = AgentLoader().load(str(folder)).run(None)
    assert result == ("sub", "sub", "sub", "sub", "sub", "helpers", "sibling", True, "namespace package")
    assert "pkg" not in sys.modules and "pkg.sub" not in sys.modules


def test_a_syntax_error_in_a_helper_names_the_helper_and_its_line(agent_folder):
    """A broken helper module is reported with its own file and line; once fixed, the agent loads
    (the failed attempt left no half-imported modules behind)."""
    folder = helpers_agent(agent_folder, "fragile")
    (folder / "helpers.py").write_text("WHO = 'fragile'\ndef who(:\n    return WHO\n")
    with pytest.raises(AgentError, match=r"fragile/helpers\.py:2: cannot import the agent: SyntaxError"):
        AgentLoader().load(str(folder))
    assert not [name for name in sys.modules if name.startswith("tickloop_agent_fragile_") and "." in name]
    (folder / "helpers.py").write_text("WHO = 'fragile'\ndef who():\n    return WHO\n")
    assert AgentLoader().load(str(folder)).run(None)[0] == "fragile"


def test_an_error_raised_while_importing_a_helper_names_the_line_that_raised(agent_folder):
    """An exception at import time in a helper points at the helper's line, not main.py's."""
    folder = helpers_agent(agent_folder, "raiser")
    (folder / "helpers.py").write_text("WHO = 'raiser'\nraise LookupError('no config')\n")
    with pytest.raises(AgentError, match=r"raiser/helpers\.py:2: cannot import the agent: LookupError: no config"):
        AgentLoader().load(str(folder))


PICKLES = """\
import pickle
from helpers import Point


def run(agent):
    point = pickle.loads(pickle.dumps(Point(1, 2)))
    return type(point) is Point, point.x + point.y, Point.__module__
"""


def test_agent_classes_pickle_and_tracebacks_show_the_real_files(agent_folder):
    """A class from a helper pickles by its private module name; an error raised in a helper
    shows the helper's real path in the traceback."""
    folder = write(agent_folder(PICKLES, name="pickler"), {
        "helpers.py": "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n\n"
                      "def fail():\n    raise ValueError('from the helper')\n",
    })
    agent = AgentLoader().load(str(folder))
    same, total, module = agent.run(None)
    assert (same, total) == (True, 3) and module.startswith("tickloop_agent_pickler_")
    helpers = sys.modules[module]
    with pytest.raises(ValueError) as raised:
        helpers.fail()
    frames = traceback.extract_tb(raised.tb)
    assert (frames[-1].filename, frames[-1].lineno) == (str(folder / "helpers.py"), 6)
