"""The Python original's faults, each fixed (as braincache's Rust tests check them)."""

import threading
import time

import pytest

from braincache import BrainCache, cache
from braincache.backend.memory import MemoryBackend
from braincache.cleaner import CacheCleaner
from conftest import wait_until


def test_stored_none_is_a_value(bc):
    # The original's `has` was `get(key) is not None`: a stored None looked absent.
    bc.set("nothing", None)
    assert bc.has("nothing")
    assert bc.get("nothing") is None
    assert bc.delete("nothing") is True


def test_falsy_values_are_present(bc):
    # The original's `if item and ...` style checks dropped falsy values.
    for i, v in enumerate([0, "", False, [], {}, 0.0]):
        bc.set(f"k{i}", v)
        assert bc.has(f"k{i}")
        assert bc.get(f"k{i}") == v


def test_zero_ttl_is_already_expired(bc):
    # The original's `if ttl` stored ttl=0 forever.
    bc.set("k", "v", ttl=0)
    assert not bc.has("k")
    assert bc.get("k") is None


def test_zero_ttl_means_forever_option(backend):
    c = BrainCache(backend, zero_ttl_means_forever=True)
    assert c.zero_ttl_means_forever
    c.set("k", "v", ttl=0)
    time.sleep(0.02)
    assert c.get("k") == "v"
    c.set("short", "v", ttl=0.01)
    assert wait_until(lambda: c.get("short") is None)


def test_expired_entries_are_never_returned_without_a_cleaner(bc):
    # The original returned expired entries from some paths until the cleaner ran.
    bc.set("k", "v", ttl=0.02)
    assert wait_until(lambda: not bc.has("k"))
    assert bc.get("k") is None


def test_decorator_keys_do_not_collide_across_functions():
    # The original keyed by `func.__name__` and `str(args)`: two functions named alike in two
    # classes (or modules) shared entries.
    class A:
        @staticmethod
        @cache(ttl=60)
        def f(x):
            return ("A", x)

    class B:
        @staticmethod
        @cache(ttl=60)
        def f(x):
            return ("B", x)

    assert A.f(1) == ["A", 1]
    assert B.f(1) == ["B", 1]


def test_decorator_keys_do_not_collide_across_types():
    # str(args) made f(1) and f("1") share a key; and ((1,), {}) vs ([1],) etc.
    calls = []

    @cache(ttl=60)
    def f(x, y=None):
        calls.append((x, y))
        return repr((x, y))

    assert f(1) == "(1, None)"
    assert f("1") == "('1', None)"
    assert f(1.0) == "(1.0, None)"
    assert f(True) == "(True, None)"
    assert f((1,)) == "((1,), None)"
    assert f([1]) == "([1], None)"
    assert f("a, y='b'") == "(\"a, y='b'\", None)"
    assert f("a", y="b") == "('a', 'b')"
    assert len(calls) == 8
    f(1)
    f("a", y="b")
    assert len(calls) == 8


def test_decorator_caches_none_results():
    # The original recomputed whenever the cached result was None.
    calls = []

    @cache(ttl=60)
    def lookup(x):
        calls.append(x)
        return None

    assert lookup(1) is None
    assert lookup(1) is None
    assert calls == [1]


def test_cleaner_stop_joins_its_thread():
    # The original's stop() set a flag and returned while the thread still ran.
    c = BrainCache()
    cleaner = CacheCleaner(c, interval=60)
    cleaner.start()
    assert cleaner.is_running
    before = threading.active_count()
    cleaner.stop()
    assert not cleaner.is_running
    # The Rust thread is not a Python thread, so active_count does not move; is_running is the
    # thread's own state after join.
    assert threading.active_count() == before


def test_concurrent_computations_run_once():
    # The original's decorator computed once per caller under contention.
    c = BrainCache(MemoryBackend())
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return "v"

    out = []
    threads = [threading.Thread(target=lambda: out.append(c.get_or_set("k", compute)))
               for _ in range(8)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(calls) >= 1)
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(10)
    assert out == ["v"] * 8
    assert len(calls) == 1


def test_no_pickle_no_code_from_cache_data(tmp_path):
    # Unlike diskcache's pickle default: cache data is JSON-shaped, never code.
    import json
    from braincache.backend.file import FileBackend

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"k": {"value": {"__reduce__": "os.system"}, "expire_at": None}}))
    assert BrainCache(FileBackend(str(path))).get("k") == {"__reduce__": "os.system"}
    with pytest.raises(TypeError):
        BrainCache().set("k", object())
