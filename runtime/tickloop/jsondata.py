"""The JSON shapes of tickloop's records, for ``--json`` output and the HTTP API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import cattrs

from tickloop.schedule import Schedule
from tickloop.sessions import State

converter = cattrs.Converter()
converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
converter.register_unstructure_hook(timedelta, lambda d: d.total_seconds())
converter.register_unstructure_hook(Path, str)
converter.register_unstructure_hook(State, lambda s: s.value)
converter.register_unstructure_hook(Schedule, lambda s: s.to_dict())
converter.register_unstructure_hook(Decimal, lambda d: format(d, "f"))
converter.register_structure_hook(datetime, lambda v, _: v if isinstance(v, datetime) else datetime.fromisoformat(v))
converter.register_structure_hook(Decimal, lambda v, _: Decimal(str(v)))


def to_data(obj: Any) -> Any:
    return converter.unstructure(obj)


def from_data(data: Any, cls: type) -> Any:
    """The inverse of :func:`to_data` for attrs classes (actions, fills)."""
    return converter.structure(data, cls)


def dumps(obj: Any) -> str:
    return json.dumps(to_data(obj), indent=2, sort_keys=False, default=str)
