#!/usr/bin/env python3
"""The Python peer of the bounded hit-ratio workload: diskcache with a size limit.

Usage: diskcache_bounded_peer.py FOLDER TRACE SIZE_LIMIT VALUE_LEN
Replays TRACE (one key a line): get, and set a VALUE_LEN-byte value on a miss. The cache has
size_limit=SIZE_LIMIT and eviction_policy='least-recently-used'. Prints
{"hit_ratio": ..., "volume": ...}.

diskcache compares size_limit with its volume(), which counts the SQLite file's pages as well as
the values, and culls at most cull_limit (10, the default) entries per set.
"""
import json
import sys

import diskcache


def main():
    folder, trace, size_limit, value_len = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cache = diskcache.Cache(
        folder, size_limit=size_limit, eviction_policy="least-recently-used"
    )
    value = b"\x07" * value_len
    hits = total = 0
    with open(trace) as f:
        for line in f:
            key = line.rstrip("\n")
            total += 1
            if cache.get(key) is not None:
                hits += 1
            else:
                cache.set(key, value)
    volume = cache.volume()
    cache.close()
    print(json.dumps({"hit_ratio": hits / max(total, 1), "volume": volume}))


if __name__ == "__main__":
    main()
