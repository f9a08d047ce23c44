"""The backends: ``memory.MemoryBackend`` (default), ``file.FileBackend`` (the original's JSON
file), ``redb.RedbBackend`` (durable, multi-process) and ``redis.RedisBackend``.

A memcached backend will live in ``braincache.backend.memcached`` once the Rust one exists.
"""
