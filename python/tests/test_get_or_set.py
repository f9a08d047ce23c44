"""get_or_set: memoization with single-flight, like Rust's get_or_insert_with."""

import threading

import pytest

from conftest import wait_until


def test_computes_once_then_reads(bc):
    calls = []
    assert bc.get_or_set("k", lambda: calls.append(1) or {"v": 1}, ttl=60) == {"v": 1}
    assert bc.get_or_set("k", lambda: calls.append(1) or "other") == {"v": 1}
    assert calls == [1]
    assert bc.get("k") == {"v": 1}


def test_stored_none_is_not_recomputed(bc):
    calls = []
    assert bc.get_or_set("k", lambda: calls.append(1)) is None
    assert bc.get_or_set("k", lambda: calls.append(1)) is None
    assert calls == [1]


def test_expired_is_recomputed(bc):
    n = []
    bc.get_or_set("k", lambda: n.append(1) or len(n), ttl=0.02)
    assert wait_until(lambda: bc.get_or_set("k", lambda: n.append(1) or len(n), ttl=60) == 2)


def test_exception_propagates_and_is_not_stored(bc):
    def boom():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        bc.get_or_set("k", boom)
    assert not bc.has("k")


def test_waiters_share_the_leaders_exception(bc):
    started = threading.Event()
    release = threading.Event()
    calls = []

    def failing():
        calls.append(1)
        started.set()
        release.wait(10)
        raise ValueError("shared")

    results = []

    def call():
        try:
            bc.get_or_set("k", failing)
        except ValueError as e:
            results.append(str(e))

    leader = threading.Thread(target=call)
    leader.start()
    started.wait(10)
    waiters = [threading.Thread(target=call) for _ in range(4)]
    for w in waiters:
        w.start()
    import time
    time.sleep(0.1)  # let the waiters join the computation (not a timing assert)
    release.set()
    for t in [leader, *waiters]:
        t.join(10)
    assert results == ["shared"] * 5
    assert len(calls) in range(1, 6)  # waiters that arrived late compute on their own
