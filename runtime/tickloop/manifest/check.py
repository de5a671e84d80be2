"""What ``tickloop check PATH`` reports: the manifest's problems, and main.py's, found by reading
it with ``ast`` (never importing or executing it)."""

from __future__ import annotations

import ast
import os
import warnings
from pathlib import Path

from tickloop.errors import InputError, Problem
from tickloop.files import read_bytes
from tickloop.manifest.reading import parse_path, path_is
from tickloop.manifest.vocabulary import MAIN_NAME


def check_agent_folder(path: str | os.PathLike[str]) -> list[Problem]:
    """Everything ``tickloop check PATH`` reports for an agent folder (or its ``circuit.toml``):
    the manifest's problems, and a missing ``main.py`` or one without a top-level ``run``.

    ``main.py`` is parsed with ``ast``, never imported or executed. An empty list means the agent
    is good to run.
    """
    path = Path(path)
    problems: list[Problem] = []
    parse_path(path, problems)
    if not (path_is(path.is_dir) or path_is(path.is_file)):
        return problems  # missing, a device, a FIFO: its own problem says so
    folder = path if path.is_dir() else path.parent
    problems.extend(check_main(folder / MAIN_NAME))
    return problems


def check_main(main: Path) -> list[Problem]:
    """The problems of an agent's ``main.py``: missing, unparsable, no ``run(agent)``, or a
    ``run``/``unwind`` that takes no parameter."""
    file = str(main)
    if not main.is_file():
        return [Problem(file, "", f"missing: an agent folder needs {MAIN_NAME} defining run(agent)")]
    try:
        source = read_bytes(main)
    except InputError as exc:
        return exc.problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences: not ours to report
            tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        where = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "unknown position"
        return [Problem(file, "", f"syntax error at {where}: {exc.msg}")]
    except ValueError as exc:  # null bytes, undecodable source
        return [Problem(file, "", f"cannot be parsed: {exc}")]
    except (RecursionError, MemoryError):
        return [Problem(file, "", "cannot be parsed: nested too deeply")]

    bindings = _top_level_bindings(tree.body)
    problems: list[Problem] = []
    run = bindings.get("run")
    if run is None:
        problems.append(Problem(file, "run", "no top-level run function; define def run(agent): ..."))
    else:
        problems.extend(_check_function(file, "run", run, "def run(agent)"))
    unwind = bindings.get("unwind")
    if unwind is not None:
        problems.extend(_check_function(file, "unwind", unwind, "def unwind(agent, portfolio)"))
    return problems


def _check_function(file: str, name: str, node: ast.AST, shape: str) -> list[Problem]:
    # async def is fine: the built-in run call drives a coroutine to completion.
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        if not (args.posonlyargs or args.args or args.vararg):
            return [Problem(file, name, f"must take the agent context as its first parameter: {shape}")]
    return []


def _top_level_bindings(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names bound at module level (also inside top-level if/try/with blocks) to their node."""
    found: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            if not isinstance(node, ast.AnnAssign) or node.value is not None:
                found[node.target.id] = node
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found[alias.asname or alias.name] = node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found.update(_top_level_bindings(node.body))
                found.update(_top_level_bindings(node.orelse))
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                found.update(_top_level_bindings(block))
        elif isinstance(node, ast.With):
            found.update(_top_level_bindings(node.body))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
