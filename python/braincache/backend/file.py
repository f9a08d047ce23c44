"""``FileBackend``; see its docstring."""

from braincache._native import FileBackend

__all__ = ["FileBackend"]
