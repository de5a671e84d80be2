"""tickloop built-in plugin: the default execution-mode router.

Auto mode executes an action, manual mode suggests it. Registered ``trylast``, so any other
``tickloop_route_action`` implementation decides first.
"""

from __future__ import annotations

from typing import Any

from tickloop import hookimpl


@hookimpl(trylast=True)
def tickloop_route_action(session: Any, action: Any, mode: str) -> str:
    return "suggest" if mode == "manual" else "execute"
