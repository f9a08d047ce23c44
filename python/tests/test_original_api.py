"""Every method of the Python original, on every backend."""

import json
import time

import pytest

from braincache import BrainCache
from conftest import wait_until


def test_default_backend_is_memory():
    c = BrainCache()
    assert "MemoryBackend" in repr(c)
    c.set("user_id", 1234)
    assert c.get("user_id") == 1234


def test_set_get(bc):
    bc.set("user_id", 1234, ttl=3600)
    assert bc.get("user_id") == 1234
    bc.set("user_id", "replaced")
    assert bc.get("user_id") == "replaced"


def test_get_missing_is_none(bc):
    assert bc.get("missing") is None


def test_has(bc):
    assert not bc.has("k")
    bc.set("k", 1)
    assert bc.has("k")
    assert "k" in bc


def test_delete(bc):
    bc.set("k", 1)
    assert bc.delete("k") is True
    assert bc.get("k") is None
    assert not bc.has("k")
    assert bc.delete("k") is False


def test_clear(bc):
    for i in range(10):
        bc.set(f"k{i}", i)
    bc.clear()
    assert all(bc.get(f"k{i}") is None for i in range(10))


def test_ttl_expires(bc):
    bc.set("short", "v", ttl=0.05)
    bc.set("long", "v", ttl=3600)
    assert wait_until(lambda: bc.get("short") is None)
    assert not bc.has("short")
    assert bc.get("long") == "v"


def test_ttl_none_is_forever(bc):
    bc.set("k", "v", ttl=None)
    bc.set("k2", "v")
    time.sleep(0.05)
    assert bc.get("k") == "v" and bc.get("k2") == "v"


def test_bad_ttl(bc):
    with pytest.raises(ValueError):
        bc.set("k", 1, ttl=-1)
    with pytest.raises(ValueError):
        bc.set("k", 1, ttl=float("nan"))
    with pytest.raises(TypeError):
        bc.set("k", 1, ttl="60")
    assert not bc.has("k")


def test_purge_and_len(bc):
    bc.set("a", 1, ttl=0.01)
    bc.set("b", 2)
    assert wait_until(lambda: bc.get("a") is None)
    bc.purge_expired()
    assert bc.get("b") == 2


def test_file_backend_writes_the_originals_format(tmp_path):
    from braincache.backend.file import FileBackend

    path = tmp_path / "cache.json"
    c = BrainCache(FileBackend(str(path)))
    c.set("user_id", 1234, ttl=3600)
    c.set("forever", {"a": [1, "x"]})
    doc = json.loads(path.read_text())
    assert doc["user_id"]["value"] == 1234
    assert doc["user_id"]["expire_at"] > time.time()
    assert doc["forever"] == {"value": {"a": [1, "x"]}, "expire_at": None}


def test_file_backend_reads_a_file_the_original_wrote(tmp_path):
    from braincache.backend.file import FileBackend

    path = tmp_path / "cache.json"
    # What the original's FileBackend writes: json.dump of its dict.
    path.write_text(json.dumps({
        "user_id": {"value": 1234, "expire_at": time.time() + 3600},
        "old": {"value": "gone", "expire_at": time.time() - 1},
        "nothing": {"value": None, "expire_at": None},
    }))
    c = BrainCache(FileBackend(str(path)))
    assert c.get("user_id") == 1234
    assert c.get("old") is None
    assert c.has("nothing") and c.get("nothing") is None


def test_survives_reopen(tmp_path):
    from braincache.backend.file import FileBackend
    from braincache.backend.redb import RedbBackend

    for make in (lambda: FileBackend(str(tmp_path / "c.json")),
                 lambda: RedbBackend(str(tmp_path / "c.redb"))):
        c = BrainCache(make())
        c.set("k", [1, 2, 3])
        del c
        import gc
        gc.collect()
        assert BrainCache(make()).get("k") == [1, 2, 3]


def test_two_caches_on_one_backend_share_entries(backend):
    a, b = BrainCache(backend), BrainCache(backend)
    a.set("k", "v")
    assert b.get("k") == "v"


def test_stats(bc):
    bc.set("k", 1)
    bc.get("k")
    bc.get("missing")
    s = bc.stats()
    assert (s["hits"], s["misses"], s["sets"]) == (1, 1, 1)


def test_stats_count_every_lookup(backend):
    # Memory lookups read the backend with the GIL held and count on their own: the totals are
    # the same as on the other backends, shared by the caches over one backend object.
    a, b = BrainCache(backend), BrainCache(backend)
    a.set("k", None)
    a.set("gone", 1, ttl=0)
    assert a.get("k") is None and a.has("k") and "k" in b
    assert b.get("gone") is None and not a.has("gone") and "absent" not in a
    for c in (a, b):
        s = c.stats()
        assert (s["hits"], s["misses"], s["sets"], s["errors"]) == (3, 3, 2, 0)


def test_backend_must_be_a_backend():
    with pytest.raises(TypeError, match="backend must be"):
        BrainCache({})


def test_errors_name_what_failed(tmp_path):
    from braincache import BrainCacheError
    from braincache.backend.file import FileBackend

    path = tmp_path / "cache.json"
    path.write_text("not json")
    with pytest.raises(BrainCacheError, match="cache.json"):
        FileBackend(str(path))
    assert path.read_text() == "not json"
    # Missing folders are created (as diskcache does); a folder that cannot be made is an error
    # naming the cache file.
    FileBackend(str(tmp_path / "no" / "such" / "folder.json"))
    assert (tmp_path / "no" / "such").is_dir()
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(BrainCacheError, match="cache2.json"):
        FileBackend(str(tmp_path / "plain" / "cache2.json"))
