"""A paper exchange's state: a JSON document, in memory or in a file shared by processes.

Every request runs in :meth:`ExchangeState.transaction`: with a file, an exclusive ``flock`` is held
while the document is read, changed and written back (atomically, by rename), so the runtime,
its worker processes and a CLI approving a suggestion can each run the paper exchange in-process
over one shared state in the home and never lose an update. Paper exchanges are small; rewriting
the document per request is fast enough and keeps the state inspectable with any JSON tool.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class ExchangeState:
    """A JSON document changed only inside :meth:`transaction`."""

    def __init__(self, path: str | os.PathLike[str] | None, initial: Callable[[], dict[str, Any]]) -> None:
        self.path = Path(path) if path is not None else None
        self._initial = initial
        self._memory: dict[str, Any] | None = None if self.path is not None else initial()
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """The document, locked; changes are kept when the block ends without an exception."""
        with self._lock:
            if self.path is None:
                assert self._memory is not None
                work = copy.deepcopy(self._memory)
                yield work
                self._memory = work
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_suffix(self.path.suffix + ".lock"), "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    try:
                        doc = json.loads(self.path.read_text())
                    except FileNotFoundError:
                        doc = self._initial()
                    yield doc
                    tmp = self.path.with_suffix(self.path.suffix + f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(doc))
                    os.replace(tmp, self.path)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        with self.transaction() as doc:
            return copy.deepcopy(doc)
