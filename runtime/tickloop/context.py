"""``AgentContext``: what an agent's ``run(agent)`` receives, with the Circuit SDK's names.

Built fresh for every run. Agent code written for the Circuit Python SDK ports by changing one
import; snake_case aliases are provided for the camelCase attributes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tickloop.channel import Call, Channel, ChannelMemory, Target, VenueProxy, plain
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
    """The agent's view of its session for one run.

    Who the run is (``sessionId``, ``sessionWalletAddress``, ``executionMode``) is read-only:
    what the agent does is done by the runtime for the session the run was dispatched for,
    through the run's channel (:mod:`tickloop.channel`), whatever the agent writes here.
    """

    def __init__(
        self,
        *,
        sessionId: int,
        sessionWalletAddress: str,
        executionMode: str = "auto",
        settings: dict[str, Any] | None = None,
        portfolio: Portfolio | None = None,
        memory: Memory | ChannelMemory | None = None,
        platforms: Platforms | None = None,
        clock: Callable[[], datetime] | None = None,
        on_log: Callable[[LogLine], None] | None = None,
        channel: Channel | None = None,
    ) -> None:
        self._identity = (sessionId, sessionWalletAddress, executionMode)
        self.settings = dict(settings or {})
        self.portfolio = portfolio or Portfolio.empty()
        if channel is not None:
            memory = memory or ChannelMemory(channel)
            platforms = platforms or Platforms(lambda name: VenueProxy(channel, name))
        self.memory = memory
        self.platforms = platforms or Platforms()
        self.logs: list[LogLine] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._on_log = on_log
        self._channel = channel

    @property
    def sessionId(self) -> int:
        return self._identity[0]

    @sessionId.setter
    def sessionId(self, value: Any) -> None:
        _read_only("sessionId")

    @property
    def sessionWalletAddress(self) -> str:
        return self._identity[1]

    @sessionWalletAddress.setter
    def sessionWalletAddress(self, value: Any) -> None:
        _read_only("sessionWalletAddress")

    @property
    def executionMode(self) -> str:
        return self._identity[2]

    @executionMode.setter
    def executionMode(self, value: Any) -> None:
        _read_only("executionMode")

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

    def sign_and_send(self, request: Any) -> Result:
        """Sign and broadcast a raw transaction, Circuit's ``sign_and_send``: ``{network:
        "ethereum:<chainId>" | "solana", request: {to_address, data, value, ...} |
        {hex_transaction}, message?, expiresAt?}``. Routed like every action: executed by the
        venue named for its chain family (``evm`` or ``solana``), or suggested in manual mode."""
        return self._call("sign_and_send", request)

    def sign_message(self, request: Any) -> Result:
        """Sign an EVM message, Circuit's ``sign_message``: ``{messageType: "eip712" | "eip191",
        data, chainId}``; in manual mode it is always a suggestion."""
        return self._call("sign_message", request)

    def clear_suggested_transactions(self) -> Result:
        """Soft-delete this session's pending suggestions now."""
        if self._channel is None:
            return Result.ok({"cleared": 0})
        return self._call("clear_suggested_transactions")

    def _call(self, method: str, *args: Any) -> Result:
        if self._channel is None:
            return Result.fail(f"{method}: this context has no gateway to venues")
        return self._channel.call(Call(Target.CONTEXT, method, tuple(plain(a) for a in args)))

    def __repr__(self) -> str:
        return f"AgentContext(sessionId={self.sessionId!r}, executionMode={self.executionMode!r})"


def _read_only(name: str) -> None:
    raise AttributeError(f"agent.{name} is read-only: a run acts for the session it was started for")


