"""The ``process`` executor: a pool of long-lived worker processes with a timeout per run.

Runtime side: ``[runtime] workers`` slots, each a driver thread that owns one worker process
(:mod:`tickloop_executors.worker`, a program of its own). A driver takes the next job from a
shared queue, binds it (:meth:`tickloop.runner.RunEnvironment.bind`: the run's permit and the
answers to its agent's calls), sends it to the worker and serves it until the outcome arrives or
the run's timeout (``job.timeout``, else ``[runtime] run_timeout_seconds``) passes, counted from
when the job is sent (time spent queued for a free worker does not count). Meanwhile the worker
streams every log line and asks the runtime for whatever the agent reads or does (memory,
venues, suggestions): those calls are answered here, in the runtime process, which alone holds
the store, the venues and the keys. After an unwind, the closers run here too.

- **Timeout**: the worker is terminated (SIGTERM, then SIGKILL after ``kill_grace`` seconds), the
  run is ``timed_out`` with the lines logged so far, and a fresh worker replaces it.
- **Crash** (segfault, ``os._exit``, OOM kill): the run is ``failed`` with ``"worker process
  exited with code N"`` and the worker is replaced.
- **Concurrency**: runs of different sessions run at the same time on different workers (the
  runtime never submits two runs of one session at once).
- **Isolation**: workers start with a scrubbed environment and, where bubblewrap is installed,
  in a sandbox that hides the home (:mod:`tickloop_executors.sandbox`). What a worker sends is
  read as untrusted data (:mod:`tickloop_executors.messages`).

This module holds the pool: its slots, the driver threads and what each does with a job. A
worker process itself (start, hello, stop) is :mod:`tickloop_executors.workerprocess`; what a
worker's messages are believed to say and how its calls are answered, :mod:`tickloop_executors.messages`.

Workers start lazily (on the first ``submit`` or on :meth:`ProcessExecutor.start`), take the
runtime's ``sys.path`` and working directory as they are then, load the plugins ``[plugins]``
names (so ``tickloop_run_call`` wrappers run around the agent), ignore SIGINT (the runtime
decides when they stop) and exit by themselves when the runtime process dies.

:meth:`ProcessExecutor.close` resolves every future it has not finished with a ``failed``
outcome; it never leaves one pending and never cancels one itself: runs still queued fail with
"executor closed before the run started" (their agent never ran); runs in progress are
abandoned, their worker killed, and fail with "executor closed while the run was in progress"
and the lines logged so far. Idle workers are asked to exit, busy ones are terminated, and
``close`` returns once every worker process and driver thread is gone.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import attrs

from tickloop.binding import RunBinding, new_permit
from tickloop.config import Config
from tickloop.runner import RunEnvironment, RunJob, RunOutcome
from tickloop.runs import FAILED, SUCCEEDED, TIMED_OUT, LogLine
from tickloop_executors import sandbox
from tickloop_executors.messages import UntrustedMessage, log_line, reply, reported_outcome
from tickloop_executors.workerprocess import KILL_GRACE, STARTUP_TIMEOUT, STOP_GRACE, WorkerProcess, exit_code, spawn

_STOP = object()


class _Slot:
    """One driver thread and the worker it owns."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: WorkerProcess | None = None
        self.busy = True  # False only while the driver waits for a job (close() then asks it to stop)
        self.start_error: str | None = None
        self.ready = threading.Event()  # set once the first worker was started (or failed to)
        self.thread: threading.Thread | None = None


class ProcessExecutor:
    """Runs jobs in a pool of worker processes; see the module documentation.

    :param config: the runtime configuration (workers, timeouts, sandbox, plugins).
    :param environment: the runtime's side of runs: binds each run and runs the closers.
    :param workers: number of worker processes (default ``[runtime] workers``).
    :param startup_timeout: seconds a worker may take to get ready.
    :param kill_grace: seconds between SIGTERM and SIGKILL.
    """

    def __init__(self, config: Config, environment: RunEnvironment, *, workers: int | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT, kill_grace: float = KILL_GRACE) -> None:
        self.config = config
        self.environment = environment
        self.workers = int(workers or config.runtime.workers)
        source = config.source
        self.sandbox = sandbox.sandbox_prefix(config.runtime.sandbox, config.home, source=source)
        self.startup_timeout = startup_timeout
        self.kill_grace = kill_grace
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._closed = False
        self._atexit: Callable[[], None] | None = None

    # -- public API --------------------------------------------------------------------------

    def submit(self, job: RunJob) -> Future[RunOutcome]:
        """Queue ``job`` for the next free worker; the future resolves to its outcome."""
        future: Future[RunOutcome] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit a run: the process executor is closed")
            self._start_locked()
            self._queue.put((job, future))
        return future

    def start(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Start the workers now rather than on the first ``submit``; with ``wait``, return once
        each is ready (or failed to start), or after ``timeout`` seconds."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot start: the process executor is closed")
            self._start_locked()
            slots = list(self._slots)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for slot in slots:
                slot.ready.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def isolation(self) -> str:
        """One line for people: how agents are isolated from the runtime."""
        return sandbox.describe(self.sandbox, self.config.home)

    def close(self) -> None:
        """Stop every worker and driver thread; unfinished futures get ``failed`` outcomes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots)
            busy = [slot.worker for slot in slots if slot.busy and slot.worker is not None]
        self._fail_queued()
        for running in busy:  # a running agent cannot be asked politely
            running.signal(terminate=True)
        for _ in slots:
            self._queue.put(_STOP)
        current = threading.current_thread()
        threads = [slot.thread for slot in slots if slot.thread is not None and slot.thread is not current]
        deadline = time.monotonic() + STOP_GRACE + self.kill_grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for slot in slots:  # a worker ignoring SIGTERM, or a driver stuck starting one
            worker = slot.worker
            if worker is not None and slot.thread is not current and slot.thread is not None \
                    and slot.thread.is_alive():
                worker.signal(terminate=False)
        for thread in threads:
            thread.join(self.kill_grace + 5.0)
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._slots else "not started"
        return f"ProcessExecutor(workers={self.workers}, {state})"

    def pids(self) -> list[int]:
        """Process ids of the current workers, as the runtime sees them (for monitoring and tests)."""
        with self._lock:
            return [slot.worker.process.pid for slot in self._slots if slot.worker is not None]

    # -- driver threads ----------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._slots:
            return
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            executor = ref()
            if executor is not None:
                executor.close()

        self._atexit = close_at_exit
        atexit.register(close_at_exit)
        for index in range(self.workers):
            slot = _Slot(index)
            slot.thread = threading.Thread(target=self._drive, args=(slot,),
                                           name=f"tickloop-executor-{index}", daemon=True)
            self._slots.append(slot)
            slot.thread.start()

    def _drive(self, slot: _Slot) -> None:
        try:
            while True:
                if slot.worker is None and slot.start_error is None:
                    self._start_worker(slot)  # replace a lost worker before taking the next job
                slot.ready.set()
                with self._lock:
                    slot.busy = False
                item = self._queue.get()
                if item is _STOP:
                    return
                job, future = item
                with self._lock:
                    slot.busy = True
                    closed = self._closed
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled by the caller while queued
                if closed:
                    future.set_result(RunOutcome(job.run_id, FAILED, error="executor closed before the run started"))
                    continue
                try:
                    outcome = self._run(slot, job)
                except Exception as exc:  # a bug here must not leave the future pending
                    from tickloop_executors import failure

                    self._discard(slot)
                    outcome = failure(job.run_id, exc, prefix="process executor error: ")
                future.set_result(outcome)
        finally:
            slot.busy = True
            self._discard(slot, graceful=True)
            slot.ready.set()

    def _start_worker(self, slot: _Slot) -> None:
        """Start a worker for ``slot`` and wait until it is ready; on failure set ``start_error``."""
        with self._lock:
            if self._closed:
                slot.start_error = "executor closed"
                return
        try:
            worker = spawn(self.config, self.sandbox, self.environment.secret_env_names())
        except Exception as exc:
            from tickloop_executors import clean_text, describe

            slot.start_error = clean_text(f"could not start a worker process: {describe(exc)}")
            return
        with self._lock:
            slot.worker = worker
            closed = self._closed
        if closed:
            self._discard(slot)
            slot.start_error = "executor closed"
            return
        try:
            error = worker.wait_ready(self.startup_timeout)
        except (EOFError, OSError):
            code = self._discard(slot)
            slot.start_error = f"worker process exited with code {exit_code(code)} before it was ready"
            return
        if error is not None:
            self._discard(slot)
            slot.start_error = error
            return
        slot.start_error = None

    def _run(self, slot: _Slot, job: RunJob) -> RunOutcome:
        job = attrs.evolve(job, permit=new_permit())
        if job.kind == "close":  # the closers alone: nothing of the agent runs
            return self.environment.finish(job, RunOutcome(job.run_id, SUCCEEDED))
        hidden = self._hidden(job)
        if hidden is not None:
            return RunOutcome(job.run_id, FAILED, error=hidden)
        if slot.worker is None:
            self._start_worker(slot)  # one fresh attempt for every job while workers fail to start
            if slot.worker is None:
                return RunOutcome(job.run_id, FAILED, error=slot.start_error or "no worker process")
        binding = self.environment.bind(job)
        try:
            outcome, ended = self._serve(slot, slot.worker, job, binding)
        finally:
            binding.revoke()
        # Only an agent function that ended hands over to the closers; after a timeout or a
        # crash the runtime runs them in a close run of their own.
        return self.environment.finish(job, outcome) if ended else outcome

    def _serve(self, slot: _Slot, worker: WorkerProcess, job: RunJob, binding: RunBinding) -> tuple[RunOutcome, bool]:
        """Send the job and answer its worker until the outcome arrives or the run times out;
        also says whether the agent's function ended (the worker reported its outcome)."""
        timeout = job.timeout if job.timeout is not None else self.config.runtime.run_timeout_seconds
        try:
            data = ForkingPickler.dumps(("run", job))
        except Exception as exc:
            from tickloop_executors import failure

            return failure(job.run_id, exc, prefix="the run could not be sent to a worker: "), False
        logs: list[LogLine] = []
        try:
            worker.conn.send_bytes(data)
        except OSError:
            return self._lost(slot, job, logs), False
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not worker.conn.poll(remaining):
                self._discard(slot)
                timed_out = RunOutcome(job.run_id, TIMED_OUT, error=f"timed out after {timeout:g} s", logs=tuple(logs))
                return timed_out, False
            try:
                message = worker.receive()
            except (EOFError, OSError):
                return self._lost(slot, job, logs), False
            except UntrustedMessage as exc:
                self._discard(slot)
                return RunOutcome(job.run_id, FAILED, error=f"the worker was stopped: {exc}", logs=tuple(logs)), False
            kind = message[0] if isinstance(message, tuple) and message else None
            if kind == "call":
                worker.conn.send_bytes(reply(binding, message))
            elif len(message) < 3 or message[1] != job.run_id:
                continue  # a line logged by a thread the previous run left behind
            elif kind == "log":
                line = log_line(message[2])
                if line is not None:
                    logs.append(line)
            elif kind == "done":
                return reported_outcome(job, message[2]), True

    def _hidden(self, job: RunJob) -> str | None:
        """Why a folder agent cannot run in a sandboxed worker (it lies in the hidden home)."""
        if not self.sandbox or not os.path.isabs(job.agent_ref):
            return None
        home = Path(os.path.realpath(self.config.home))
        if Path(os.path.realpath(job.agent_ref)).is_relative_to(home):
            return (f"agent folder {job.agent_ref} is inside the tickloop home {home}, which agent processes"
                    " cannot see; keep agent folders outside the home")
        return None

    def _lost(self, slot: _Slot, job: RunJob, logs: list[LogLine]) -> RunOutcome:
        """The worker's connection closed during ``job``: it died, or close() killed it."""
        code = self._discard(slot, ending=True)
        if self._closed:
            return RunOutcome(job.run_id, FAILED, error="executor closed while the run was in progress",
                              logs=tuple(logs))
        return RunOutcome(job.run_id, FAILED, error=f"worker process exited with code {exit_code(code, self.sandbox)}",
                          logs=tuple(logs))

    def _discard(self, slot: _Slot, *, graceful: bool = False, ending: bool = False) -> int | None:
        """Stop the slot's worker (see :meth:`WorkerProcess.stop`); returns its exit code."""
        with self._lock:
            worker, slot.worker = slot.worker, None
        if worker is None:
            return None
        return worker.stop(kill_grace=self.kill_grace, graceful=graceful, ending=ending)

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                continue
            job, future = item
            if future.set_running_or_notify_cancel():
                future.set_result(RunOutcome(job.run_id, FAILED, error="executor closed before the run started"))

