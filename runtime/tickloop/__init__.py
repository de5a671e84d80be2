"""tickloop: a self-hostable, plugin-based runtime for Circuit-style trading agents.

``import tickloop`` stays cheap: the runtime and the agent context are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from tickloop.hookspecs import NAME

__version__ = "0.1.0"

#: Marks a function as an implementation of a tickloop hook, in plugins and in tickloop itself.
hookimpl = pluggy.HookimplMarker(NAME)

if TYPE_CHECKING:
    from tickloop.context import AgentContext
    from tickloop.errors import TickloopError
    from tickloop.results import Result
    from tickloop.runtime import Runtime

_LAZY = {
    "Runtime": "tickloop.runtime",
    "AgentContext": "tickloop.context",
    "Result": "tickloop.results",
    "TickloopError": "tickloop.errors",
}

__all__ = ["NAME", "AgentContext", "Result", "Runtime", "TickloopError", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tickloop' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
