"""Typing stubs of the extension module ``braincache._native`` (built from crates/braincache-py)."""

from collections.abc import Callable, Sequence
from os import PathLike
from types import TracebackType
from typing import Any, TypeVar, Union

T = TypeVar("T")

#: What a cache stores: what JSON holds. Tuples are stored as lists and read back as lists.
#: Integers must lie in [-2**63, 2**64); NaN and infinities need a binary codec (not "json").
JsonValue = Union[None, bool, int, float, str, list[Any], tuple[Any, ...], dict[str, Any]]
Seconds = Union[int, float]

MAX_DEPTH: int
"""How deeply lists and dicts may nest in a value (deeper, or cyclic: ``ValueError``)."""

class BrainCacheError(Exception):
    """A cache operation failed; the message names the operation, the key or path, and why."""

class UnsupportedOperation(BrainCacheError, NotImplementedError):
    """The backend cannot answer this operation at all (memcached: ``len``, ``next_expiry``).

    The message names the operation and the backend; nothing was changed.
    """

class CacheTimeoutError(BrainCacheError, TimeoutError):
    """A server did not answer within the backend's timeout; for a write the outcome is unknown."""

class MemoryBackend:
    """The in-process memory backend (the default); bounded when a bound is given."""

    def __init__(self, max_entries: int | None = None, max_bytes: int | None = None) -> None: ...

class FileBackend:
    """The original's JSON file, written atomically (fsynced) on every change; multi-process."""

    def __init__(self, path: str | PathLike[str]) -> None: ...
    @property
    def path(self) -> str: ...

class RedbBackend:
    """A durable redb database file; several processes may use it at once."""

    def __init__(
        self, path: str | PathLike[str], write_behind: float | None = None
    ) -> None: ...
    @property
    def path(self) -> str: ...

class RedisBackend:
    """Entries on a Redis server under ``key_prefix`` (default ``"braincache:"``)."""

    def __init__(self, url: str, key_prefix: str | None = None) -> None: ...
    @property
    def url(self) -> str: ...

class MemcachedBackend:
    """Entries on memcached servers under ``key_prefix`` (default ``"braincache:"``).

    Keys are spread over ``url`` and ``servers`` by consistent hashing. ``len(cache)`` and
    ``next_expiry()`` raise ``UnsupportedOperation``: memcached cannot count or list keys.
    ``clear()`` empties only this prefix. Items over ``item_limit`` bytes (default 1 MiB,
    memcached's ``-I``) are refused with ``BrainCacheError``; a server that does not answer
    makes calls fail after ``response_timeout`` with ``CacheTimeoutError``. Timeouts and
    ``generation_refresh`` are seconds (default 1 each); ``pool_size`` defaults to 16.
    """

    def __init__(
        self,
        url: str,
        key_prefix: str | None = None,
        *,
        servers: Sequence[str] = (),
        pool_size: int | None = None,
        connect_timeout: Seconds | None = None,
        response_timeout: Seconds | None = None,
        item_limit: int | None = None,
        generation_refresh: Seconds | None = None,
        connect_lazily: bool = False,
    ) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def key_prefix(self) -> str: ...
    @property
    def servers(self) -> list[str]:
        """The servers as ``host:port``, in the order given."""

Backend = Union[MemoryBackend, FileBackend, RedbBackend, RedisBackend, MemcachedBackend]

class BrainCache:
    """A cache of JSON-shaped values with per-entry TTL.

    A stored ``None`` is a value (``has`` is true); ``ttl=0`` is already expired unless
    ``zero_ttl_means_forever=True``. Keys are ``str`` (``TypeError`` otherwise). Values that
    JSON cannot hold are a ``TypeError``: nothing is pickled.
    """

    def __init__(
        self, backend: Backend | None = None, *, zero_ttl_means_forever: bool = False
    ) -> None: ...
    def set(self, key: str, value: JsonValue, ttl: Seconds | None = None) -> None:
        """Stores ``value`` under ``key`` for ``ttl`` seconds (``None``: forever)."""
    def get(self, key: str) -> Any:
        """The value under ``key``; ``None`` when absent or expired (see ``has``)."""
    def has(self, key: str) -> bool:
        """True when a live entry is stored under ``key``, even one holding ``None``."""
    def delete(self, key: str) -> bool:
        """Removes ``key``; returns whether an entry was there."""
    def clear(self) -> None:
        """Removes every entry."""
    def get_or_set(self, key: str, func: Callable[[], T], ttl: Seconds | None = None) -> Any:
        """The value under ``key``, or ``func()`` stored for ``ttl`` seconds and returned.

        Threads asking for one key at once call ``func`` once and share its result or
        exception. The result is returned as stored (tuples as lists).
        """
    def purge_expired(self) -> int:
        """Removes expired entries now; returns how many."""
    def next_expiry(self) -> float | None:
        """The earliest deadline of a stored entry (Unix seconds), or ``None`` when none has one.

        Raises ``UnsupportedOperation`` on memcached, which cannot list deadlines.
        """
    def flush(self) -> None:
        """Writes out whatever the backend buffers."""
    def stats(self) -> dict[str, int]:
        """hits, misses, sets, evictions, expired, errors since the cache was made."""
    @property
    def codec(self) -> str:
        """The codec values are stored with (``"json"`` for the file backend)."""
    @property
    def zero_ttl_means_forever(self) -> bool: ...
    def __len__(self) -> int:
        """The number of stored entries; ``UnsupportedOperation`` on memcached."""
    def __contains__(self, key: str) -> bool: ...

class CacheCleaner:
    """Purges a cache's expired entries in a background thread."""

    def __init__(self, cache: BrainCache, interval: Seconds | None = 60) -> None: ...
    def start(self) -> None:
        """Starts the thread (does nothing when it runs)."""
    def stop(self) -> None:
        """Stops the thread and waits for it to end."""
    @property
    def is_running(self) -> bool: ...
    @property
    def interval(self) -> float: ...
    def __enter__(self) -> CacheCleaner: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

def call_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    """The ``@cache`` key of a call: ``name`` and a typed, canonical encoding of the arguments."""
