"""Threads: the GIL is released around blocking backend calls (a memory lookup keeps it);
every value stays right."""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from braincache import BrainCache, BrainCacheError
from braincache.cleaner import CacheCleaner
from conftest import free_port, wait_until


@pytest.mark.parametrize("kind", ["memory", "file", "redb"])
def test_eight_threads_check_every_value(kind, tmp_path):
    from braincache.backend.file import FileBackend
    from braincache.backend.memory import MemoryBackend
    from braincache.backend.redb import RedbBackend

    backend = {
        "memory": lambda: MemoryBackend(),
        "file": lambda: FileBackend(str(tmp_path / "c.json")),
        "redb": lambda: RedbBackend(str(tmp_path / "c.redb")),
    }[kind]()
    c = BrainCache(backend)
    per_thread = 200 if kind != "file" else 25
    errors = []

    def work(t):
        try:
            for i in range(per_thread):
                value = {"t": t, "i": i, "payload": [t] * (i % 5), "none": None}
                c.set(f"{t}:{i}", value)
                got = c.get(f"{t}:{i}")
                if got != value:
                    errors.append((t, i, got))
                c.set("shared", t)
                if c.get("shared") not in range(8):
                    errors.append(("shared", t, i))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    for t in range(8):
        for i in range(per_thread):
            assert c.get(f"{t}:{i}") == {"t": t, "i": i, "payload": [t] * (i % 5), "none": None}


def test_gil_is_released_while_a_computation_waits():
    # A waiter of get_or_set blocks in Rust without the GIL: the leader (which needs the GIL to
    # run Python) still finishes, and other Python threads keep running meanwhile.
    c = BrainCache()
    started = threading.Event()
    release = threading.Event()
    ticks = []

    def slow():
        started.set()
        release.wait(10)
        return 1

    leader = threading.Thread(target=lambda: c.get_or_set("k", slow))
    leader.start()
    started.wait(10)
    waiter_out = []
    waiter = threading.Thread(target=lambda: waiter_out.append(c.get_or_set("k", lambda: 2)))
    waiter.start()
    for i in range(100):
        ticks.append(i)
    release.set()
    leader.join(10)
    waiter.join(10)
    assert waiter_out == [1]
    assert len(ticks) == 100


def test_gil_is_released_while_a_backend_call_blocks():
    # A get from a Redis server that does not answer (stopped with SIGSTOP) blocks in Rust
    # without the GIL, so this thread runs meanwhile and resumes the server: the get then
    # returns the value. Were the GIL held, this thread could not run until the get had given
    # up (its response timeout, 1 s), and the get would fail.
    from braincache.backend.redis import RedisBackend

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        caches = []

        def connect():
            try:
                caches.append(BrainCache(RedisBackend(f"redis://127.0.0.1:{port}/0")))
                return True
            except BrainCacheError:
                return False

        assert wait_until(connect)
        c = caches[0]
        c.set("k", "v")
        os.kill(proc.pid, signal.SIGSTOP)
        entered, out = threading.Event(), []

        def blocked_get():
            entered.set()
            try:
                out.append(c.get("k"))
            except BrainCacheError as e:
                out.append(e)

        t = threading.Thread(target=blocked_get)
        t.start()
        assert entered.wait(10)
        time.sleep(0.05)  # the get is sent, and waits for the stopped server
        os.kill(proc.pid, signal.SIGCONT)
        t.join(30)
        assert not t.is_alive()
        assert out == ["v"], "the get gave up before this thread could resume the server"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_memory_lookups_hold_the_gil_without_deadlock():
    # Memory gets and hases keep the GIL; they may wait for a shard lock, whose holders (sets,
    # deletes, clear, purges, the Rust cleaner thread) never need the GIL. Everything finishes
    # and every value read is one that was written.
    from braincache.backend.memory import MemoryBackend

    c = BrainCache(MemoryBackend(max_entries=2_000))
    cleaner = CacheCleaner(c, interval=0.01)
    cleaner.start()
    errors = []
    rounds = 300

    def reader(t):
        try:
            for i in range(rounds):
                for j in range(20):
                    got = c.get(f"k{j}")
                    if got is not None and got != {"j": j, "list": [j] * 3}:
                        errors.append((t, j, got))
                    c.has(f"k{j}")
                    f"k{j}" in c
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def writer(t):
        try:
            for i in range(rounds):
                j = (i + t) % 20
                c.set(f"k{j}", {"j": j, "list": [j] * 3}, ttl=0.001 if i % 3 == 0 else None)
                if i % 50 == 0:
                    c.clear()
                if i % 7 == 0:
                    c.delete(f"k{j}")
                if i % 11 == 0:
                    c.purge_expired()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(5)]
    threads += [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    cleaner.stop()
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    c.set("last", [None, 0, "", False, []])
    assert c.get("last") == [None, 0, "", False, []]
    s = c.stats()
    assert s["hits"] + s["misses"] == 5 * rounds * 20 * 3 + 1  # get, has, in; and "last"
