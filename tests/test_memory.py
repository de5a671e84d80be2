"""Memory backends: a conformance suite run against every installed backend, plus diskcache's
durability across restarts, SIGKILL and concurrent processes, and the ``agent.memory`` facade.

The ``memory_backend`` fixture is parametrized by the memory backends the registry finds, so a
third-party backend that is installed (an entry point in ``tickloop.plugins``) runs this suite
too. Each backend is built exactly as the runtime builds it: plugin manager, registry, factory.
"""

from __future__ import annotations

import pickle
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest

from tickloop.config import Config
from tickloop.memory import LIST_LIMIT, Memory, MemoryBackend, MemoryItem, agent_scope, session_scope
from tickloop.pluginmanager import make_plugin_manager
from tickloop.registry import Registry

AT = 1_700_000_000
SESSION = session_scope(1)


def installed_memory_backends() -> list[str]:
    """Names of every memory backend the installed plugins register."""
    return Registry.from_plugin_manager(make_plugin_manager()).names("memory")


def build_backend(name: str, home: Path) -> MemoryBackend:
    """Build the memory backend ``name`` the way the runtime does, with ``home`` as the home folder."""
    config = Config.load(home=home, env={})
    registry = Registry.from_plugin_manager(make_plugin_manager())
    return registry.get("memory", name, key="memory.backend").factory(config)


@pytest.fixture(params=installed_memory_backends())
def memory_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryBackend]:
    """A fresh backend of each installed kind, in its own home folder."""
    backend = build_backend(request.param, tmp_path)
    try:
        yield backend
    finally:
        backend.close()


def keys_of(items: list[MemoryItem]) -> list[str]:
    return [item.key for item in items]


# ---------------------------------------------------------------------------------------------
# Conformance: every backend.
# ---------------------------------------------------------------------------------------------


def test_registry_offers_the_built_in_backends() -> None:
    """The built-in plugins register the ``memory`` and ``diskcache`` memory backends."""
    assert {"memory", "diskcache"} <= set(installed_memory_backends())


def test_set_then_get_returns_value_and_updated_at(memory_backend: MemoryBackend) -> None:
    """A stored value comes back with the ``at`` it was set with as an integer ``updated_at``."""
    memory_backend.set(SESSION, "price", "101.5", at=AT)
    item = memory_backend.get(SESSION, "price")
    assert item == MemoryItem("price", "101.5", AT)
    assert type(item.updated_at) is int


def test_set_overwrites_value_and_updated_at(memory_backend: MemoryBackend) -> None:
    """Setting a key again replaces both its value and its ``updated_at``."""
    memory_backend.set(SESSION, "price", "1", at=AT)
    memory_backend.set(SESSION, "price", "2", at=AT + 60)
    assert memory_backend.get(SESSION, "price") == MemoryItem("price", "2", AT + 60)
    assert [(i.key, i.updated_at) for i in memory_backend.list(SESSION)] == [("price", AT + 60)]


def test_set_same_second_still_replaces_value(memory_backend: MemoryBackend) -> None:
    """Overwriting a key within the same second still stores the new value."""
    memory_backend.set(SESSION, "k", "old", at=AT)
    memory_backend.set(SESSION, "k", "new", at=AT)
    assert memory_backend.get(SESSION, "k") == MemoryItem("k", "new", AT)


@pytest.mark.parametrize("value", ["", "plain", "ünïcødé ✓ 🙂", "line\nbreak:colon/slash", "x" * 100_000,
                                   '{"json": [1, 2]}', "12:34"])
def test_values_round_trip_exactly(memory_backend: MemoryBackend, value: str) -> None:
    """Any string value, empty, unicode, with separators or 100 kB long, reads back unchanged."""
    memory_backend.set(SESSION, "k", value, at=AT)
    assert memory_backend.get(SESSION, "k") == MemoryItem("k", value, AT)


def test_get_missing_key_returns_none(memory_backend: MemoryBackend) -> None:
    """A key never set reads as None, in an empty scope and in a scope with other keys."""
    assert memory_backend.get(SESSION, "nope") is None
    memory_backend.set(SESSION, "other", "v", at=AT)
    assert memory_backend.get(SESSION, "nope") is None


def test_delete_present_key_returns_true_and_removes_it(memory_backend: MemoryBackend) -> None:
    """Deleting a stored key answers True and the key is gone from get and list."""
    memory_backend.set(SESSION, "a", "1", at=AT)
    memory_backend.set(SESSION, "b", "2", at=AT)
    assert memory_backend.delete(SESSION, "a") is True
    assert memory_backend.get(SESSION, "a") is None
    assert keys_of(memory_backend.list(SESSION)) == ["b"]


def test_delete_absent_key_returns_false(memory_backend: MemoryBackend) -> None:
    """Deleting a key that is not there answers False without raising, even twice."""
    assert memory_backend.delete(SESSION, "ghost") is False
    memory_backend.set(SESSION, "a", "1", at=AT)
    assert memory_backend.delete(SESSION, "a") is True
    assert memory_backend.delete(SESSION, "a") is False


def test_key_can_be_set_again_after_delete(memory_backend: MemoryBackend) -> None:
    """A deleted key can be stored again and is listed again."""
    memory_backend.set(SESSION, "a", "1", at=AT)
    memory_backend.delete(SESSION, "a")
    memory_backend.set(SESSION, "a", "2", at=AT + 1)
    assert memory_backend.get(SESSION, "a") == MemoryItem("a", "2", AT + 1)
    assert [(i.key, i.updated_at) for i in memory_backend.list(SESSION)] == [("a", AT + 1)]


def test_list_empty_scope_is_empty(memory_backend: MemoryBackend) -> None:
    """Listing a scope that never had keys gives an empty list."""
    assert memory_backend.list(SESSION) == []
    assert memory_backend.list(SESSION, "p") == []


def test_list_is_sorted_lexicographically(memory_backend: MemoryBackend) -> None:
    """List orders keys by code point, whatever the insertion order."""
    keys = ["b", "a", "B", "a10", "a2", "é", "_", "0", "a:1", "a/1", "ab"]
    for n, key in enumerate(keys):
        memory_backend.set(SESSION, key, str(n), at=AT + n)
    items = memory_backend.list(SESSION)
    assert keys_of(items) == sorted(keys)
    assert {i.key: i.updated_at for i in items} == {k: AT + n for n, k in enumerate(keys)}


def test_list_filters_by_prefix(memory_backend: MemoryBackend) -> None:
    """Only keys starting with the prefix are listed; the empty prefix lists everything."""
    for key in ["pos:btc", "pos:eth", "pos", "po", "posx", "order:1", "q"]:
        memory_backend.set(SESSION, key, "v", at=AT)
    assert keys_of(memory_backend.list(SESSION, "pos:")) == ["pos:btc", "pos:eth"]
    assert keys_of(memory_backend.list(SESSION, "pos")) == ["pos", "pos:btc", "pos:eth", "posx"]
    assert keys_of(memory_backend.list(SESSION, "zzz")) == []
    assert len(memory_backend.list(SESSION, "")) == 7


def test_list_returns_at_most_1000_of_1200_keys(memory_backend: MemoryBackend) -> None:
    """With 1200 keys, list returns the first 1000 in order, each with its updated_at."""
    keys = [f"k{n:04d}" for n in range(1200)]
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    for key in shuffled:
        memory_backend.set(SESSION, key, f"value of {key}", at=AT + int(key[1:]))
    items = memory_backend.list(SESSION)
    assert len(items) == LIST_LIMIT == 1000
    assert keys_of(items) == keys[:1000]
    assert all(i.updated_at == AT + int(i.key[1:]) for i in items)
    # Values are optional in list results; when given they must be right.
    assert all(i.value in (None, f"value of {i.key}") for i in items)


def test_list_prefix_and_limit_across_many_keys(memory_backend: MemoryBackend) -> None:
    """Prefixes in the middle of a large scope and explicit limits give exactly the matching keys."""
    for n in range(1200):
        memory_backend.set(SESSION, f"k{n:04d}", "v", at=AT)
    assert keys_of(memory_backend.list(SESSION, "k05")) == [f"k{n:04d}" for n in range(500, 600)]
    assert keys_of(memory_backend.list(SESSION, "k1", limit=5)) == [f"k{n:04d}" for n in range(1000, 1005)]
    assert keys_of(memory_backend.list(SESSION, "k0999")) == ["k0999"]
    assert memory_backend.list(SESSION, limit=0) == []


def test_list_follows_random_sets_and_deletes(memory_backend: MemoryBackend) -> None:
    """After thousands of random sets and deletes, list and get agree with a plain dict."""
    rnd = random.Random(3)
    pool = [f"{rnd.choice('abc')}{rnd.randrange(3000):04d}" for _ in range(900)]
    model: dict[str, int] = {}
    for n in range(4000):
        key = rnd.choice(pool)
        if rnd.random() < 0.7:
            memory_backend.set(SESSION, key, f"v{n}", at=n)
            model[key] = n
        else:
            assert memory_backend.delete(SESSION, key) is (model.pop(key, None) is not None)
        if n % 500 == 0:
            prefix = rnd.choice(["", "a", "b1", "c0"])
            expected = sorted((k, at) for k, at in model.items() if k.startswith(prefix))[:LIST_LIMIT]
            assert [(i.key, i.updated_at) for i in memory_backend.list(SESSION, prefix)] == expected
    assert [(i.key, i.updated_at) for i in memory_backend.list(SESSION, limit=5000)] == sorted(model.items())
    for key in pool[:50]:
        got = memory_backend.get(SESSION, key)
        assert (got.updated_at if got else None) == model.get(key)


def test_two_sessions_are_isolated(memory_backend: MemoryBackend) -> None:
    """The same key in two sessions holds two values, and deleting one leaves the other."""
    one, two = session_scope(1), session_scope(2)
    memory_backend.set(one, "k", "first", at=AT)
    memory_backend.set(two, "k", "second", at=AT + 1)
    assert memory_backend.get(one, "k") == MemoryItem("k", "first", AT)
    assert memory_backend.get(two, "k") == MemoryItem("k", "second", AT + 1)
    memory_backend.delete(one, "k")
    assert memory_backend.get(one, "k") is None
    assert keys_of(memory_backend.list(two)) == ["k"]


def test_two_agents_shared_scopes_are_isolated(memory_backend: MemoryBackend) -> None:
    """Two agents' shared scopes never see each other's keys."""
    memory_backend.set(agent_scope("hello"), "k", "h", at=AT)
    memory_backend.set(agent_scope("world"), "k", "w", at=AT)
    memory_backend.set(agent_scope("hello"), "only-hello", "h", at=AT)
    assert memory_backend.get(agent_scope("world"), "k").value == "w"
    assert keys_of(memory_backend.list(agent_scope("world"))) == ["k"]
    assert keys_of(memory_backend.list(agent_scope("hello"))) == ["k", "only-hello"]


def test_session_and_shared_scopes_are_isolated(memory_backend: MemoryBackend) -> None:
    """A session's key and the agent's shared key of the same name are separate."""
    memory_backend.set(session_scope(1), "k", "mine", at=AT)
    memory_backend.set(agent_scope("1"), "k", "ours", at=AT)
    assert memory_backend.get(session_scope(1), "k").value == "mine"
    assert memory_backend.get(agent_scope("1"), "k").value == "ours"
    assert memory_backend.get(session_scope(2), "k") is None


# Pairs that collide when scope and key are joined naively with ':' or '/'.
TRICKY = [
    ("session:1", "2:x"), ("session:12", "x"), ("session:1", "2"), ("session:12", ""),
    ("agent:a", "b/c"), ("agent:a/b", "c"), ("agent:a", ":b"), ("agent:a:", "b"),
    ("agent:é", "ключ"), ("agent:é", "键/🙂"), ("agent:e", "ключ"), ("session:1", "v9:session:1:x"),
    ("session:1", "p9:session:1:0"), ("session:1", "d9:session:1:"), ("agent:x", "nul\x00byte"),
]


def test_tricky_keys_do_not_collide_across_scopes(memory_backend: MemoryBackend) -> None:
    """Keys with colons, slashes, unicode or encoded-looking names stay in their own scope."""
    pairs = [(s, k) for s, k in TRICKY if k]
    for n, (scope, key) in enumerate(pairs):
        memory_backend.set(scope, key, f"value {n}", at=AT + n)
    for n, (scope, key) in enumerate(pairs):
        assert memory_backend.get(scope, key) == MemoryItem(key, f"value {n}", AT + n)
    for scope in {s for s, _ in pairs}:
        assert keys_of(memory_backend.list(scope)) == sorted(k for s, k in pairs if s == scope)
    assert memory_backend.get("session:12", "2:x") is None
    assert memory_backend.get("session:1", "x") is None
    assert memory_backend.list("session:") == []


def test_scope_that_prefixes_another_lists_only_its_own(memory_backend: MemoryBackend) -> None:
    """``session:1`` does not list the keys of ``session:10`` or ``session:1x``."""
    memory_backend.set("session:1", "a", "1", at=AT)
    memory_backend.set("session:10", "a", "10", at=AT)
    memory_backend.set("session:1x", "b", "x", at=AT)
    assert keys_of(memory_backend.list("session:1")) == ["a"]
    assert memory_backend.clear("session:1") == 1
    assert memory_backend.get("session:10", "a").value == "10"
    assert memory_backend.get("session:1x", "b").value == "x"


def test_clear_removes_only_its_scope_and_counts(memory_backend: MemoryBackend) -> None:
    """Clear empties one scope, returns how many keys it removed and leaves other scopes intact."""
    for n in range(300):
        memory_backend.set(session_scope(1), f"k{n}", "v", at=AT)
    memory_backend.set(session_scope(2), "k1", "keep", at=AT)
    memory_backend.set(agent_scope("hello"), "k1", "shared", at=AT)
    assert memory_backend.clear(session_scope(1)) == 300
    assert memory_backend.list(session_scope(1)) == []
    assert memory_backend.get(session_scope(1), "k1") is None
    assert memory_backend.get(session_scope(2), "k1").value == "keep"
    assert memory_backend.get(agent_scope("hello"), "k1").value == "shared"
    assert memory_backend.clear(session_scope(1)) == 0
    memory_backend.set(session_scope(1), "again", "v", at=AT)
    assert keys_of(memory_backend.list(session_scope(1))) == ["again"]


def test_clear_of_unknown_scope_returns_zero(memory_backend: MemoryBackend) -> None:
    """Clearing a scope that never held keys removes nothing."""
    assert memory_backend.clear(session_scope(404)) == 0


def test_threads_setting_distinct_keys_lose_nothing(memory_backend: MemoryBackend) -> None:
    """Many threads setting distinct keys in one shared scope and their own scopes all land."""
    threads, per_thread = 8, 60
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                memory_backend.set(agent_scope("hello"), f"t{t}-{n:03d}", str(n), at=AT + n)
                memory_backend.set(session_scope(t), f"k{n:03d}", str(t), at=AT)
                memory_backend.list(agent_scope("hello"), f"t{t}-")
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    expected = sorted(f"t{t}-{n:03d}" for t in range(threads) for n in range(per_thread))
    assert keys_of(memory_backend.list(agent_scope("hello"))) == expected
    for t in range(threads):
        assert len(memory_backend.list(session_scope(t))) == per_thread
        assert memory_backend.get(agent_scope("hello"), f"t{t}-007") == MemoryItem(f"t{t}-007", "7", AT + 7)


def test_non_string_arguments_are_refused(memory_backend: MemoryBackend) -> None:
    """A non-string value or key raises TypeError and stores nothing."""
    with pytest.raises(TypeError):
        memory_backend.set(SESSION, "k", 5, at=AT)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        memory_backend.set(SESSION, 5, "v", at=AT)  # type: ignore[arg-type]
    assert memory_backend.list(SESSION) == []


# ---------------------------------------------------------------------------------------------
# diskcache: durability and processes.
# ---------------------------------------------------------------------------------------------

CHILD_PRELUDE = textwrap.dedent("""
    import sys, time
    from tickloop.config import Config
    from tickloop.pluginmanager import make_plugin_manager
    from tickloop.registry import Registry
    backend = (Registry.from_plugin_manager(make_plugin_manager())
               .get("memory", "diskcache", key="memory.backend").factory(Config.load(home=sys.argv[1], env={})))
""")


def spawn(code: str, home: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start a Python child that has ``backend``, the diskcache backend on ``home``."""
    return subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), str(home), *args],
                            text=True, **kwargs)


@pytest.fixture
def disk_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_diskcache_keeps_data_under_home_memory_without_eviction(disk_home: Path) -> None:
    """The diskcache backend stores its data in ``<home>/memory`` with eviction turned off."""
    backend = build_backend("diskcache", disk_home)
    backend.set(SESSION, "k", "v", at=AT)
    backend.close()
    assert (disk_home / "memory" / "cache.db").is_file()
    with diskcache.Cache(str(disk_home / "memory")) as raw:  # settings are read back from the database
        assert raw.eviction_policy == "none"
        assert raw.size_limit >= 2**60


def test_diskcache_data_survives_close_and_reopen(disk_home: Path) -> None:
    """Values, order, updated_at and deletions are all there after a restart."""
    backend = build_backend("diskcache", disk_home)
    for n in range(400):
        backend.set(SESSION, f"k{n:03d}", f"v{n}", at=AT + n)
    backend.set(agent_scope("hello"), "shared", "s", at=AT)
    backend.delete(SESSION, "k000")
    backend.close()
    reopened = build_backend("diskcache", disk_home)
    try:
        assert reopened.get(SESSION, "k123") == MemoryItem("k123", "v123", AT + 123)
        assert reopened.get(SESSION, "k000") is None
        assert keys_of(reopened.list(SESSION, limit=5000)) == [f"k{n:03d}" for n in range(1, 400)]
        assert reopened.get(agent_scope("hello"), "shared").value == "s"
    finally:
        reopened.close()


def test_diskcache_backend_pickles_to_the_same_data(disk_home: Path) -> None:
    """A pickled backend (as sent to a worker process) reopens the same directory."""
    backend = build_backend("diskcache", disk_home)
    backend.set(SESSION, "k", "v", at=AT)
    clone = pickle.loads(pickle.dumps(backend))
    try:
        assert clone.get(SESSION, "k") == MemoryItem("k", "v", AT)
    finally:
        clone.close()
        backend.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_diskcache_acknowledged_sets_survive_sigkill(disk_home: Path) -> None:
    """Every set a child acknowledged is readable after the child is SIGKILLed mid-stream."""
    build_backend("diskcache", disk_home).close()  # create the directory before the race
    child = spawn("""
        backend.set("session:1", "first", "one", at=1)
        print("acked first", flush=True)
        n = 0
        while True:
            backend.set("session:1", f"k{n:06d}", f"v{n}", at=n)
            print(f"acked {n}", flush=True)
            n += 1
    """, disk_home, stdout=subprocess.PIPE)
    assert child.stdout is not None
    acked = -1
    try:
        assert child.stdout.readline().strip() == "acked first"
        while acked < 600:  # enough to have split index pages
            line = child.stdout.readline()
            assert line.startswith("acked "), line
            acked = int(line.split()[1])
        child.send_signal(signal.SIGKILL)  # right after reading the acknowledgement
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    backend = build_backend("diskcache", disk_home)
    try:
        assert backend.get("session:1", "first") == MemoryItem("first", "one", 1)
        assert backend.get("session:1", f"k{acked:06d}") == MemoryItem(f"k{acked:06d}", f"v{acked}", acked)
        listed = keys_of(backend.list("session:1", "k", limit=100_000))
        assert listed[:acked + 1] == [f"k{n:06d}" for n in range(acked + 1)]
        # Whatever the child wrote after that is complete or absent: the index matches the values.
        assert all(backend.get("session:1", key) is not None for key in listed[acked + 1:])
    finally:
        backend.close()


def test_diskcache_two_processes_writing_one_scope_lose_nothing(disk_home: Path) -> None:
    """Two processes interleaving sets (and page splits) in one scope keep every key."""
    go = disk_home.parent / "go"
    code = """
        from pathlib import Path
        tag, go = sys.argv[2], Path(sys.argv[3])
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.001)
        for n in range(500):
            backend.set("agent:hello", f"k{n:04d}{tag}", tag, at=n)
            backend.set("agent:hello", "last", tag, at=n)
            if n % 100 == 0:
                backend.list("agent:hello")
        backend.close()
    """
    children = [spawn(code, disk_home, tag, str(go), stdout=subprocess.PIPE) for tag in "ab"]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    go.touch()
    for child in children:
        assert child.wait(timeout=120) == 0
        child.stdout.close()
    backend = build_backend("diskcache", disk_home)
    try:
        expected = sorted([f"k{n:04d}{t}" for n in range(500) for t in "ab"] + ["last"])
        assert keys_of(backend.list("agent:hello", limit=5000)) == expected
        assert backend.get("agent:hello", "k0499a") == MemoryItem("k0499a", "a", 499)
        assert backend.get("agent:hello", "last").value in {"a", "b"}
    finally:
        backend.close()


# ---------------------------------------------------------------------------------------------
# The agent-facing facade: tickloop.memory.Memory.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def memory(memory_backend: MemoryBackend) -> Memory:
    """``agent.memory`` for session 1 of agent ``hello``, with the clock at AT + 0.9."""
    return Memory(memory_backend, session_id=1, agent="hello", now=lambda: AT + 0.9)


def test_facade_set_get_shapes(memory: Memory) -> None:
    """set answers data.key, get answers data.value and an integer data.updated_at."""
    result = memory.set("price", "42")
    assert result.success is True and result.error is None
    assert result.data.key == "price"
    got = memory.get("price")
    assert got.success is True
    assert (got.data.key, got.data.value, got.data.updated_at) == ("price", "42", AT)
    assert got.to_dict() == {"success": True, "data": {"key": "price", "value": "42", "updated_at": AT},
                             "error": None}


def test_facade_get_miss_is_success_with_none(memory: Memory) -> None:
    """A miss is a success with value None and updated_at None."""
    got = memory.get("missing")
    assert got.success is True
    assert got.data.value is None and got.data.updated_at is None


def test_facade_delete_succeeds_present_or_absent(memory: Memory) -> None:
    """delete succeeds whether or not the key existed, and removes it."""
    memory.set("k", "v")
    assert memory.delete("k").success is True
    assert memory.get("k").data.value is None
    absent = memory.delete("k")
    assert absent.success is True and absent.data.key == "k"


def test_facade_list_shape_order_and_prefix(memory: Memory) -> None:
    """list answers data["items"] of {key, updated_at}, sorted, filtered by prefix."""
    for key in ["b", "a:2", "a:1"]:
        memory.set(key, "v")
    listed = memory.list()
    assert listed.success is True
    assert [(i.key, i.updated_at) for i in listed.data["items"]] == [("a:1", AT), ("a:2", AT), ("b", AT)]
    assert [i["key"] for i in memory.list(prefix="a:").data["items"]] == ["a:1", "a:2"]
    assert memory.list(prefix="zzz").data["items"] == []


def test_facade_list_items_reads_as_an_attribute(memory: Memory) -> None:
    """As in the Circuit SDK, ``result.data.items`` is the list of items."""
    memory.set("k", "v")
    assert [(i.key, i.updated_at) for i in memory.list().data.items] == [("k", AT)]


def test_facade_shared_goes_to_the_agent_scope(memory: Memory, memory_backend: MemoryBackend) -> None:
    """shared=True reads and writes the agent's scope, visible to the agent's other sessions only."""
    memory.set("k", "shared value", shared=True)
    memory.set("k", "session value")
    assert memory_backend.get(agent_scope("hello"), "k").value == "shared value"
    assert memory_backend.get(session_scope(1), "k").value == "session value"
    sibling = Memory(memory_backend, session_id=2, agent="hello", now=lambda: AT)
    stranger = Memory(memory_backend, session_id=3, agent="other", now=lambda: AT)
    assert sibling.get("k", shared=True).data.value == "shared value"
    assert sibling.get("k").data.value is None
    assert stranger.get("k", shared=True).data.value is None
    assert [i.key for i in sibling.list(shared=True).data["items"]] == ["k"]
    assert sibling.delete("k", shared=True).success is True
    assert memory.get("k", shared=True).data.value is None
    assert memory.get("k").data.value == "session value"


@pytest.mark.parametrize("call", [
    lambda m: m.set(5, "v"),
    lambda m: m.set(None, "v"),
    lambda m: m.set("", "v"),
    lambda m: m.set("k" * 256, "v"),
    lambda m: m.set("k", 5),
    lambda m: m.set("k", None),
    lambda m: m.set("k", {"a": 1}),
    lambda m: m.get(3.5),
    lambda m: m.get(""),
    lambda m: m.delete(b"k"),
    lambda m: m.list(prefix=5),
], ids=["int-key", "none-key", "empty-key", "long-key", "int-value", "none-value", "dict-value",
        "get-float-key", "get-empty-key", "delete-bytes-key", "list-int-prefix"])
def test_facade_invalid_arguments_fail_without_raising(memory: Memory, call: Any) -> None:
    """Invalid key or value types give success=False with a reason instead of raising."""
    result = call(memory)
    assert result.success is False
    assert result.data is None
    assert isinstance(result.error, str) and any(word in result.error for word in ("key", "value", "prefix"))
    assert memory.list().data["items"] == []


def test_facade_backend_failure_is_a_failed_result() -> None:
    """A backend that raises gives success=False with the reason, never an exception."""

    class Broken:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise OSError("disk full")
            return fail

    memory = Memory(Broken(), session_id=1, agent="hello", now=time.time)  # type: ignore[arg-type]
    for result in (memory.set("k", "v"), memory.get("k"), memory.delete("k"), memory.list()):
        assert result.success is False and "disk full" in result.error

