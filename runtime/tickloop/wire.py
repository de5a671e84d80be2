"""The JSON shapes of tickloop's records, for ``--json`` output and the HTTP API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
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


def to_data(obj: Any) -> Any:
    return converter.unstructure(obj)


def dumps(obj: Any) -> str:
    return json.dumps(to_data(obj), indent=2, sort_keys=False, default=str)
