#!/usr/bin/env python3
"""The Python peer: diskcache (SQLite) on the same workloads as the braincache harness.

Usage: diskcache_peer.py FOLDER KEYS GETS SETS_PER_THREAD THREADS
Prints one JSON object: {"get_ops": ..., "set_ops": ...} (operations per second).

Or: diskcache_peer.py --single-sets FOLDER SETS
Prints {"set1_ops": ...}: SETS sets on one thread with diskcache's default settings (SQLite in
WAL mode with synchronous=NORMAL: a commit per set, no fsync per commit), what a Python user
gets out of the box; the peer of braincache's write-behind sets.

Gets run on one thread over KEYS prefilled 64-byte values. Sets run on THREADS threads, each
writing its own keys; diskcache commits every set to SQLite, opened here with
sqlite_synchronous=2 (FULL) so every acknowledged set is durable, like braincache's.
"""
import json
import sys
import threading
import time

import diskcache


def single_sets(folder, sets):
    cache = diskcache.Cache(folder)
    value = b"\x07" * 64
    start = time.perf_counter()
    for i in range(sets):
        cache.set(f"s:{i}", value, expire=3600)
    ops = sets / (time.perf_counter() - start)
    cache.close()
    print(json.dumps({"set1_ops": ops}))


def main():
    if sys.argv[1] == "--single-sets":
        single_sets(sys.argv[2], int(sys.argv[3]))
        return
    folder, keys, gets, sets_per_thread, threads = sys.argv[1], *map(int, sys.argv[2:6])
    # FULL: SQLite fsyncs every commit, so each acknowledged set is durable, as braincache's are.
    cache = diskcache.Cache(folder, sqlite_synchronous=2)
    value = b"\x07" * 64
    for i in range(keys):
        cache.set(f"key:{i:08}", value)
    order = [(i * 7919) % keys for i in range(gets)]
    start = time.perf_counter()
    for i in order:
        cache.get(f"key:{i:08}")
    get_ops = gets / (time.perf_counter() - start)

    def writer(t):
        c = diskcache.Cache(folder, sqlite_synchronous=2)
        for i in range(sets_per_thread):
            c.set(f"w{t}:{i}", value, expire=3600)
        c.close()

    ts = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    set_ops = threads * sets_per_thread / (time.perf_counter() - start)
    cache.close()
    print(json.dumps({"get_ops": get_ops, "set_ops": set_ops}))


if __name__ == "__main__":
    main()
