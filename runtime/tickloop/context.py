"""``AgentContext``: what an agent's ``run(agent)`` receives, with the Circuit SDK's names.

Built fresh for every run. Agent code written for the Circuit Python SDK ports by changing one
import; snake_case aliases are provided for the camelCase attributes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from tickloop.memory import Memory
from tickloop.portfolio import Portfolio
from tickloop.results import Result
from tickloop.runs import LogLine


class _UnavailableVenue:
    """A venue namespace that answers every call with a failed result (no venue is installed)."""

    def __init__(self, name: str, reason: str = "") -> None:
        self._name = name
        self._reason = reason or f"no {name} venue is installed in this runtime"

    def __getattr__(self, method: str) -> Callable[..., Result]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Result:
            return Result.fail(f"{self._name}.{method}: {self._reason}")

        return call


class Platforms:
    """``agent.platforms``: one attribute per venue (``hyperliquid``, ``polymarket``), built on
    first use by ``venues(name)`` (None: no such venue is installed)."""

    def __init__(self, venues: dict[str, Any] | Callable[[str], Any] | None = None) -> None:
        self._lookup = venues if callable(venues) else dict(venues or {}).get
        self._built: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._built[name]
        except KeyError:
            pass
        try:
            api = self._lookup(name)
        except Exception as exc:  # a venue that cannot start: every call answers with the reason
            api = _UnavailableVenue(name, f"the {name} venue could not start: {exc}")
        self._built[name] = api if api is not None else _UnavailableVenue(name)
        return self._built[name]


class AgentContext:
    """The agent's view of its session for one run."""

    def __init__(
        self,
        *,
        sessionId: int,
        sessionWalletAddress: str,
        executionMode: str = "auto",
        settings: dict[str, Any] | None = None,
        portfolio: Portfolio | None = None,
        memory: Memory | None = None,
        platforms: Platforms | None = None,
        clock: Callable[[], datetime] | None = None,
        on_log: Callable[[LogLine], None] | None = None,
        on_clear_suggestions: Callable[[], int] | None = None,
    ) -> None:
        self.sessionId = sessionId
        self.sessionWalletAddress = sessionWalletAddress
        self.executionMode = executionMode
        self.settings = dict(settings or {})
        self.portfolio = portfolio or Portfolio.empty()
        self.memory = memory
        self.platforms = platforms or Platforms()
        self.logs: list[LogLine] = []
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._on_log = on_log
        self._on_clear = on_clear_suggestions

    # snake_case aliases
    @property
    def session_id(self) -> int:
        return self.sessionId

    @property
    def session_wallet_address(self) -> str:
        return self.sessionWalletAddress

    @property
    def execution_mode(self) -> str:
        return self.executionMode

    def log(self, message: Any, error: bool = False, debug: bool = False) -> Result:
        """Record a log line for this run: ``info``, ``error`` (``error=True``) or ``debug``."""
        if isinstance(message, (dict, list)):
            text = json.dumps(message, separators=(",", ":"), default=str)
        else:
            text = str(message)
        line = LogLine(at=self._clock(), level="debug" if debug else "error" if error else "info", message=text)
        self.logs.append(line)
        if self._on_log is not None:
            self._on_log(line)
        return Result.ok()

    def clear_suggested_transactions(self) -> Result:
        """Soft-delete this session's pending suggestions now."""
        if self._on_clear is None:
            return Result.ok({"cleared": 0})
        try:
            return Result.ok({"cleared": self._on_clear()})
        except Exception as exc:
            return Result.fail(f"clear suggested transactions failed: {exc}")

    def __repr__(self) -> str:
        return f"AgentContext(sessionId={self.sessionId!r}, executionMode={self.executionMode!r})"
