"""``RunBinding``: the runtime's end of one run's channel (see :mod:`tickloop.channel`).

Created by the runtime for each dispatched run, from the run's job as the runtime wrote it. It
answers the agent's calls as that run's session and nobody else: memory in the session's and
the agent's scopes, the venues' agent APIs built for the session, suggestions and transactions
routed through the gateway with the session's identity. Whatever the agent sends, it cannot name
another session or wallet. Once revoked (the run ended), every call is refused.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tickloop.actions import MESSAGE, TRANSACTION, Action
from tickloop.channel import Call, Target
from tickloop.memory import Memory, MemoryBackend
from tickloop.results import Result

if TYPE_CHECKING:
    from tickloop.runner import RunJob
    from tickloop.venues import Gateway

log = logging.getLogger("tickloop")

MEMORY_METHODS = frozenset({"set", "get", "delete", "list"})
ENDED = "this run has ended: calls from its agent are no longer answered"


def new_permit() -> str:
    """A fresh, unguessable permit for one run."""
    return secrets.token_urlsafe(18)


class RunBinding:
    """Answers the calls of one run's agent; see the module docstring.

    :param job: the run, as the runtime dispatched it (its ``session`` decides every identity).
    :param memory: the memory backend.
    :param gateway: the gateway to venues for this run's clock (built on first use; None when the
        runtime has no venues, e.g. an environment built by hand in tests).
    :param venue_names: the installed venues, or None when unknown.
    :param clock: the run's clock.
    """

    def __init__(self, job: RunJob, *, memory: MemoryBackend, gateway: Callable[[], Gateway] | None,
                 venue_names: Callable[[], list[str]] | None, clock: Callable[[], datetime]) -> None:
        self.job = job
        self._permit = job.permit
        self._backend = memory
        self._memory: Memory | None = None
        self._gateway = gateway
        self._venue_names = venue_names
        self._clock = clock
        self._apis: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._revoked = False

    @property
    def revoked(self) -> bool:
        return self._revoked

    @property
    def permit(self) -> str:
        """What calls over this run's channel must carry (made on first use when the job has none)."""
        if not self._permit:
            self._permit = new_permit()
        return self._permit

    def revoke(self) -> None:
        """End the run's channel: later calls are refused."""
        self._revoked = True

    def accepts(self, run_id: int, permit: str) -> bool:
        """True when a call naming ``run_id`` and ``permit`` belongs to this run and it is live."""
        return not self._revoked and run_id == self.job.run_id and secrets.compare_digest(permit, self.permit)

    # -- answering -----------------------------------------------------------------------------

    def handle(self, call: Call) -> Any:
        """The answer to ``call``; raises :class:`AttributeError` for a method that does not exist."""
        if self._revoked:
            return Result.fail(f"{call.describe()}: {ENDED}")
        if call.target is Target.MEMORY:
            if call.method not in MEMORY_METHODS:
                raise AttributeError(f"agent.memory has no method {call.method!r}")
            if self._memory is None:
                clock = self._clock
                self._memory = Memory(self._backend, session_id=self.job.session_id, agent=self.job.agent,
                                      now=lambda: clock().timestamp())
            return getattr(self._memory, call.method)(*call.args, **call.kwargs)
        if call.target is Target.VENUE:
            return self._venue_call(call)
        if call.method == "sign_and_send":
            return self._transaction(*call.args, **call.kwargs)
        if call.method == "sign_message":
            return self._message(*call.args, **call.kwargs)
        if call.method == "clear_suggested_transactions":
            return self._clear()
        raise AttributeError(f"AgentContext has no method {call.method!r}")

    def _venue_call(self, call: Call) -> Any:
        name = call.venue
        try:
            api = self._venue_api(name)
        except Exception as exc:  # a venue that cannot start: every call answers with the reason
            log.warning("the %s venue could not start: %s", name, exc)
            return Result.fail(f"{name}.{call.method}: the {name} venue could not start: {exc}")
        if api is None:
            return Result.fail(f"{name}.{call.method}: no {name} venue is installed in this runtime")
        method = getattr(api, call.method, None) if not call.method.startswith("_") else None
        if not callable(method):
            raise AttributeError(f"agent.platforms.{name} has no method {call.method!r}")
        try:
            return method(*call.args, **call.kwargs)
        except TypeError as exc:  # wrong arguments: the agent's mistake, answered like one
            return Result.fail(f"{name}.{call.method}: {exc}")
        except Exception as exc:  # a venue bug must not reach agent code as an exception
            log.exception("%s.%s failed", name, call.method)
            return Result.fail(f"{name}.{call.method} failed: {type(exc).__name__}: {exc}")

    def _venue_api(self, name: str) -> Any:
        with self._lock:
            if name in self._apis:
                return self._apis[name]
            api = None
            session = self.job.session
            if self._gateway is not None and session is not None and \
                    (self._venue_names is None or name in self._venue_names()):
                gateway = self._gateway()
                venue = gateway.venues.get(name)
                api = venue.agent_api(session, gateway) if venue is not None else None
            self._apis[name] = api
            return api

    # -- context methods -----------------------------------------------------------------------

    def _route(self, action: Action) -> Result:
        session = self.job.session
        if self._gateway is None or session is None:
            return Result.fail(f"{action.method}: this run has no gateway to venues")
        return self._gateway().submit(session, action)

    def _message(self, request: Any = None) -> Result:
        body = request if isinstance(request, dict) else None
        if body is None or body.get("messageType") not in ("eip712", "eip191") or "data" not in body:
            return Result.fail("sign_message: expected {messageType: 'eip712' | 'eip191', data, chainId}")
        return self._route(Action(venue="evm", kind=MESSAGE, method="sign_message", params=body,
                                  session_id=self.job.session_id, wallet=self.job.wallet))

    def _transaction(self, request: Any = None) -> Result:
        method = "sign_and_send"
        body = request if isinstance(request, dict) else None
        network = body.get("network") if body is not None else None
        if body is None or not isinstance(network, str) or not (network == "solana" or _is_evm_network(network)):
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
            expires_at = expires_at.replace(tzinfo=UTC)
        venue = "solana" if network == "solana" else "evm"
        return self._route(Action(venue=venue, kind=TRANSACTION, method=method, params=body,
                                  session_id=self.job.session_id, wallet=self.job.wallet, expires_at=expires_at,
                                  message=str(message) if message is not None else None))

    def _clear(self) -> Result:
        if self._gateway is None:
            return Result.ok({"cleared": 0})
        try:
            cleared = self._gateway().suggestions.delete_pending([self.job.session_id], at=self._clock())
        except Exception as exc:
            return Result.fail(f"clear suggested transactions failed: {exc}")
        return Result.ok({"cleared": cleared})


def _is_evm_network(network: str) -> bool:
    prefix, _, chain = network.partition(":")
    return prefix == "ethereum" and chain.isdigit() and int(chain) > 0
