"""The ``{success, data, error}`` result shape every agent-facing call returns.

Agents read results the way the Circuit SDK's response models are read (``r.success``,
``r.data.value``) or as dicts (``r["data"]["value"]``); both work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs


class Data(Mapping[str, Any]):
    """A read-only mapping whose keys are also attributes (``data.value`` == ``data["value"]``).

    A key wins over a Mapping method of the same name, so ``data.items`` is the ``items`` list
    of a memory listing, as in the Circuit SDK.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return wrap(self._items[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            items = object.__getattribute__(self, "_items")
            if name in items:
                return wrap(items[name])
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Data({self._items!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._items)


def wrap(value: Any) -> Any:
    """Give nested dicts (and dicts inside lists) attribute access."""
    if isinstance(value, Mapping) and not isinstance(value, Data):
        return Data(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


@attrs.frozen
class Result:
    """What an agent-facing call answers. API failures are results, never exceptions."""

    success: bool
    data: Any = attrs.field(default=None, converter=wrap)
    error: str | None = None

    @classmethod
    def ok(cls, data: Any = None) -> Result:
        return cls(True, data)

    @classmethod
    def fail(cls, error: str) -> Result:
        return cls(False, None, error)

    def __getitem__(self, key: str) -> Any:
        if key not in ("success", "data", "error"):
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values all the way down (nested Data, lists, attrs records)."""
        return {"success": self.success, "data": unwrap(self.data), "error": self.error}


def unwrap(value: Any) -> Any:
    """The inverse of :func:`wrap`, also for attrs records an answer may hold."""
    if isinstance(value, Data):
        return {k: unwrap(v) for k, v in value._items.items()}
    if isinstance(value, Mapping):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    if attrs.has(type(value)):
        return unwrap(attrs.asdict(value, recurse=False))
    return value
