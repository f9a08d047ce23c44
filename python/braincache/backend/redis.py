"""``RedisBackend``; see its docstring."""

from braincache._native import RedisBackend

__all__ = ["RedisBackend"]
