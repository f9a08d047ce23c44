"""The stampede workload on Python diskcache's `memoize_stampede` (braincache-bench's peer).

usage: diskcache_stampede.py DIR PROCESSES THREADS MILLIS

PROCESSES processes x THREADS threads call one memoized function (expire 0.1 s, a 20 ms body
that appends a line to a file per run) for MILLIS ms, 1 ms apart. Prints JSON: loader runs per
expiry and the p50/p99 latency of a call in microseconds.
"""
import json
import multiprocessing
import os
import sys
import threading
import time

import diskcache


def worker(directory, threads, millis, start_at, out):
    cache = diskcache.Cache(directory)
    runs_path = os.path.join(directory, "runs.log")

    @diskcache.memoize_stampede(cache, expire=0.1, beta=1)
    def hot():
        with open(runs_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.02)
        return b"\x07" * 64

    time.sleep(max(0.0, start_at - time.time()))
    end = time.monotonic() + millis / 1000
    lat = []
    lock = threading.Lock()

    def loop():
        mine = []
        while time.monotonic() < end:
            t = time.perf_counter_ns()
            hot()
            mine.append(time.perf_counter_ns() - t)
            time.sleep(0.001)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(lat)


def main():
    directory, processes, threads, millis = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(directory, exist_ok=True)
    start_at = time.time() + 1.0
    out = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(directory, threads, millis, start_at, out))
          for _ in range(processes)]
    for p in ps:
        p.start()
    lat = []
    for _ in ps:
        lat.extend(out.get())
    for p in ps:
        p.join()
    lat.sort()
    with open(os.path.join(directory, "runs.log")) as f:
        runs = sum(1 for _ in f)
    pct = lambda p: lat[round((len(lat) - 1) * p)] / 1e3 if lat else float("nan")
    print(json.dumps({"runs_per_expiry": runs / (millis / 100), "p50_us": pct(0.5), "p99_us": pct(0.99)}))


if __name__ == "__main__":
    main()
