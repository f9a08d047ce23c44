"""``MemoryBackend``; see its docstring."""

from braincache._native import MemoryBackend

__all__ = ["MemoryBackend"]
