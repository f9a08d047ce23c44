"""The @cache decorator."""

import pytest

from braincache import BrainCache, cache
from conftest import wait_until


def test_memoizes():
    calls = []

    @cache(ttl=60)
    def heavy(x, y):
        calls.append((x, y))
        return x * y

    assert heavy(6, 7) == 42
    assert heavy(6, 7) == 42
    assert heavy(2, 3) == 6
    assert calls == [(6, 7), (2, 3)]
    assert heavy.__name__ == "heavy"


def test_without_parentheses_caches_forever():
    calls = []

    @cache
    def f(x):
        calls.append(x)
        return x

    assert f(1) == 1 and f(1) == 1
    assert calls == [1]


def test_ttl_expires():
    calls = []

    @cache(ttl=0.02)
    def f():
        calls.append(1)
        return len(calls)

    assert f() == 1
    assert wait_until(lambda: f() == 2)


def test_kwargs_order_does_not_matter():
    calls = []

    @cache(ttl=60)
    def f(**kw):
        calls.append(kw)
        return sorted(kw)

    assert f(a=1, b=2) == ["a", "b"]
    assert f(b=2, a=1) == ["a", "b"]
    assert len(calls) == 1


def test_dict_and_set_arguments_are_canonical():
    calls = []

    @cache(ttl=60)
    def f(d):
        calls.append(d)
        return len(d)

    f({"a": 1, "b": 2})
    f({"b": 2, "a": 1})
    f(frozenset([1, 2]))
    f(frozenset([2, 1]))
    assert len(calls) == 2


def test_exceptions_are_not_cached():
    calls = []

    @cache(ttl=60)
    def f():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first")
        return "ok"

    with pytest.raises(RuntimeError, match="first"):
        f()
    assert f() == "ok"


def test_unkeyable_arguments_are_type_errors():
    @cache(ttl=60)
    def f(x):
        return 1

    with pytest.raises(TypeError, match="'object'"):
        f(object())


def test_unstorable_results_are_type_errors():
    @cache(ttl=60)
    def f():
        return object()

    with pytest.raises(TypeError, match="never pickles"):
        f()


def test_explicit_cache(tmp_path):
    from braincache.backend.redb import RedbBackend

    store = BrainCache(RedbBackend(str(tmp_path / "c.redb")))

    @cache(ttl=60, cache=store)
    def f(x):
        return [x]

    assert f("a") == ["a"]
    assert len(store) == 1


def test_results_read_the_same_first_time_and_after():
    @cache(ttl=60)
    def f():
        return (1, 2)

    assert f() == [1, 2]  # tuples come back as lists, from the first call on
    assert f() == [1, 2]
