"""Memory backend speed: microseconds per operation for every installed memory backend.

Each backend is built as the runtime builds it (plugin manager, registry, factory) in a fresh
temporary home. A raw ``diskcache.Cache`` is measured in the same run as the baseline, so the
numbers compare on one machine and one disk. Prints one JSON document::

    python bench/memory_speed.py [--n 2000] [--backend NAME ...]

Per operation: ``mean_us`` (total time / n), ``p50_us`` and ``p99_us`` (each call timed alone).
``set_new`` adds keys to a scope, ``set_overwrite`` replaces existing keys, ``get`` reads them,
``list_100`` / ``list_1000`` list a scope of 100 / 1000 keys, ``list_prefix_10`` lists 10 of
1000 keys by prefix, ``delete`` removes keys one by one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from tickloop.config import Config
from tickloop.pluginmanager import make_plugin_manager
from tickloop.registry import Registry
from tickloop_diskcache.backend import SETTINGS, open_cache

AT = 1_700_000_000
VALUE = '{"position": "BTC", "size": "0.0125", "entry": "64123.5", "note": "a typical small JSON value"}'


def timed(calls: int, op: Callable[[int], Any]) -> dict[str, float]:
    """Run ``op(i)`` for i in range(calls) and summarize the per-call times in microseconds."""
    clock = time.perf_counter_ns
    samples = []
    start = clock()
    for i in range(calls):
        t0 = clock()
        op(i)
        samples.append(clock() - t0)
    total = clock() - start
    samples.sort()
    return {
        "mean_us": round(total / calls / 1000, 2),
        "p50_us": round(statistics.median(samples) / 1000, 2),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000, 2),
        "n": calls,
    }


def bench_backend(backend: Any, n: int) -> dict[str, Any]:
    scope = "session:1"
    keys = [f"key:{i:06d}" for i in range(n)]
    out: dict[str, Any] = {}
    out["set_new"] = timed(n, lambda i: backend.set(scope, keys[i], VALUE, at=AT))
    out["set_overwrite"] = timed(n, lambda i: backend.set(scope, keys[i], VALUE, at=AT + 1))
    out["get"] = timed(n, lambda i: backend.get(scope, keys[i]))
    for size in (100, 1000):
        small = f"session:list{size}"
        for i in range(size):
            backend.set(small, f"k{i:05d}", VALUE, at=AT)
        rounds = max(20, min(n, 200_000 // size))
        out[f"list_{size}"] = timed(rounds, lambda i, small=small: backend.list(small))
        assert len(backend.list(small)) == size
        if size == 1000:
            out["list_prefix_10"] = timed(rounds, lambda i, small=small: backend.list(small, f"k00{i % 100:02d}"))
    out["delete"] = timed(n, lambda i: backend.delete(scope, keys[i]))
    out["clear_1000"] = timed(1, lambda i: backend.clear("session:list1000"))
    return out


def bench_raw(cache: diskcache.Cache, n: int) -> dict[str, Any]:
    keys = [f"raw:key:{i:06d}" for i in range(n)]
    value = f"{AT}:{VALUE}"
    return {
        "set_new": timed(n, lambda i: cache.set(keys[i], value)),
        "set_overwrite": timed(n, lambda i: cache.set(keys[i], value)),
        "get": timed(n, lambda i: cache.get(keys[i])),
        "delete": timed(n, lambda i: cache.delete(keys[i])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="operations per measurement (default 2000)")
    parser.add_argument("--backend", action="append", help="only these backends (default: every installed one)")
    args = parser.parse_args(argv)

    registry = Registry.from_plugin_manager(make_plugin_manager())
    names = args.backend or registry.names("memory")
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "diskcache": diskcache.__version__,
        "n": args.n,
        "backends": {},
        "baseline": {},
    }
    with tempfile.TemporaryDirectory(prefix="tickloop-bench-") as tmp:
        # Raw diskcache with its default settings first, then each backend, then raw diskcache
        # with the settings the diskcache backend uses (eviction off, values kept in SQLite).
        with diskcache.Cache(str(Path(tmp) / "raw-default")) as raw:
            report["baseline"]["diskcache.Cache()"] = bench_raw(raw, args.n)
        for name in names:
            home = Path(tmp) / name
            try:
                backend = registry.get("memory", name, key="--backend").factory(Config.load(home=home, env={}))
            except Exception as exc:  # a networked backend without its server, for instance
                report["backends"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            try:
                report["backends"][name] = bench_backend(backend, args.n)
            finally:
                backend.close()
        with open_cache(Path(tmp) / "raw-backend-settings") as raw:
            report["baseline"]["diskcache.Cache(**backend settings)"] = {
                "settings": SETTINGS, **bench_raw(raw, args.n)}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
