"""The backends: ``memory.MemoryBackend`` (default), ``file.FileBackend`` (the original's JSON
file), ``redb.RedbBackend`` (durable, multi-process), ``redis.RedisBackend`` and
``memcached.MemcachedBackend`` (one or more memcached servers; ``len`` and ``next_expiry`` raise
``braincache.UnsupportedOperation`` there).
"""
