"""The memcached backend against real memcached servers (started on free loopback ports and
killed by pid; skipped when memcached is missing unless BRAINCACHE_REQUIRE_MEMCACHED=1).

The generic suites (test_original_api, test_faults, test_values, test_get_or_set, test_cleaner)
run on memcached too, through the ``backend`` fixture; this file covers what is memcached's own.
"""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from braincache import (
    BrainCache,
    BrainCacheError,
    CacheTimeoutError,
    UnsupportedOperation,
    cache,
)
from braincache.backend.memcached import MemcachedBackend
from braincache.cleaner import CacheCleaner
from conftest import start_memcached, wait_until
from test_shared import N, python_value, rust_value, share_peer  # noqa: F401 - a fixture

_prefixes = iter(range(1_000_000))


def fresh(url, **options):
    """A cache on `url` under a prefix no other test uses."""
    return BrainCache(MemcachedBackend(url, f"mc{next(_prefixes)}:", **options))


@pytest.fixture
def server():
    """A memcached of this test's own (to stop, kill or restart), killed by pid at the end."""
    proc, port = start_memcached()
    yield proc, port
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait()


def in_thread(call, bound=30.0):
    """Runs `call` in a thread; returns its result or exception, failing if it has not
    returned within `bound` seconds (a hang, not a slow answer)."""
    out = []

    def run():
        try:
            out.append(call())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(bound)
    assert not t.is_alive(), f"the call did not return within {bound} s"
    return out[0]


def test_original_methods(memcached_url):
    c = fresh(memcached_url)
    assert "MemcachedBackend" in repr(c) and c.codec == "msgpack"
    c.set("user_id", 1234, ttl=3600)
    assert c.get("user_id") == 1234 and c.has("user_id") and "user_id" in c
    assert c.get("absent") is None and not c.has("absent")
    assert c.delete("user_id") is True
    assert c.delete("user_id") is False
    assert c.get("user_id") is None
    for i in range(10):
        c.set(f"k{i}", {"i": i})
    c.clear()
    assert all(not c.has(f"k{i}") for i in range(10))
    c.set("after", 1)  # the cache works after a clear
    assert c.get("after") == 1


def test_ttl(memcached_url):
    c = fresh(memcached_url)
    c.set("short", "v", ttl=0.05)
    c.set("long", "v", ttl=3600)
    c.set("forever", "v")
    c.set("zero", "v", ttl=0)
    assert not c.has("zero")
    assert c.get("short") == "v"
    # Memcached keeps whole seconds (rounded up); the cache reads the entry's own deadline and
    # never returns it past it.
    assert wait_until(lambda: c.get("short") is None)
    assert not c.has("short")
    assert c.get("long") == "v" and c.get("forever") == "v"
    # The original's "ttl=0 is forever" on request.
    old = BrainCache(MemcachedBackend(memcached_url, f"mc{next(_prefixes)}:"),
                     zero_ttl_means_forever=True)
    old.set("zero", "v", ttl=0)
    assert old.get("zero") == "v"


@pytest.mark.parametrize("value", [None, 0, 0.0, "", False, [], {}, [None], {"": None}])
def test_falsy_values_are_present(memcached_url, value):
    c = fresh(memcached_url)
    c.set("k", value)
    assert c.has("k")
    got = c.get("k")
    assert got == value and type(got) is type(value)
    assert c.get_or_set("k", lambda: pytest.fail("recomputed a stored falsy value")) == value


def test_unicode_and_unusual_keys(memcached_url):
    # Keys memcached cannot take as they are (non-ASCII, spaces, control characters, longer
    # than 250 bytes) are stored under a digest, with the full key kept beside the value.
    c = fresh(memcached_url)
    keys = ["ключ", "键", "emoji 🧠", "with space", "tab\there", "", "x" * 300, "é" * 200,
            "plain:ascii"]
    for i, key in enumerate(keys):
        c.set(key, {"key": key, "i": i})
    for i, key in enumerate(keys):
        assert c.get(key) == {"key": key, "i": i}, key
        assert c.has(key)
    assert c.delete("ключ") is True
    assert c.get("ключ") is None and c.get("键") == {"key": "键", "i": 1}
    assert c.delete("ключ") is False


def test_decorator_on_a_memcached_cache(memcached_url):
    store_prefix = f"mc{next(_prefixes)}:"
    store = BrainCache(MemcachedBackend(memcached_url, store_prefix))
    calls = []

    @cache(ttl=60, cache=store)
    def f(x, *, y=None):
        calls.append((x, y))
        return None if x == "none" else {"x": x, "y": y}

    assert f("a") == {"x": "a", "y": None}
    assert f("a") == {"x": "a", "y": None}
    assert f("a", y=1) == {"x": "a", "y": 1}
    assert f("none") is None and f("none") is None  # None results are cached
    assert calls == [("a", None), ("a", 1), ("none", None)]
    # Another handle on the same server and prefix (as another process would be) computes
    # nothing: it reads what the first one stored.
    other = BrainCache(MemcachedBackend(memcached_url, store_prefix))

    @cache(ttl=60, cache=other)
    def f(x, *, y=None):  # the same qualified name, so the same keys
        calls.append(("other", x, y))
        return "recomputed"

    assert f("a", y=1) == {"x": "a", "y": 1} and f("none") is None
    assert len(calls) == 3


def test_len_and_next_expiry_are_unsupported(memcached_url):
    c = fresh(memcached_url)
    c.set("k", 1, ttl=60)
    with pytest.raises(UnsupportedOperation, match=r"^len: not supported by the memcached") as e:
        len(c)
    assert isinstance(e.value, BrainCacheError) and isinstance(e.value, NotImplementedError)
    with pytest.raises(UnsupportedOperation, match=r"^next_expiry: .*memcached"):
        c.next_expiry()
    # Nothing was changed, and the cache keeps working; what memcached can do, it does.
    assert c.get("k") == 1
    assert c.purge_expired() == 0
    assert c.stats()["errors"] == 2


def test_other_backends_answer_len_and_next_expiry():
    c = BrainCache()
    assert c.next_expiry() is None
    c.set("forever", 1)
    assert c.next_expiry() is None
    before = time.time()
    c.set("k", 1, ttl=60)
    assert before + 59 < c.next_expiry() < time.time() + 61
    assert len(c) == 2


def test_cleaner_runs_on_memcached(memcached_url):
    # Memcached expires entries itself and cannot list deadlines: the cleaner has nothing to
    # purge and must neither fail nor stop.
    c = fresh(memcached_url)
    with CacheCleaner(c, interval=0.01) as cleaner:
        c.set("short", 1, ttl=0.05)
        assert wait_until(lambda: not c.has("short"))
        time.sleep(0.05)  # a few rounds of the cleaner
        assert cleaner.is_running
    assert not cleaner.is_running
    assert c.stats()["errors"] == 0


def test_a_value_too_large_is_refused_clearly(memcached_url):
    c = fresh(memcached_url)
    c.set("big", "small first")
    big = "x" * (2 << 20)
    with pytest.raises(BrainCacheError,
                       match=r'during set \(key "big"\): the item is \d+ bytes, over the memcached '
                             r"item limit of 1048576 bytes") as e:
        c.set("big", big)
    assert not isinstance(e.value, CacheTimeoutError)
    # Nothing changed, nothing was half-written, and the connection still works.
    assert c.get("big") == "small first"
    c.set("after", 1)
    assert c.get("after") == 1
    # get_or_set reports the same error and does not cache anything.
    with pytest.raises(BrainCacheError, match="over the memcached item limit"):
        c.get_or_set("big2", lambda: big)
    assert not c.has("big2")
    # A lower item_limit (servers run with a smaller -I) is enforced before sending.
    small = fresh(memcached_url, item_limit=1000)
    small.set("ok", "y" * 500)
    with pytest.raises(BrainCacheError, match="over the memcached item limit of 1000 bytes"):
        small.set("no", "y" * 2000)


def test_a_server_with_a_smaller_item_size_refuses_the_same_way():
    # The smallest -I needs a slab chunk no larger than it.
    proc, port = start_memcached("-I", "2k", "-o", "slab_chunk_max=1024")
    try:
        c = fresh(f"memcache://127.0.0.1:{port}")  # item_limit left at 1 MiB
        c.set("ok", "y" * 100)
        with pytest.raises(BrainCacheError,
                           match=r'during set \(key "no"\): the item is \d+ bytes, over the '
                                 r"server's item limit.*too large"):
            c.set("no", "y" * 4000)
        assert c.get("ok") == "y" * 100 and not c.has("no")
    finally:
        proc.kill()
        proc.wait()


def test_a_stopped_server_times_out_and_recovers(server):
    proc, port = server
    c = fresh(f"memcache://127.0.0.1:{port}", response_timeout=0.2, connect_timeout=0.2)
    c.set("k", "v")
    os.kill(proc.pid, signal.SIGSTOP)
    for call in (lambda: c.get("k"), lambda: c.set("k", "w"), lambda: c.has("k"),
                 lambda: c.delete("k")):
        err = in_thread(call)
        assert isinstance(err, CacheTimeoutError), repr(err)
        assert isinstance(err, TimeoutError) and isinstance(err, BrainCacheError)
        assert "memcached" in str(err) and f"127.0.0.1:{port}" in str(err), str(err)
    os.kill(proc.pid, signal.SIGCONT)
    # The same cache works again once the server answers. The writes sent while it was stopped
    # may or may not have been applied (the errors said so): here the server applies them when
    # it wakes, so the delete leaves nothing.
    assert wait_until(lambda: not isinstance(in_thread(lambda: c.get("k")), BaseException))
    c.set("k", "x")
    assert c.get("k") == "x"


def test_a_killed_server_is_an_error_not_a_hang(server):
    proc, port = server
    url = f"memcache://127.0.0.1:{port}"
    c = fresh(url, response_timeout=0.2, connect_timeout=0.2)
    c.set("k", "v")
    proc.kill()
    proc.wait()
    err = in_thread(lambda: c.get("k"))
    assert isinstance(err, BrainCacheError), repr(err)
    assert 'during get (key "k")' in str(err) and f"127.0.0.1:{port}" in str(err), str(err)
    assert not isinstance(err, CacheTimeoutError)  # refused: not a timeout
    # Connecting to a server that is not there fails at once; connect_lazily defers it.
    err = in_thread(lambda: MemcachedBackend(url, connect_timeout=0.2))
    assert isinstance(err, BrainCacheError) and f"127.0.0.1:{port}" in str(err), str(err)
    lazy = BrainCache(MemcachedBackend(url, connect_lazily=True, connect_timeout=0.2))
    assert isinstance(in_thread(lambda: lazy.set("k", 1)), BrainCacheError)


def test_the_gil_is_released_while_a_memcached_call_blocks(server):
    # A get from a stopped server blocks in Rust without the GIL, so this thread runs meanwhile
    # and resumes the server: the get then returns the value. Were the GIL held, this thread
    # could not run until the get had given up (its response timeout) and the get would fail.
    proc, port = server
    c = fresh(f"memcache://127.0.0.1:{port}", response_timeout=5)
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


def test_eight_threads_check_every_value(memcached_url):
    c = fresh(memcached_url)
    errors = []

    def work(t):
        try:
            for i in range(100):
                value = {"t": t, "i": i, "payload": [t] * (i % 5), "none": None}
                c.set(f"{t}:{i}", value)
                if c.get(f"{t}:{i}") != value:
                    errors.append((t, i))
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
        for i in range(100):
            assert c.get(f"{t}:{i}") == {"t": t, "i": i, "payload": [t] * (i % 5), "none": None}


def test_key_prefixes_keep_caches_apart(memcached_url):
    a = MemcachedBackend(memcached_url, "app-a:")
    b = MemcachedBackend(memcached_url, key_prefix="app-b:")
    assert (a.key_prefix, b.key_prefix) == ("app-a:", "app-b:")
    assert MemcachedBackend(memcached_url).key_prefix == "braincache:"
    ca, cb = BrainCache(a), BrainCache(b)
    ca.set("k", "a")
    cb.set("k", "b")
    ca.clear()
    assert ca.get("k") is None and cb.get("k") == "b"  # clear empties one prefix only


def test_a_clear_by_another_handle_is_seen(memcached_url):
    prefix = f"mc{next(_prefixes)}:"
    writer = BrainCache(MemcachedBackend(memcached_url, prefix))
    reader = BrainCache(MemcachedBackend(memcached_url, prefix, generation_refresh=0))
    writer.set("k", 1)
    assert reader.get("k") == 1
    writer.clear()
    assert reader.get("k") is None  # generation_refresh=0: re-read before every call


def test_several_servers(memcached_url, server):
    _, port = server
    second = f"memcache://127.0.0.1:{port}"
    backend = MemcachedBackend(memcached_url, f"mc{next(_prefixes)}:", servers=[second])
    assert backend.servers == [memcached_url.removeprefix("memcache://"), f"127.0.0.1:{port}"]
    assert backend.url == memcached_url
    assert repr(backend) == f'MemcachedBackend("{memcached_url}")'
    c = BrainCache(backend)
    before = items(port)  # the second server is this test's own
    for i in range(50):
        c.set(f"k{i}", i)
    assert [c.get(f"k{i}") for i in range(50)] == list(range(50))
    # Keys are spread: the second server holds some of them, not all (its own count of items,
    # asked over memcached's text protocol).
    assert 0 < items(port) - before < 50
    # The same servers listed in the other order route every key the same way.
    swapped = BrainCache(MemcachedBackend(second, backend.key_prefix, servers=[memcached_url]))
    assert [swapped.get(f"k{i}") for i in range(50)] == list(range(50))


def items(port):
    """The `curr_items` of the memcached at `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            assert chunk, "memcached closed the connection"
            data += chunk
    for line in data.decode().splitlines():
        if line.startswith("STAT curr_items "):
            return int(line.split()[2])
    raise AssertionError("no curr_items in memcached's stats")


def test_bad_options_are_errors(memcached_url):
    with pytest.raises(BrainCacheError, match="invalid key prefix"):
        MemcachedBackend(memcached_url, "has space:")
    with pytest.raises(BrainCacheError, match="memcached"):
        MemcachedBackend("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="response_timeout"):
        MemcachedBackend(memcached_url, response_timeout=-1)
    with pytest.raises(TypeError, match="connect_timeout"):
        MemcachedBackend(memcached_url, connect_timeout="1s")
    with pytest.raises(TypeError):
        MemcachedBackend(memcached_url, "p:", "positional options are refused")
    with pytest.raises(BrainCacheError, match="listed twice"):
        MemcachedBackend(memcached_url, servers=[memcached_url])


def test_rust_and_python_share_entries_at_once(memcached_url, share_peer):
    # The Rust process uses the default prefix and codec; so does this cache.
    c = BrainCache(MemcachedBackend(memcached_url))
    peer = subprocess.Popen([share_peer, "memcached", memcached_url, c.codec, str(N)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = 0
        deadline = time.monotonic() + 60
        for i in range(N):
            c.set(f"py:{i}", python_value(i))
            while seen < N and (v := c.get(f"rust:{seen}")) is not None:
                assert v == rust_value(seen)
                seen += 1
        while seen < N:
            assert time.monotonic() < deadline, f"rust:{seen} never appeared"
            v = c.get(f"rust:{seen}")
            if v is None:
                time.sleep(0.005)
                continue
            assert v == rust_value(seen)
            seen += 1
        out, err = peer.communicate(timeout=60)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    assert peer.returncode == 0, err
    assert out.strip() == "ok"
