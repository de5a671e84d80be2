"""The built-in executors (``inline``, ``process``) and the built-in ``tickloop_run_call``."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest

import tickloop_executors
from tickloop import hookimpl
from tickloop.agents import AgentLoader
from tickloop.config import Config, MemorySection, PluginsSection, RuntimeSection
from tickloop.errors import UnknownAgentError
from tickloop.memory import MemoryItem
from tickloop.pluginmanager import NAME, PluginManager, make_plugin_manager
from tickloop.portfolio import Portfolio
from tickloop.registry import Registry
from tickloop.runner import RunEnvironment, RunJob, RunOutcome
from tickloop.runs import FAILED, SUCCEEDED, TIMED_OUT, LogLine
from tickloop_executors.inline import InlineExecutor
from tickloop_executors.process import ProcessExecutor

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WALLET = "0x" + "ab" * 20
RESULT_TIMEOUT = 30  # seconds a test waits for a future before it counts as a hang

MANIFEST = """\
name = "{name}"
tagline = "an executor test agent"
walletType = "ethereum"
allowedExecutionModes = ["auto"]
runtimeIntervalMinutes = 1
version = "0.1.0"
"""


def make_job(agent_ref: str, *, run_id: int = 1, session_id: int = 1, kind: str = "run", agent: str = "probe",
             timeout: float | None = None, portfolio: Portfolio | None = None,
             settings: dict[str, Any] | None = None) -> RunJob:
    return RunJob(run_id=run_id, session_id=session_id, agent=agent, agent_ref=agent_ref, wallet=WALLET,
                  mode="auto", kind=kind, settings=settings or {}, scheduled_at=NOW, started_at=NOW,
                  portfolio=portfolio if portfolio is not None else Portfolio(), frozen_now=NOW, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Inline: an environment built by hand, with agents that are plain functions.
# ---------------------------------------------------------------------------------------------


class DictMemory:
    """A minimal in-process memory backend."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], MemoryItem] = {}

    def set(self, scope: str, key: str, value: str, *, at: int) -> None:
        self.data[scope, key] = MemoryItem(key, value, at)

    def get(self, scope: str, key: str) -> MemoryItem | None:
        return self.data.get((scope, key))

    def delete(self, scope: str, key: str) -> bool:
        return self.data.pop((scope, key), None) is not None

    def list(self, scope: str, prefix: str = "", *, limit: int = 1000) -> list[MemoryItem]:
        return sorted((i for (s, k), i in self.data.items() if s == scope and k.startswith(prefix)),
                      key=lambda i: i.key)[:limit]

    def clear(self, scope: str) -> int:
        keys = [k for k in self.data if k[0] == scope]
        for k in keys:
            del self.data[k]
        return len(keys)

    def close(self) -> None:
        pass


class FunctionAgent:
    def __init__(self, name: str, run: Callable[..., Any], unwind: Callable[..., Any] | None = None) -> None:
        self.name = name
        self.run = run
        self.unwind = unwind


class DictLoader:
    """Agents by reference, from a dict."""

    def __init__(self, **agents: FunctionAgent) -> None:
        self.agents = agents

    def load(self, ref: str) -> FunctionAgent:
        try:
            return self.agents[ref]
        except KeyError:
            raise UnknownAgentError(f"unknown agent {ref!r}") from None


def plugin_manager(*plugins: Any) -> PluginManager:
    """A plugin manager with only the executors plugin (and ``plugins``)."""
    pm = PluginManager(NAME)
    from tickloop import hookspecs

    pm.add_hookspecs(hookspecs)
    pm.register(tickloop_executors, name="executors")
    for plugin in plugins:
        pm.register(plugin)
    return pm


def inline(*plugins: Any, **agents: FunctionAgent) -> InlineExecutor:
    pm = plugin_manager(*plugins)
    return InlineExecutor(RunEnvironment(hook=pm.hook, memory=DictMemory(), agents=DictLoader(**agents)))


def test_inline_success_keeps_logs() -> None:
    """A run that returns normally succeeds, with its log lines in order and the injected time."""
    def run(agent: Any) -> None:
        agent.log("starting")
        agent.log("careful", error=True)
        agent.memory.set("seen", "yes")

    executor = inline(probe=FunctionAgent("probe", run))
    future = executor.submit(make_job("probe", run_id=7))
    assert future.done()  # already resolved: the run happened in submit
    outcome = future.result(timeout=0)
    assert outcome.run_id == 7
    assert outcome.status == SUCCEEDED
    assert outcome.error is None
    assert [(line.level, line.message) for line in outcome.logs] == [("info", "starting"), ("error", "careful")]
    assert all(line.at == NOW for line in outcome.logs)


def test_inline_runs_in_the_callers_thread() -> None:
    """The inline executor calls the agent in the thread that submits the job."""
    seen: list[threading.Thread] = []
    executor = inline(probe=FunctionAgent("probe", lambda agent: seen.append(threading.current_thread())))
    executor.submit(make_job("probe")).result(timeout=0)
    assert seen == [threading.current_thread()]


def test_inline_exception_fails_with_error_and_traceback() -> None:
    """An exception in the agent becomes a failed outcome with "<Type>: <message>", the agent's
    line in the traceback, and the lines logged before it."""
    def run(agent: Any) -> None:
        agent.log("before")
        raise ValueError("price feed is down")  # the agent's line

    outcome = inline(probe=FunctionAgent("probe", run)).submit(make_job("probe")).result(timeout=0)
    assert outcome.status == FAILED
    assert outcome.error == "ValueError: price feed is down"
    assert 'raise ValueError("price feed is down")  # the agent\'s line' in outcome.traceback
    assert "in run" in outcome.traceback
    assert "tickloop_run_call" not in outcome.traceback  # starts at the agent's frame
    assert [line.message for line in outcome.logs] == ["before"]


def test_inline_system_exit_fails_and_does_not_stop_the_runtime() -> None:
    """An agent calling sys.exit gets a failed run; the caller keeps running."""
    def run(agent: Any) -> None:
        sys.exit(3)

    outcome = inline(probe=FunctionAgent("probe", run)).submit(make_job("probe")).result(timeout=0)
    assert outcome.status == FAILED
    assert outcome.error == "SystemExit: 3"
    assert "sys.exit(3)" in outcome.traceback


class Escape(BaseException):
    """What a hostile agent raises to get past ``except Exception``."""


@pytest.mark.parametrize("exc", [KeyboardInterrupt, Escape, GeneratorExit])
def test_inline_base_exceptions_fail_the_run_and_never_reach_the_caller(exc: type[BaseException]) -> None:
    """KeyboardInterrupt, or any BaseException an agent raises, is the run's failure, not the runtime's."""
    def run(agent: Any) -> None:
        agent.log("before")
        raise exc("stop the runtime")

    outcome = inline(probe=FunctionAgent("probe", run)).submit(make_job("probe")).result(timeout=0)
    assert outcome.status == FAILED
    assert outcome.error == f"{exc.__name__}: stop the runtime"
    assert [line.message for line in outcome.logs] == ["before"]


def test_error_message_is_cleaned_and_capped() -> None:
    """The error is one printable line of at most 1000 characters."""
    def run(agent: Any) -> None:
        raise RuntimeError("line one\nline two\x00\x1b[31m" + "x" * 5000)

    outcome = inline(probe=FunctionAgent("probe", run)).submit(make_job("probe")).result(timeout=0)
    assert len(outcome.error) == 1000
    assert outcome.error.startswith("RuntimeError: line one line two[31mxxx")
    assert outcome.error.isprintable()


def test_unwind_gets_the_portfolio() -> None:
    """unwind(agent, portfolio) receives the job's portfolio; a one-parameter unwind gets only the context."""
    portfolio = Portfolio(balances=({"symbol": "USDC", "amountRaw": "1000"},))
    received: list[Any] = []

    def unwind(agent: Any, positions: Any) -> None:
        received.append(positions)

    def unwind_one(agent: Any) -> None:
        received.append(agent.portfolio)

    executor = inline(two=FunctionAgent("two", lambda a: None, unwind),
                      one=FunctionAgent("one", lambda a: None, unwind_one))
    for ref in ("two", "one"):
        outcome = executor.submit(make_job(ref, kind="unwind", portfolio=portfolio)).result(timeout=0)
        assert outcome.status == SUCCEEDED
    assert received == [portfolio, portfolio]


def test_async_run_is_awaited() -> None:
    """An ``async def run`` is run to completion (the Circuit SDK would silently skip it)."""
    async def run(agent: Any) -> None:
        agent.log("awaited")

    outcome = inline(probe=FunctionAgent("probe", run)).submit(make_job("probe")).result(timeout=0)
    assert outcome.status == SUCCEEDED
    assert [line.message for line in outcome.logs] == ["awaited"]


def test_wrapper_plugin_sees_every_run_and_its_outcome() -> None:
    """A ``wrapper=True`` tickloop_run_call sees each job and the outcome, failures included."""
    class Timing:
        def __init__(self) -> None:
            self.seen: list[tuple[int, str, str]] = []

        @hookimpl(wrapper=True)
        def tickloop_run_call(self, job: RunJob, context: Any, function: Any) -> Any:
            context.log("wrapped")
            outcome = yield
            self.seen.append((job.run_id, job.kind, outcome.status))
            return outcome

    def fail(agent: Any) -> None:
        raise RuntimeError("no")

    timing = Timing()
    executor = inline(timing, ok=FunctionAgent("ok", lambda a: None), bad=FunctionAgent("bad", fail))
    first = executor.submit(make_job("ok", run_id=1)).result(timeout=0)
    executor.submit(make_job("bad", run_id=2)).result(timeout=0)
    executor.submit(make_job("ok", run_id=3, kind="unwind")).result(timeout=0)  # no unwind: not called
    assert [line.message for line in first.logs] == ["wrapped"]
    assert timing.seen == [(1, "run", SUCCEEDED), (2, "run", FAILED)]


def test_inline_plugin_error_becomes_a_failed_outcome() -> None:
    """An exception escaping a plugin's wrapper still resolves the future to a failed outcome."""
    class Broken:
        @hookimpl(wrapper=True)
        def tickloop_run_call(self) -> Any:
            yield
            raise LookupError("plugin bug")

    outcome = inline(Broken(), probe=FunctionAgent("probe", lambda a: None)).submit(make_job("probe")).result(timeout=0)
    assert outcome.status == FAILED
    assert outcome.error == "error while executing the run: LookupError: plugin bug"


def test_inline_refuses_jobs_after_close() -> None:
    """submit after close is a programming error."""
    executor = inline(probe=FunctionAgent("probe", lambda a: None))
    executor.close()
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(make_job("probe"))


def test_executors_are_registered() -> None:
    """The built-in plugin registers ``inline`` and ``process`` under the executor family."""
    registry = Registry.from_plugin_manager(make_plugin_manager(autoload=False))
    assert {"inline", "process"} <= set(registry.names("executor"))
    assert registry.get("executor", "inline", key="runtime.executor").plugin == "executors"


def test_jobs_outcomes_and_config_pickle(tmp_path: Path) -> None:
    """What crosses the process boundary pickles and compares equal after the round trip."""
    job = make_job("/agents/probe", portfolio=Portfolio(positions=({"coin": "ETH", "size": "1"},)),
                   settings={"size": 3}, timeout=2.5)
    outcome = RunOutcome(1, FAILED, error="x", traceback="tb", logs=(LogLine(NOW, "info", "hello"),))
    config = Config.load(home=tmp_path, env={"TICKLOOP_RUNTIME__WORKERS": "3"})
    for value in (job, outcome, config):
        assert pickle.loads(pickle.dumps(value)) == value


# ---------------------------------------------------------------------------------------------
# Process: real worker processes, real agent folders, the diskcache memory backend.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def write_agent(tmp_path: Path) -> Callable[[str, str], str]:
    """Write an agent folder (circuit.toml + main.py) and return its absolute path."""
    def write(name: str, main: str) -> str:
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True)
        (folder / "circuit.toml").write_text(MANIFEST.format(name=name))
        (folder / "main.py").write_text(textwrap.dedent(main))
        return str(folder)

    return write


@pytest.fixture
def process_config(tmp_path: Path) -> Config:
    home = tmp_path / "home"
    home.mkdir()
    return Config(home=home, runtime=RuntimeSection(workers=2, run_timeout_seconds=30),
                  memory=MemorySection(backend="memory"))


@pytest.fixture
def memory() -> DictMemory:
    """The runtime's memory backend: workers reach it through the run's channel."""
    return DictMemory()


def environment(memory: DictMemory) -> RunEnvironment:
    """The runtime's side of runs, with no venues: agents, memory and the executors plugin."""
    return RunEnvironment(hook=plugin_manager().hook, memory=memory, agents=AgentLoader())


@pytest.fixture
def make_pool(process_config: Config, memory: DictMemory) -> Any:
    made: list[ProcessExecutor] = []

    def make(config: Config = process_config, **options: Any) -> ProcessExecutor:
        executor = ProcessExecutor(config, environment(memory), **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


def test_process_success_with_logs_and_memory(make_pool: Any, memory: DictMemory,
                                              write_agent: Callable[[str, str], str]) -> None:
    """A run in a worker succeeds with its logs; its memory writes reach the runtime's backend."""
    ref = write_agent("writer", """
        import os

        def run(agent):
            agent.log("in a worker")
            agent.memory.set("pid", str(os.getpid()))
            agent.memory.set("note", "shared", shared=True)
    """)
    pool = make_pool()
    outcome = pool.submit(make_job(ref, run_id=11, session_id=4, agent="writer")).result(timeout=RESULT_TIMEOUT)
    assert outcome.status == SUCCEEDED, outcome
    assert outcome.run_id == 11
    assert [(line.level, line.message) for line in outcome.logs] == [("info", "in a worker")]
    pid = memory.get("session:4", "pid")
    assert pid is not None and int(pid.value) != os.getpid()
    assert memory.get("agent:writer", "note").value == "shared"


def test_process_exception_fails_with_traceback(make_pool: Any, write_agent: Callable[[str, str], str]) -> None:
    """An exception in a worker's agent is a failed outcome with the agent's traceback and logs."""
    ref = write_agent("raiser", """
        def run(agent):
            agent.log("about to fail")
            raise KeyError("missing market")
    """)
    outcome = make_pool().submit(make_job(ref)).result(timeout=RESULT_TIMEOUT)
    assert outcome.status == FAILED
    assert outcome.error == "KeyError: 'missing market'"
    assert 'raise KeyError("missing market")' in outcome.traceback
    assert "main.py" in outcome.traceback
    assert [line.message for line in outcome.logs] == ["about to fail"]


def test_process_hung_agent_times_out_and_the_session_goes_on(make_pool: Any,
                                                             write_agent: Callable[[str, str], str]) -> None:
    """A hung agent is killed at its timeout (timed_out, earlier lines kept) and the next job succeeds."""
    ref = write_agent("sleeper", """
        import time

        def run(agent):
            agent.log("going to sleep")
            if agent.settings.get("hang"):
                time.sleep(1000)
    """)
    pool = make_pool(workers=1)
    pool.start()
    [first_pid] = pool.pids()
    started = time.monotonic()
    outcome = pool.submit(make_job(ref, run_id=1, timeout=1, settings={"hang": True})).result(timeout=RESULT_TIMEOUT)
    elapsed = time.monotonic() - started
    assert outcome.status == TIMED_OUT
    assert outcome.error == "timed out after 1 s"
    assert [line.message for line in outcome.logs] == ["going to sleep"]
    assert 1 <= elapsed < 1 + pool.kill_grace + 2
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE

    after = pool.submit(make_job(ref, run_id=2, timeout=1)).result(timeout=RESULT_TIMEOUT)
    assert after.status == SUCCEEDED
    assert pool.pids() != [first_pid]  # a fresh worker


def test_process_timeout_defaults_to_the_config(make_pool: Any, process_config: Config,
                                                write_agent: Callable[[str, str], str]) -> None:
    """A job without its own timeout gets ``runtime.run_timeout_seconds``."""
    ref = write_agent("spinner", """
        def run(agent):
            while True:
                pass
    """)
    config = Config(home=process_config.home, runtime=RuntimeSection(workers=1, run_timeout_seconds=0.5),
                    memory=process_config.memory)
    outcome = make_pool(config).submit(make_job(ref, timeout=None)).result(timeout=RESULT_TIMEOUT)
    assert outcome.status == TIMED_OUT
    assert outcome.error == "timed out after 0.5 s"


def test_process_worker_crash_fails_the_run_and_the_pool_recovers(make_pool: Any,
                                                                 write_agent: Callable[[str, str], str]) -> None:
    """A worker that dies (os._exit) fails its run with the exit code; the next job runs on a new worker."""
    ref = write_agent("crasher", """
        import os

        def run(agent):
            agent.log("bye")
            if agent.settings.get("crash"):
                os._exit(3)
    """)
    pool = make_pool(workers=1)
    outcome = pool.submit(make_job(ref, run_id=1, settings={"crash": True})).result(timeout=RESULT_TIMEOUT)
    assert outcome.status == FAILED
    assert outcome.error == "worker process exited with code 3"
    assert [line.message for line in outcome.logs] == ["bye"]
    again = pool.submit(make_job(ref, run_id=2)).result(timeout=RESULT_TIMEOUT)
    assert again.status == SUCCEEDED


def test_process_runs_sessions_concurrently(make_pool: Any, write_agent: Callable[[str, str], str]) -> None:
    """Two one-second runs of different sessions on two workers take about one second, not two."""
    ref = write_agent("napper", """
        import time

        def run(agent):
            time.sleep(1)
    """)
    pool = make_pool(workers=2)
    pool.start()
    started = time.monotonic()
    futures = [pool.submit(make_job(ref, run_id=i, session_id=i)) for i in (1, 2)]
    outcomes = [f.result(timeout=RESULT_TIMEOUT) for f in futures]
    elapsed = time.monotonic() - started
    assert [o.status for o in outcomes] == [SUCCEEDED, SUCCEEDED]
    assert elapsed < 1.6, f"two 1 s runs took {elapsed:.2f} s"


def wait_running(future: Any) -> None:
    """Wait until a driver thread took the job from the queue."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while not future.running() and not future.done():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.005)


def live_children() -> set[int]:
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_process_close_leaves_no_child_processes(process_config: Config, memory: DictMemory,
                                                 write_agent: Callable[[str, str], str]) -> None:
    """close() stops every worker (idle and busy) and driver thread promptly."""
    ref = write_agent("mixed", """
        import time

        def run(agent):
            if agent.settings.get("hang"):
                time.sleep(1000)
    """)
    before = live_children()
    pool = ProcessExecutor(process_config, environment(memory))  # 2 workers
    pool.start()
    workers = set(pool.pids())
    assert len(workers) == 2 and workers <= live_children()
    hung = pool.submit(make_job(ref, run_id=1, settings={"hang": True}))
    wait_running(hung)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert hung.result(timeout=RESULT_TIMEOUT).error == "executor closed while the run was in progress"
    assert live_children() - before == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("tickloop-executor-")]
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(make_job(ref))


def test_process_close_fails_pending_jobs(make_pool: Any, write_agent: Callable[[str, str], str]) -> None:
    """close() with a running and a queued job resolves both futures with failed outcomes, no deadlock."""
    ref = write_agent("blocker", """
        import time

        def run(agent):
            agent.log("holding the only worker")
            time.sleep(1000)
    """)
    pool = make_pool(workers=1)
    running = pool.submit(make_job(ref, run_id=1))
    queued = pool.submit(make_job(ref, run_id=2))
    wait_running(running)
    pool.close()
    first, second = running.result(timeout=RESULT_TIMEOUT), queued.result(timeout=RESULT_TIMEOUT)
    assert (first.run_id, first.status, first.error) == (1, FAILED, "executor closed while the run was in progress")
    assert (second.run_id, second.status, second.error) == (2, FAILED, "executor closed before the run started")


MARKER_PLUGIN = """
from tickloop import hookimpl

@hookimpl(wrapper=True)
def tickloop_run_call(context):
    context.log("wrapped by marker_plugin")
    return (yield)
"""


def test_process_workers_load_the_configured_plugins(make_pool: Any, process_config: Config, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     write_agent: Callable[[str, str], str]) -> None:
    """A ``[plugins] load`` module is registered in the workers, so its run wrapper runs there."""
    (tmp_path / "plugin_src").mkdir()
    (tmp_path / "plugin_src" / "marker_plugin.py").write_text(MARKER_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin_src"))
    ref = write_agent("plain", """
        def run(agent):
            agent.log("plain run")
    """)
    config = attrs.evolve(process_config, plugins=PluginsSection(load=["marker_plugin"]))
    outcome = make_pool(config).submit(make_job(ref)).result(timeout=RESULT_TIMEOUT)
    assert outcome.status == SUCCEEDED, outcome
    assert [line.message for line in outcome.logs] == ["wrapped by marker_plugin", "plain run"]


def test_process_unknown_agent_fails(make_pool: Any, tmp_path: Path) -> None:
    """An agent reference the worker cannot load is a failed run, and the worker survives."""
    outcome = make_pool().submit(make_job(str(tmp_path / "nowhere"))).result(timeout=RESULT_TIMEOUT)
    assert outcome.status == FAILED
    assert "nowhere" in outcome.error


def test_process_agents_share_the_runtimes_in_process_memory(make_pool: Any, memory: DictMemory,
                                                              write_agent: Callable[[str, str], str]) -> None:
    """Memory lives in the runtime, so even the ``memory`` backend works with worker processes:
    what one worker writes, a run on another worker reads."""
    ref = write_agent("counter", """
        def run(agent):
            n = int(agent.memory.get("n", shared=True).data.value or 0)
            agent.memory.set("n", str(n + 1), shared=True)
    """)
    pool = make_pool(workers=2)
    for i in range(4):
        assert pool.submit(make_job(ref, run_id=i, session_id=i, agent="counter")).result(
            timeout=RESULT_TIMEOUT).status == SUCCEEDED
    assert memory.get("agent:counter", "n").value == "4"


def test_per_run_overhead(make_pool: Any, write_agent: Callable[[str, str], str],
                          capsys: pytest.CaptureFixture[str]) -> None:
    """A no-op run round trip through a worker stays cheap (reported next to inline's)."""
    ref = write_agent("noop", """
        def run(agent):
            pass
    """)
    pool = make_pool(workers=1)
    pool.submit(make_job(ref)).result(timeout=RESULT_TIMEOUT)  # warm: worker started, agent imported
    n = 200
    started = time.perf_counter()
    for i in range(n):
        assert pool.submit(make_job(ref, run_id=i)).result(timeout=RESULT_TIMEOUT).status == SUCCEEDED
    process_ms = (time.perf_counter() - started) / n * 1000

    executor = inline(noop=FunctionAgent("noop", lambda agent: None))
    started = time.perf_counter()
    for i in range(n):
        executor.submit(make_job("noop", run_id=i)).result(timeout=0)
    inline_ms = (time.perf_counter() - started) / n * 1000
    with capsys.disabled():
        print(f"\nper-run overhead: process {process_ms:.3f} ms, inline {inline_ms:.3f} ms")
    assert process_ms < 50
