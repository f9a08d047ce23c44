"""``CacheCleaner(cache, interval=60)``: purges expired entries in a background thread.

``start()`` starts it, ``stop()`` stops it and waits for the thread to end (the original did
not wait). It wakes at least every ``interval`` seconds and as soon as an entry expires.
"""

from braincache._native import CacheCleaner

__all__ = ["CacheCleaner"]
