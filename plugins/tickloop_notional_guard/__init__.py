"""tickloop example plugin: suggest, rather than execute, any action above a USD notional.

``[routing] manual_above_usd = 500`` in ``tickloop.toml`` makes every action a venue values
above $500 a suggestion a person approves, even for a session in auto mode; smaller actions are
left to the next router (the built-in one: auto executes, manual suggests). Unset, the guard
does nothing. An action whose value the venue cannot tell (``notional_usd`` is None) is left
alone too: the guard only acts on what it can measure.

It is a complete ``tickloop_route_action`` implementation in a dozen lines: copy it as the
start of your own router.
"""

from __future__ import annotations

from typing import Any

from tickloop import hookimpl


@hookimpl
def tickloop_route_action(action: Any, config: Any) -> str | None:
    threshold = config.routing.manual_above_usd
    if threshold is None or action.notional_usd is None:
        return None
    return "suggest" if action.notional_usd > threshold else None
