import os
import shutil
import socket
import subprocess
import time

import pytest

from braincache import BrainCache
from braincache.backend.file import FileBackend
from braincache.backend.memory import MemoryBackend
from braincache.backend.redb import RedbBackend


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on a free loopback port, killed by pid at the end."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("BRAINCACHE_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


def start_memcached(*args):
    """A real memcached on a free loopback port: `(process, port)`; the caller kills it by pid.

    Skips the test when memcached is not installed, unless BRAINCACHE_REQUIRE_MEMCACHED is set
    (then it fails).
    """
    exe = shutil.which("memcached")
    if exe is None:
        if os.environ.get("BRAINCACHE_REQUIRE_MEMCACHED"):
            pytest.fail("memcached is not installed")
        pytest.skip("memcached is not installed")
    port = free_port()
    # -U 0: no UDP; -u: memcached refuses to run as root without a user to switch to.
    cmd = [exe, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", *args]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"memcached did not start (exit status {proc.returncode})")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def memcached_url():
    """A real memcached on a free loopback port for the whole session, killed by pid at the end."""
    proc, port = start_memcached()
    yield f"memcache://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


_prefixes = iter(range(1_000_000))


@pytest.fixture(params=["memory", "file", "redb", "redis", "memcached"])
def backend(request, tmp_path):
    """Each backend of the package, fresh."""
    kind = request.param
    if kind == "memory":
        return MemoryBackend()
    if kind == "file":
        return FileBackend(str(tmp_path / "cache.json"))
    if kind == "redb":
        return RedbBackend(str(tmp_path / "cache.redb"))
    if kind == "memcached":
        from braincache.backend.memcached import MemcachedBackend

        url = request.getfixturevalue("memcached_url")
        return MemcachedBackend(url, key_prefix=f"t{next(_prefixes)}:")
    from braincache.backend.redis import RedisBackend

    url = request.getfixturevalue("redis_url")
    return RedisBackend(url, key_prefix=f"t{next(_prefixes)}:")


@pytest.fixture
def bc(backend):
    return BrainCache(backend)


def wait_until(cond, timeout=10.0):
    """Polls `cond` until it is true; bounded in time."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
