"""tickloop built-in plugin: the ``diskcache`` memory backend (the default).

Agent memory lives in ``<home>/memory``, a diskcache (SQLite) directory: durable across restarts
and process crashes, and shared by every process of the runtime, including the worker processes
of the ``process`` executor. See :mod:`tickloop_diskcache.backend` for the key and index layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickloop import hookimpl
from tickloop.registry import Backend

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop_diskcache.backend import DiskcacheMemory

#: The folder under the runtime's home that holds the memory data.
FOLDER = "memory"


def _factory(config: Config) -> DiskcacheMemory:
    # Imported on first use so loading the plugin (every CLI start) does not import diskcache.
    from tickloop_diskcache.backend import DiskcacheMemory

    return DiskcacheMemory(config.home / FOLDER)


@hookimpl
def tickloop_register_memory_backends(register: Any) -> None:
    register(Backend(
        name="diskcache",
        factory=_factory,
        description="embedded and durable (SQLite via diskcache, in <home>/memory); shared by processes",
    ))
