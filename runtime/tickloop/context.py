"""``AgentContext``: what an agent's ``run(agent)`` receives, with the Circuit SDK's names.

Built fresh for every run. Agent code written for the Circuit Python SDK ports by changing one
import; snake_case aliases are provided for the camelCase attributes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from tickloop.actions import MESSAGE, TRANSACTION, Action
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
        submit: Callable[[Action], Result] | None = None,
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
        self._submit = submit

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
        return self._transaction(request, "sign_and_send", TRANSACTION)

    def sign_message(self, request: Any) -> Result:
        """Sign an EVM message, Circuit's ``sign_message``: ``{messageType: "eip712" | "eip191",
        data, chainId}``; in manual mode it is always a suggestion."""
        body = _as_dict(request)
        if body is None or body.get("messageType") not in ("eip712", "eip191") or "data" not in body:
            return Result.fail("sign_message: expected {messageType: 'eip712' | 'eip191', data, chainId}")
        return self._route(Action(venue="evm", kind=MESSAGE, method="sign_message", params=body,
                                  session_id=self.sessionId, wallet=self.sessionWalletAddress))

    def _transaction(self, request: Any, method: str, kind: str) -> Result:
        body = _as_dict(request)
        network = body.get("network") if body is not None else None
        if not isinstance(network, str) or not (network == "solana" or _is_evm_network(network)):
            return Result.fail(f"{method}: network must be 'ethereum:<chainId>' or 'solana', got {network!r}")
        if not isinstance(body.get("request"), dict):
            return Result.fail(f"{method}: request must be an object (the transaction)")
        message = body.get("message")
        if message is not None and len(str(message)) > 250:
            return Result.fail(f"{method}: message must be at most 250 characters")
        expires = body.get("expiresAt") or body.get("expires_at")
        try:
            expires_at = datetime.fromisoformat(expires) if expires else None
        except (TypeError, ValueError):
            return Result.fail(f"{method}: expiresAt must be an ISO 8601 time, got {expires!r}")
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        venue = "solana" if network == "solana" else "evm"
        return self._route(Action(venue=venue, kind=kind, method=method, params=body, session_id=self.sessionId,
                                  wallet=self.sessionWalletAddress, expires_at=expires_at,
                                  message=str(message) if message is not None else None))

    def _route(self, action: Action) -> Result:
        if self._submit is None:
            return Result.fail(f"{action.method}: this context has no gateway to venues")
        return self._submit(action)

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


def _as_dict(request: Any) -> dict[str, Any] | None:
    """A request as a dict: a dict, or a pydantic model from the Circuit SDK (``model_dump``)."""
    if isinstance(request, dict):
        return dict(request)
    dump = getattr(request, "model_dump", None)
    if dump is not None:
        return dict(dump(by_alias=True, exclude_unset=True))
    return None


def _is_evm_network(network: str) -> bool:
    prefix, _, chain = network.partition(":")
    return prefix == "ethereum" and chain.isdigit() and int(chain) > 0
