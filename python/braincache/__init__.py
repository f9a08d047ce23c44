"""braincache: a key-value cache with per-entry TTL, built in Rust.

The Python original's API, word for word::

    from braincache import BrainCache, cache
    from braincache.backend.file import FileBackend

    c = BrainCache(FileBackend("cache.json"))
    c.set("user_id", 1234, ttl=3600)
    c.get("user_id")  # 1234

Where the original was wrong, braincache's semantics apply:

- a stored ``None`` is a value: ``has`` is true and ``get`` returns ``None``;
- ``ttl=0`` means already expired (``BrainCache(..., zero_ttl_means_forever=True)`` keeps the
  original's "forever" for code that relied on it);
- ``@cache`` keys are collision-free (the function's qualified name and a typed encoding of its
  arguments) and ``None`` results are cached;
- ``CacheCleaner.stop()`` waits for the thread to end.

Errors are ``BrainCacheError``; two subclasses say more: ``UnsupportedOperation`` (also a
``NotImplementedError``) when the backend cannot answer at all (memcached: ``len``,
``next_expiry``), and ``CacheTimeoutError`` (also a ``TimeoutError``) when a server did not answer
in time.

Values are what JSON holds: ``None``, ``bool``, ``int`` (within ``[-2**63, 2**64)``), ``float``,
``str``, ``list``, ``tuple`` (read back as a list) and ``dict`` with ``str`` keys. Anything else is
a ``TypeError``: braincache never pickles, so no code runs from cache data.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from braincache._native import (
    BrainCache,
    BrainCacheError,
    CacheTimeoutError,
    UnsupportedOperation,
    call_key,
)

__all__ = ["BrainCache", "BrainCacheError", "CacheTimeoutError", "UnsupportedOperation", "cache"]

_default_cache = None


def _process_cache() -> BrainCache:
    global _default_cache
    if _default_cache is None:
        _default_cache = BrainCache()
    return _default_cache


F = TypeVar("F", bound=Callable[..., Any])


@overload
def cache(ttl: F) -> F: ...
@overload
def cache(
    ttl: float | None = None, *, cache: BrainCache | None = None
) -> Callable[[F], F]: ...
def cache(ttl=None, *, cache=None):
    """Memoizes a function: ``@cache(ttl=60)``.

    Results are stored in ``cache`` (a ``BrainCache``; by default one process-wide memory
    cache) under a key made of the function's module and qualified name and a typed encoding of
    its arguments, so different functions and differently typed arguments never share entries.
    ``None`` results are cached like any other. Concurrent calls with the same arguments run the
    function once; the others wait for its result. Exceptions are not cached.

    Arguments must be ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes`` or tuples,
    lists, dicts and sets of those (``TypeError`` otherwise); results must be values a
    ``BrainCache`` can store. ``@cache`` without parentheses caches forever.
    """
    if callable(ttl):
        return _decorate(ttl, None, cache)
    return lambda func: _decorate(func, ttl, cache)


def _decorate(func, ttl, target):
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        store = target if target is not None else _process_cache()
        key = call_key(name, args, kwargs)
        return store.get_or_set(key, lambda: func(*args, **kwargs), ttl)

    return wrapper
