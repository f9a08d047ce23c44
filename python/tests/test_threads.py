"""Threads: the GIL is released around backend calls; every value stays right."""

import threading

import pytest

from braincache import BrainCache


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
