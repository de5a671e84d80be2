"""The ``inline`` executor: runs each job in the thread that submits it.

It has the lowest overhead and shares the runtime's process. Agent code reaches the runtime through
the run's channel like in a worker, so it acts only as its session; but it runs next to the
runtime's keys and store, so **use it for agents you trust** (your own, tests, backtests). It also
**cannot stop a hung agent**. The run
timeout (``job.timeout`` / ``[runtime] run_timeout_seconds``) is not enforced, and an agent that
never returns blocks the caller; an agent that crashes the interpreter (a segfault,
``os._exit``) takes the runtime down with it. Use the ``process`` executor when agents are not
trusted to behave.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from tickloop.runner import RunEnvironment, RunJob, RunOutcome


class InlineExecutor:
    """Executes jobs synchronously in the caller's thread; ``submit`` returns a completed future."""

    def __init__(self, environment: RunEnvironment) -> None:
        self.environment = environment
        self._closed = False
        self._lock = threading.Lock()

    def submit(self, job: RunJob) -> Future[RunOutcome]:
        """Run ``job`` now, in this thread, and return a future that is already resolved.

        The future always holds a :class:`RunOutcome`: agent errors (any ``BaseException``) are
        ``failed`` outcomes, and so is an exception escaping a plugin's ``tickloop_run_call``
        wrapper.
        """
        if self._closed:  # a plain read: close() only ever sets it, and the job runs right here
            raise RuntimeError("cannot submit a run: the inline executor is closed")
        future: Future[RunOutcome] = Future()  # resolved before anyone else sees it: never "running"
        try:
            outcome = self.environment.execute(job)
        except BaseException as exc:
            from tickloop_executors import failure

            outcome = failure(job.run_id, exc, prefix="error while executing the run: ")
        future.set_result(outcome)
        return future

    def isolation(self) -> str:
        """One line for people: how agents are isolated from the runtime."""
        return "agents run inside the runtime process (inline executor): for agents you trust"

    def close(self) -> None:
        """Refuse further jobs; there is nothing to stop (every job ran to completion in submit)."""
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"InlineExecutor(closed={self._closed})"
