"""CacheCleaner."""

from braincache import BrainCache
from braincache.cleaner import CacheCleaner
from conftest import wait_until


def test_purges_expired_entries(bc):
    cleaner = CacheCleaner(bc, interval=60)
    assert cleaner.interval == 60
    cleaner.start()
    try:
        bc.set("short", 1, ttl=0.05)
        bc.set("long", 2, ttl=3600)
        # The cleaner wakes at the deadline, not after the 60 s interval.
        if "Redis" in repr(bc):
            assert wait_until(lambda: len(bc) == 1)
        elif "Memcached" in repr(bc):
            # Memcached expires entries itself and cannot list deadlines: the cleaner has
            # nothing to do there, and must not fail (nor count errors) for it.
            assert wait_until(lambda: not bc.has("short"))
            assert cleaner.is_running and bc.stats()["errors"] == 0
        else:
            assert wait_until(lambda: bc.stats()["expired"] == 1)
        assert bc.get("long") == 2
    finally:
        cleaner.stop()


def test_default_interval_and_idempotent_start_stop():
    c = BrainCache()
    cleaner = CacheCleaner(c)
    assert cleaner.interval == 60
    assert not cleaner.is_running
    cleaner.start()
    cleaner.start()
    assert cleaner.is_running
    cleaner.stop()
    cleaner.stop()
    assert not cleaner.is_running
    cleaner.start()  # restartable
    assert cleaner.is_running
    cleaner.stop()


def test_context_manager():
    c = BrainCache()
    with CacheCleaner(c, interval=0.01) as cleaner:
        assert cleaner.is_running
        c.set("k", 1, ttl=0.01)
        assert wait_until(lambda: len(c) == 0)
    assert not cleaner.is_running
