"""One cache file, a Rust process and a Python process at once, each reading the other's writes."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from braincache import BrainCache
from braincache.backend.file import FileBackend
from braincache.backend.redb import RedbBackend

ROOT = Path(__file__).resolve().parents[2]
N = 40


@pytest.fixture(scope="session")
def share_peer():
    """The `share_peer` example of crates/braincache-py (BRAINCACHE_SHARE_PEER, or built here)."""
    exe = os.environ.get("BRAINCACHE_SHARE_PEER")
    if exe:
        return exe
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed and BRAINCACHE_SHARE_PEER is not set")
    out = subprocess.run(
        [cargo, "build", "-q", "-p", "braincache-py", "--example", "share_peer",
         "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=900,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "share_peer":
            return msg["executable"]
    pytest.fail("cargo did not report the share_peer executable")


def python_value(i):
    return {"from": "python", "i": i, "nested": {"xs": [i, i + 1]}, "none": None, "f": 0.25}


def rust_value(i):
    return {"from": "rust", "i": i, "list": [i, None, 1.5, "s", False], "empty": []}


@pytest.mark.parametrize("kind", ["file", "redb"])
def test_rust_and_python_share_a_file_at_once(kind, tmp_path, share_peer):
    path = str(tmp_path / ("cache.json" if kind == "file" else "cache.redb"))
    c = BrainCache(FileBackend(path) if kind == "file" else RedbBackend(path))
    # The Rust side uses the same codec: the backend's default when the package uses it.
    peer = subprocess.Popen([share_peer, kind, path, c.codec, str(N)],
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


def test_redb_write_behind_reads_its_writes_and_commits_on_flush(tmp_path):
    path = str(tmp_path / "behind.redb")
    c = BrainCache(RedbBackend(path, write_behind=3600.0))
    other = BrainCache(RedbBackend(path))
    c.set("k", {"v": 1})
    assert c.get("k") == {"v": 1}  # this process sees it at once
    assert other.get("k") is None  # not committed yet: an hour-long interval
    c.flush()
    assert other.get("k") == {"v": 1}
    with pytest.raises(ValueError):
        RedbBackend(str(tmp_path / "x.redb"), write_behind=-1.0)
