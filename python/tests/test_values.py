"""Values: what JSON holds round-trips exactly; nothing is pickled; keys are str."""

import json
import math
from collections import OrderedDict
from enum import IntEnum

import pytest

from braincache import BrainCache

ROUND_TRIP = [
    None, 0, "", False, [], {}, True, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1,
    0.0, -0.0, 1.5, 1e300, 5e-324, 2.0, "héllo ✓", "\x00", [None, [[]], {"a": {}}],
    {"nested": {"list": [1, 2.5, "x", None, False]}, "": 0},
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_round_trip(bc, value):
    bc.set("k", value)
    back = bc.get("k")
    assert back == value
    assert type(back) is type(value)
    assert json.dumps(back) == json.dumps(value)
    assert bc.has("k")


def test_float_bits_are_kept(bc):
    bc.set("k", -0.0)
    assert math.copysign(1, bc.get("k")) == -1
    bc.set("k", 0.1 + 0.2)
    assert bc.get("k") == 0.1 + 0.2


def test_non_finite_floats(bc):
    values = [float("nan"), float("inf"), float("-inf")]
    try:
        bc.set("k", values)
    except ValueError as e:
        # A codec that would not read them back (serde_json writes null) refuses them instead
        # of losing them; binary codecs keep them.
        assert bc.codec == "json" and "NaN" in str(e)
        assert not bc.has("k")
        return
    back = bc.get("k")
    assert math.isnan(back[0]) and back[1:] == values[1:]


def test_dict_order_is_kept(bc):
    d = {"b": 1, "a": 2, "c": 3}
    bc.set("k", d)
    assert list(bc.get("k")) == ["b", "a", "c"]


def test_tuples_come_back_as_lists(bc):
    bc.set("k", (1, (2, "x")))
    assert bc.get("k") == [1, [2, "x"]]


def test_subclasses_are_stored_as_their_base_type(bc):
    class Color(IntEnum):
        RED = 1

    bc.set("k", [Color.RED, OrderedDict(a=1)])
    assert bc.get("k") == [1, {"a": 1}]
    assert type(bc.get("k")[0]) is int


@pytest.mark.parametrize(
    "value, name",
    [({1, 2}, "set"), (b"bytes", "bytes"), (object(), "object"), (1j, "complex"),
     ([1, {"a": lambda: 0}], "function"), (range(3), "range")],
)
def test_other_objects_are_type_errors(bc, value, name):
    with pytest.raises(TypeError, match=f"'{name}'.*never pickles"):
        bc.set("k", value)
    assert not bc.has("k")


def test_non_str_dict_keys_are_type_errors(bc):
    with pytest.raises(TypeError, match="str keys"):
        bc.set("k", {1: "a"})


def test_big_ints_are_overflow_errors(bc):
    for v in (2**64, -(2**63) - 1, 10**30):
        with pytest.raises(OverflowError):
            bc.set("k", v)
    assert not bc.has("k")


def test_deep_and_cyclic_values_are_value_errors(bc):
    deep = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        bc.set("k", deep)
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested"):
        bc.set("k", cyclic)
    ok = []
    for _ in range(90):
        ok = [ok]
    bc.set("k", ok)
    assert bc.get("k") == ok


@pytest.mark.parametrize("key", [1, None, b"k", ("a",), 1.5])
def test_keys_must_be_str(bc, key):
    for call in (lambda: bc.set(key, 1), lambda: bc.get(key), lambda: bc.has(key),
                 lambda: bc.delete(key), lambda: bc.get_or_set(key, lambda: 1)):
        with pytest.raises(TypeError, match="keys must be str"):
            call()


def test_unusual_keys(bc):
    for key in ["", " ", "ключ", "a:b", "x" * 200]:
        bc.set(key, key)
        assert bc.get(key) == key


def test_file_values_are_real_json(tmp_path):
    from braincache.backend.file import FileBackend

    path = tmp_path / "c.json"
    c = BrainCache(FileBackend(str(path)))
    c.set("k", {"a": [1, None, 2.5, True, "s"]})
    assert json.loads(path.read_text())["k"]["value"] == {"a": [1, None, 2.5, True, "s"]}
