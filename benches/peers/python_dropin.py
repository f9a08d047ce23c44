#!/usr/bin/env python3
"""The Python package `braincache` against the Python original and diskcache, in one process.

Usage: python_dropin.py [--quick] [--json FILE]   (needs `pip install .`; diskcache optional)

Rows (operations per second, median of 3 rounds (5 for memory), each pair measured alternately):
- memory get / set: braincache's MemoryBackend vs the original's MemoryBackend (re-created
  below from its description: a dict of {"value", "expire_at"} checked against time.time());
  gets of entries without and with a TTL (only the latter read the clock, in both).
- durable file set: braincache's FileBackend (atomic replace, two fsyncs per set) vs the
  original's FileBackend (json.dump of the whole dict per set, no fsync: not durable).
- redb get / set: braincache's RedbBackend (every set durable) vs diskcache.Cache with
  sqlite_synchronous=2 (FULL: every set durable too).
Values are 64-character strings; gets read keys prefilled once (every prefilled set is a
durable commit, so the redb and diskcache prefills take a while) in a scattered order.
The memory rows do no I/O and are timed in this thread's CPU time (5 rounds), so that other
processes on a loaded machine do not count; the file and redb rows wait for fsyncs and are
timed on the wall clock.
"""
import json
import os
import statistics
import sys
import tempfile
import time

from braincache import BrainCache
from braincache.backend.file import FileBackend
from braincache.backend.memory import MemoryBackend
from braincache.backend.redb import RedbBackend


class OriginalMemoryBackend:
    """The original's MemoryBackend: a dict of entries with an absolute expire_at."""

    def __init__(self):
        self.store = {}

    def set(self, key, value, ttl=None):
        expire_at = time.time() + ttl if ttl else None
        self.store[key] = {"value": value, "expire_at": expire_at}

    def get(self, key):
        item = self.store.get(key)
        if not item:
            return None
        if item["expire_at"] and time.time() > item["expire_at"]:
            del self.store[key]
            return None
        return item["value"]


class OriginalFileBackend(OriginalMemoryBackend):
    """The original's FileBackend: the whole dict json.dump'ed on every set, no fsync."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        if os.path.exists(path):
            with open(path) as f:
                self.store = json.load(f)

    def set(self, key, value, ttl=None):
        super().set(key, value, ttl)
        with open(self.path, "w") as f:
            json.dump(self.store, f)


class OriginalBrainCache:
    def __init__(self, backend=None):
        self.backend = backend or OriginalMemoryBackend()

    def set(self, key, value, ttl=None):
        self.backend.set(key, value, ttl)

    def get(self, key):
        return self.backend.get(key)


VALUE = "v" * 64


def ops_per_sec(fn, n, clock=time.perf_counter):
    start = clock()
    fn()
    return n / (clock() - start)


def get_workload(cache, keys, gets, fill=True, ttl=None):
    names = [f"key:{i:08}" for i in range(keys)]
    if fill:
        for k in names:
            cache.set(k, VALUE, ttl)
    order = [names[(i * 7919) % keys] for i in range(gets)]
    get = cache.get

    def run():
        for k in order:
            get(k)

    return run


def set_workload(cache, sets, prefix, ttl=3600):
    names = [f"{prefix}:{i}" for i in range(sets)]
    s = cache.set

    def run():
        for k in names:
            s(k, VALUE, ttl)

    return run


def compare(rows, name, ours, peer, peer_name, n, rounds, clock=time.perf_counter):
    """Runs `ours()` and `peer()` alternately `rounds` times; both return a fresh workload."""
    a, b = [], []
    for r in range(rounds):
        a.append(ops_per_sec(ours(r), n, clock))
        b.append(ops_per_sec(peer(r), n, clock))
    ma, mb = statistics.median(a), statistics.median(b)
    rows.append({"workload": name, "braincache": ma, "peer": peer_name, "peer_ops": mb,
                 "ratio": ma / mb})


def main():
    quick = "--quick" in sys.argv
    json_out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    rounds = 3
    mem_keys, mem_ops = (10_000, 100_000) if quick else (100_000, 500_000)
    file_entries, file_sets = (200, 50) if quick else (1_000, 200)
    redb_keys, redb_gets, redb_sets = (2_000, 20_000, 100) if quick else (5_000, 100_000, 300)
    rows = []
    tmp = tempfile.mkdtemp(prefix="braincache-py-bench-")

    mem_ours, mem_orig = BrainCache(MemoryBackend()), OriginalBrainCache()
    cpu = time.thread_time
    compare(rows, "memory get", lambda r: get_workload(mem_ours, mem_keys, mem_ops, r == 0),
            lambda r: get_workload(mem_orig, mem_keys, mem_ops, r == 0), "original MemoryBackend",
            mem_ops, 5, cpu)
    # Entries with a deadline: both read the clock on every get.
    ttl_ours, ttl_orig = BrainCache(MemoryBackend()), OriginalBrainCache()
    compare(rows, "memory get (ttl=3600)",
            lambda r: get_workload(ttl_ours, mem_keys, mem_ops, r == 0, 3600),
            lambda r: get_workload(ttl_orig, mem_keys, mem_ops, r == 0, 3600),
            "original MemoryBackend", mem_ops, 5, cpu)
    compare(rows, "memory set", lambda r: set_workload(mem_ours, mem_ops, f"s{r}"),
            lambda r: set_workload(mem_orig, mem_ops, f"s{r}"), "original MemoryBackend",
            mem_ops, 5, cpu)

    def file_pair(r):
        ours = BrainCache(FileBackend(os.path.join(tmp, f"ours{r}.json")))
        orig = OriginalBrainCache(OriginalFileBackend(os.path.join(tmp, f"orig{r}.json")))
        for c in (ours, orig):
            for i in range(file_entries):
                c.set(f"fill:{i}", VALUE)
        return ours, orig

    pairs = [file_pair(r) for r in range(rounds)]
    compare(rows, f"file set ({file_entries} entries)",
            lambda r: set_workload(pairs[r][0], file_sets, "w"),
            lambda r: set_workload(pairs[r][1], file_sets, "w"),
            "original FileBackend (no fsync)", file_sets, rounds)

    try:
        import diskcache
    except ImportError:
        diskcache = None
        print("diskcache is not installed: redb rows skipped (pip install diskcache)",
              file=sys.stderr)
    if diskcache is not None:
        redb = BrainCache(RedbBackend(os.path.join(tmp, "ours.redb")))
        dc = diskcache.Cache(os.path.join(tmp, "diskcache"), sqlite_synchronous=2)
        compare(rows, "redb get", lambda r: get_workload(redb, redb_keys, redb_gets, r == 0),
                lambda r: get_workload(dc, redb_keys, redb_gets, r == 0), "diskcache.Cache",
                redb_gets, rounds)
        compare(rows, "redb set (durable)", lambda r: set_workload(redb, redb_sets, f"w{r}"),
                lambda r: set_workload(dc, redb_sets, f"w{r}"),
                "diskcache.Cache (sqlite_synchronous=FULL)", redb_sets, rounds)
        dc.close()
        # Write-behind against diskcache's defaults: neither is durable when a set returns.
        behind = BrainCache(RedbBackend(os.path.join(tmp, "behind.redb"), write_behind=0.05))
        dc_default = diskcache.Cache(os.path.join(tmp, "diskcache-default"))

        def behind_sets(r):
            run = set_workload(behind, redb_sets, f"b{r}")

            def sets_then_flush():  # the flush counts: the rate includes the commits
                run()
                behind.flush()

            return sets_then_flush

        compare(rows, "redb set (write-behind)", behind_sets,
                lambda r: set_workload(dc_default, redb_sets, f"b{r}"),
                "diskcache.Cache (defaults)", redb_sets, rounds)
        dc_default.close()

    print(f"{'workload':<28}{'braincache ops/s':>18}{'peer ops/s':>14}{'ratio':>8}  peer")
    for row in rows:
        print(f"{row['workload']:<28}{row['braincache']:>18,.0f}{row['peer_ops']:>14,.0f}"
              f"{row['ratio']:>7.2f}x  {row['peer']}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
