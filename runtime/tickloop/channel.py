"""The channel between an agent's code and the runtime, bound to one run.

Agent code holds none of the runtime's objects. What it reads or does beyond its settings, its
portfolio snapshot and its log (memory, the venues' ``agent.platforms`` APIs, suggestions, raw
transactions) is a :class:`Call` over a :class:`Channel` to the runtime process, where the run's
:class:`tickloop.binding.RunBinding` answers it. The binding, not the agent, knows who the run
is (session, wallet), signs and books; it stops answering when the run ends (its permit is
revoked), so a thread an agent leaves behind cannot act for a later run. The ``inline`` executor
calls the binding directly (:class:`LocalChannel`); the ``process`` executor carries calls over
the worker's pipe.

This module holds the agent's side: the call record and the proxies ``agent.memory`` and
``agent.platforms.<venue>`` are made of.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from tickloop.binding import RunBinding
    from tickloop.results import Result


class Target(enum.Enum):
    """What a call addresses in the runtime."""

    MEMORY = "memory"  #: agent.memory: set, get, delete, list
    VENUE = "venue"  #: agent.platforms.<venue>.<method>
    CONTEXT = "context"  #: sign_and_send, sign_message, clear_suggested_transactions


@attrs.frozen
class Call:
    """One request of agent code to the runtime. Picklable; its arguments are plain data."""

    target: Target
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    venue: str = ""

    def describe(self) -> str:
        where = f"{self.venue}." if self.venue else "memory." if self.target is Target.MEMORY else ""
        return f"{where}{self.method}"


class Channel(Protocol):
    """The agent's end of a run's channel."""

    def call(self, call: Call) -> Any:
        """Answer ``call`` (a :class:`tickloop.results.Result` for every public method); raises
        :class:`AttributeError` for a method the target does not have, as a real object would."""


class LocalChannel:
    """A channel to a binding in the same process (the ``inline`` executor)."""

    __slots__ = ("_binding",)

    def __init__(self, binding: RunBinding) -> None:
        self._binding = binding

    def call(self, call: Call) -> Any:
        return self._binding.handle(call)


def plain(value: Any) -> Any:
    """``value`` as plain data for the channel: request models of the Circuit SDK (pydantic,
    ``model_dump``) become dicts, containers are converted item by item, the rest is kept."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):
        return plain(dump(by_alias=True, exclude_unset=True))
    return value


class ChannelMemory:
    """``agent.memory`` over a channel: the same methods and results as :class:`tickloop.memory.Memory`."""

    __slots__ = ("_channel",)

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Result:
        return self._channel.call(Call(Target.MEMORY, method, tuple(plain(a) for a in args), kwargs))

    def set(self, key: str, value: str, shared: bool = False) -> Result:
        return self._call("set", key, value, shared=shared)

    def get(self, key: str, shared: bool = False) -> Result:
        return self._call("get", key, shared=shared)

    def delete(self, key: str, shared: bool = False) -> Result:
        return self._call("delete", key, shared=shared)

    def list(self, prefix: str | None = None, shared: bool = False) -> Result:
        return self._call("list", prefix, shared=shared)


class VenueProxy:
    """``agent.platforms.<venue>``: every public attribute is a method answered by the venue's
    agent API in the runtime, for this run's session."""

    __slots__ = ("_channel", "_venue")

    def __init__(self, channel: Channel, venue: str) -> None:
        self._channel = channel
        self._venue = venue

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        channel, venue = self._channel, self._venue

        def call(*args: Any, **kwargs: Any) -> Any:
            return channel.call(Call(Target.VENUE, method, plain(args), plain(kwargs), venue=venue))

        call.__name__ = method
        call.__qualname__ = f"{venue}.{method}"
        return call

    def __repr__(self) -> str:
        return f"<agent.platforms.{self._venue}>"
