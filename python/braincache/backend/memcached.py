"""``MemcachedBackend``; see its docstring."""

from braincache._native import MemcachedBackend

__all__ = ["MemcachedBackend"]
