"""``RedbBackend``; see its docstring."""

from braincache._native import RedbBackend

__all__ = ["RedbBackend"]
