"""The ``process`` executor: a pool of long-lived worker processes with a timeout per run.

Parent side: ``[runtime] workers`` slots, each a driver thread that owns one worker process. A
driver takes the next job from a shared queue, sends it over the worker's pipe and waits for
the answer with ``poll(remaining)`` until the run's timeout (``job.timeout``, else ``[runtime]
run_timeout_seconds``), counted from when the job is sent to the worker (time spent queued
for a free worker does not count). The worker streams every log line as it is logged, then the
outcome.

- **Timeout**: the worker is terminated (SIGTERM, then SIGKILL after ``kill_grace`` seconds), the
  run is ``timed_out`` with the lines logged so far, and a fresh worker replaces it.
- **Crash** (segfault, ``os._exit``, OOM kill): the run is ``failed`` with ``"worker process
  exited with code N"`` and the worker is replaced.
- **Concurrency**: runs of different sessions run at the same time on different workers (the
  runtime never submits two runs of one session at once).

Workers start lazily (on the first ``submit`` or on :meth:`ProcessExecutor.start`), with the
``forkserver`` start method on Linux and ``spawn`` elsewhere, never plain ``fork`` (the runtime
has threads). Each worker builds its :class:`~tickloop.execution.RunEnvironment` once, from the
:class:`~tickloop.config.Config` alone, with :func:`build_environment`, and takes the parent's
environment variables, working directory and ``sys.path`` as they were when it was started.
Agent memory must therefore live in a backend shared between processes (``diskcache``,
``redis``), not ``memory`` (refused with a :class:`~tickloop.errors.ConfigError`), and plugins
must be installed (entry points): plugin objects handed to the parent's plugin manager do not
exist in workers. Workers ignore SIGINT (the runtime decides when they stop) and exit by
themselves when the runtime process dies. As in any program using ``spawn``/``forkserver``, a
script that embeds the runtime needs the ``if __name__ == "__main__":`` guard.

:meth:`ProcessExecutor.close` resolves every future it has not finished with a ``failed``
outcome; it never leaves one pending and never cancels one itself: runs still queued fail with "executor
closed before the run started" (their agent never ran); runs in progress are abandoned, their
worker killed, and fail with "executor closed while the run was in progress" and the lines
logged so far. Idle workers are asked to exit, busy ones are terminated, and ``close`` returns
once every worker process and driver thread is gone.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.connection
import multiprocessing.util  # noqa: F401  (imported before our atexit hook, so ours runs first)
import os
import pickle
import queue
import signal
import sys
import threading
import time
import weakref
from concurrent.futures import Future
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable

from tickloop.config import Config
from tickloop.errors import ConfigError, Problem
from tickloop.execution import RunEnvironment, RunJob, RunOutcome
from tickloop.runs import FAILED, TIMED_OUT

#: Seconds a new worker may take to build its environment before it is killed.
STARTUP_TIMEOUT = 60.0
#: Seconds between SIGTERM and SIGKILL when a worker is killed.
KILL_GRACE = 1.0
#: Seconds an idle worker gets to exit by itself when the executor closes.
STOP_GRACE = 2.0

#: Memory backends that keep data inside one process: useless when agents run in workers.
IN_PROCESS_MEMORY = frozenset({"memory"})

_STOP = object()


def build_environment(config: Config) -> RunEnvironment:
    """Build a worker's environment (plugins, memory backend, agent loader) from configuration.

    The default for every worker; pass ``build_environment=`` to :class:`ProcessExecutor` (a
    picklable, module-level callable) to build it differently.
    """
    return RunEnvironment.from_config(config)


def default_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` on Linux, ``spawn`` elsewhere: never ``fork`` from a threaded parent."""
    return multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")


# ---------------------------------------------------------------------------------------------
# Worker process
# ---------------------------------------------------------------------------------------------


def _worker_main(conn: multiprocessing.connection.Connection, config: Config, builder: bytes | None,
                 parent: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _adopt(parent)
    _exit_with_parent()
    send_lock = threading.Lock()  # agents may log from their own threads

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    environment, build_error = _build(config, builder)
    send(("ready", os.getpid()))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the runtime went away
            if message[0] != "run":
                return  # "stop"
            job: RunJob = message[1]
            if environment is None:  # retry: the failure may have been transient (a locked file)
                environment, build_error = _build(config, builder)
            if environment is None:
                from tickloop_executors import failure

                outcome = failure(job.run_id, build_error, prefix="the worker could not build its environment: ")
            else:
                outcome = _execute(environment, job, send)
            try:
                send(("done", job.run_id, outcome))
            except OSError:
                return
            except Exception as exc:  # the outcome does not pickle (a plugin returned something odd)
                from tickloop_executors import failure

                send(("done", job.run_id, failure(job.run_id, exc, prefix="the run's outcome could not be sent: ")))
    finally:
        if environment is not None:
            try:
                environment.memory.close()
            except Exception:
                pass


def _build(config: Config, builder: bytes | None) -> tuple[RunEnvironment | None, BaseException | None]:
    try:
        build = pickle.loads(builder) if builder is not None else build_environment
        return build(config), None
    except BaseException as exc:  # noqa: BLE001 - reported with every job instead
        return None, exc


def _execute(environment: RunEnvironment, job: RunJob, send: Callable[[tuple], None]) -> Any:
    def on_log(line: Any) -> None:
        try:
            send(("log", job.run_id, line))
        except Exception:
            pass  # the runtime is gone; the parent watcher ends this process

    try:
        return environment.execute(job, on_log=on_log)
    except BaseException as exc:  # noqa: BLE001 - a worker outlives anything a run raises
        from tickloop_executors import failure

        return failure(job.run_id, exc, prefix="error while executing the run: ")


def _parent_state() -> dict[str, Any]:
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    return {"environ": dict(os.environ), "cwd": cwd, "sys_path": list(sys.path)}


def _adopt(parent: dict[str, Any]) -> None:
    """Take the parent's environment as it is now (a forkserver child inherits the server's)."""
    os.environ.clear()
    os.environ.update(parent["environ"])
    if parent["cwd"]:
        try:
            os.chdir(parent["cwd"])
        except OSError:
            pass
    sys.path[:] = parent["sys_path"]


def _exit_with_parent() -> None:
    """End this worker when the runtime process dies, even in the middle of a hung run."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    try:
        sentinel = parent.sentinel
    except ValueError:
        return

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="tickloop-parent-watch", daemon=True).start()


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


class _Worker:
    __slots__ = ("process", "conn")

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: multiprocessing.connection.Connection) -> None:
        self.process = process
        self.conn = conn


class _Slot:
    """One driver thread and the worker it owns."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: _Worker | None = None
        self.busy = True  # False only while the driver waits for a job (close() then asks it to stop)
        self.start_error: str | None = None
        self.ready = threading.Event()  # set once the first worker was started (or failed to)
        self.thread: threading.Thread | None = None


class ProcessExecutor:
    """Runs jobs in a pool of worker processes; see the module documentation.

    :param config: the runtime configuration; sent to every worker, which builds its
        environment from it.
    :param workers: number of worker processes (default ``[runtime] workers``).
    :param build_environment: a picklable callable ``(config) -> RunEnvironment`` the workers
        call instead of :func:`build_environment`.
    :param mp_context: the multiprocessing context (default :func:`default_context`).
    :param startup_timeout: seconds a worker may take to get ready.
    :param kill_grace: seconds between SIGTERM and SIGKILL.
    """

    def __init__(self, config: Config, *, workers: int | None = None,
                 build_environment: Callable[[Config], RunEnvironment] | None = None,
                 mp_context: multiprocessing.context.BaseContext | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT, kill_grace: float = KILL_GRACE) -> None:
        if config.memory.backend in IN_PROCESS_MEMORY:
            raise ConfigError(Problem(
                str(config.path) if config.path else "configuration", "memory.backend",
                f"{config.memory.backend!r} keeps agent memory inside one process, but the 'process'"
                " executor runs agents in worker processes; use 'diskcache' (the default),"
                " or set runtime.executor = 'inline'",
            ))
        self.config = config
        self.workers = int(workers or config.runtime.workers)
        self._builder = pickle.dumps(build_environment) if build_environment is not None else None
        self._context = mp_context or default_context()
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
        each has built its environment (or failed to), or after ``timeout`` seconds."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot start: the process executor is closed")
            self._start_locked()
            slots = list(self._slots)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for slot in slots:
                slot.ready.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop every worker and driver thread; unfinished futures get ``failed`` outcomes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots)
            busy = [slot.worker for slot in slots if slot.busy and slot.worker is not None]
        self._fail_queued()
        for worker in busy:  # a running agent cannot be asked politely
            _signal(worker, terminate=True)
        for _ in slots:
            self._queue.put(_STOP)
        current = threading.current_thread()
        threads = [slot.thread for slot in slots if slot.thread is not None and slot.thread is not current]
        deadline = time.monotonic() + STOP_GRACE + self.kill_grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for slot in slots:  # a worker ignoring SIGTERM, or a driver stuck starting one
            worker = slot.worker
            if worker is not None and slot.thread is not current and slot.thread.is_alive():
                _signal(worker, terminate=False)
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
        """Process ids of the current workers (for monitoring and tests)."""
        with self._lock:
            return [slot.worker.process.pid for slot in self._slots
                    if slot.worker is not None and slot.worker.process.pid is not None]

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
            parent_conn, child_conn = self._context.Pipe(duplex=True)
            process = self._context.Process(
                target=_worker_main, args=(child_conn, self.config, self._builder, _parent_state()),
                name=f"tickloop-worker-{slot.index}", daemon=False,
            )
            process.start()
        except Exception as exc:
            from tickloop_executors import clean_text, describe

            slot.start_error = clean_text(f"could not start a worker process: {describe(exc)}")
            return
        child_conn.close()
        with self._lock:
            slot.worker = _Worker(process, parent_conn)
            closed = self._closed
        if closed:
            self._discard(slot)
            slot.start_error = "executor closed"
            return
        error = None
        try:
            if parent_conn.poll(self.startup_timeout):
                message = parent_conn.recv()
                if message[0] != "ready":
                    error = f"worker process sent {message[0]!r} instead of 'ready'"
            else:
                error = f"worker process was not ready within {self.startup_timeout:g} s"
        except (EOFError, OSError):
            code = self._discard(slot)
            slot.start_error = f"worker process exited with code {_code(code)} before it was ready"
            return
        if error is not None:
            self._discard(slot)
            slot.start_error = error
            return
        slot.start_error = None

    def _run(self, slot: _Slot, job: RunJob) -> RunOutcome:
        if slot.worker is None:
            self._start_worker(slot)  # one fresh attempt for every job while workers fail to start
            if slot.worker is None:
                return RunOutcome(job.run_id, FAILED, error=slot.start_error or "no worker process")
        worker = slot.worker
        timeout = job.timeout if job.timeout is not None else self.config.runtime.run_timeout_seconds
        try:
            data = ForkingPickler.dumps(("run", job))
        except Exception as exc:
            from tickloop_executors import failure

            return failure(job.run_id, exc, prefix="the run could not be sent to a worker: ")
        logs: list[Any] = []
        try:
            worker.conn.send_bytes(data)
        except OSError:
            return self._lost(slot, job, logs)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not worker.conn.poll(remaining):
                self._discard(slot)
                return RunOutcome(job.run_id, TIMED_OUT, error=f"timed out after {timeout:g} s", logs=tuple(logs))
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                return self._lost(slot, job, logs)
            except Exception as exc:  # an answer this process cannot unpickle
                from tickloop_executors import failure

                self._discard(slot)
                return failure(job.run_id, exc, prefix="could not read the worker's answer: ", logs=tuple(logs))
            if message[1] != job.run_id:
                continue  # a line logged by a thread the previous run left behind
            if message[0] == "log":
                logs.append(message[2])
            elif message[0] == "done":
                return message[2]

    def _lost(self, slot: _Slot, job: RunJob, logs: list[Any]) -> RunOutcome:
        """The worker's pipe closed during ``job``: it died, or close() killed it."""
        code = self._discard(slot)
        if self._closed:
            return RunOutcome(job.run_id, FAILED, error="executor closed while the run was in progress",
                              logs=tuple(logs))
        return RunOutcome(job.run_id, FAILED, error=f"worker process exited with code {_code(code)}", logs=tuple(logs))

    def _discard(self, slot: _Slot, *, graceful: bool = False) -> int | None:
        """Stop the slot's worker (ask it to exit when ``graceful``, else terminate, then kill);
        returns its exit code."""
        with self._lock:
            worker, slot.worker = slot.worker, None
        if worker is None:
            return None
        process = worker.process
        if graceful:
            try:
                worker.conn.send(("stop",))
            except Exception:
                pass
            process.join(STOP_GRACE)
        if process.exitcode is None:
            _signal(worker, terminate=True)
            process.join(self.kill_grace)
        if process.exitcode is None:
            _signal(worker, terminate=False)
            process.join(self.kill_grace + 5.0)
        worker.conn.close()
        code = process.exitcode
        if code is not None:
            process.close()
        return code

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


def _signal(worker: _Worker, *, terminate: bool) -> None:
    try:
        if terminate:
            worker.process.terminate()
        else:
            worker.process.kill()
    except (OSError, ValueError, AttributeError):
        pass  # already gone (or closed by its driver)


def _code(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)
