"""core/canonical.py is RFC 8785 byte for byte: checked against the rfc8785 package."""

import math
import random
import struct
from collections import OrderedDict
from enum import StrEnum

import pytest
import rfc8785

from gate_proxy.core.canonical import canonical_bytes


def random_string(rng: random.Random) -> str:
    alphabet = ["a", "Z", "é", "€", "\u2028", "\n", '"', "\\", "\x01", "\x7f", "😀", "\ue000"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randint(0, 8 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        safe = 2**53 - 1
        return rng.randint(-safe, safe) if rng.random() < 0.2 else rng.randint(-1000, 1000)
    if kind == 3:
        exponent = rng.randint(-30, 30)
        return rng.uniform(-10, 10) * 10.0**exponent
    if kind == 4:
        return random_string(rng)
    if kind in (5, 6):
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_string(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_equal_to_the_reference_on_random_values() -> None:
    rng = random.Random(8785)
    for _ in range(3000):
        value = random_value(rng)
        assert canonical_bytes(value) == rfc8785.dumps(value), value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8.5e-06, b"0.0000085"),
        (8.4e-06, b"0.0000084"),
        (1e21, b"1e+21"),
        (1.5e20, b"150000000000000000000"),
        (1.0, b"1"),
        (-0.0, b"0"),
        ({"\ue000": 1, "😀": 2}, '{"😀":2,"\ue000":1}'.encode()),  # UTF-16 order
        ({"b": 1, "a": [1, "x"]}, b'{"a":[1,"x"],"b":1}'),
    ],
)
def test_known_forms(value: object, expected: bytes) -> None:
    assert canonical_bytes(value) == expected


def test_values_that_differ_hash_differently() -> None:
    assert canonical_bytes({"v": 8.5e-06}) != canonical_bytes({"v": 8.4e-06})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"v": value})


def test_integers_beyond_the_json_double_range_keep_their_exact_digits() -> None:
    big = 2**60 + 1
    assert canonical_bytes({"n": big}) == b'{"n":1152921504606846977}'
    assert canonical_bytes({"n": big}) != canonical_bytes({"n": big + 1})
    assert canonical_bytes({"n": big, "f": 0.5}) == canonical_bytes({"f": 0.5, "n": big})


def _random_double(rng: random.Random) -> float:
    """Any finite double: random bits, or a short decimal, or a power-of-ten-scaled one."""
    while True:
        kind = rng.randint(0, 2)
        if kind == 0:
            value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        elif kind == 1:
            value = round(rng.uniform(-1e4, 1e4), rng.randint(0, 8))
        else:
            value = rng.uniform(-1, 1) * 10.0 ** rng.randint(-8, 22)
        if math.isfinite(value):
            return value


def test_every_float_form_equals_the_reference() -> None:
    """The fast road writes a float as orjson does only when its shortest form has a
    fraction and no exponent; this holds that choice to RFC 8785 over many doubles."""
    rng = random.Random(754)
    for _ in range(100_000):
        value = _random_double(rng)
        assert canonical_bytes(value) == rfc8785.dumps(value), repr(value)
    for value in (0.0001, 0.00009999999999999999, 1e15 + 0.5, 9007199254740991.0, 1e16, 5e-324):
        assert canonical_bytes({"v": [value]}) == rfc8785.dumps({"v": [value]}), repr(value)


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        {"status": Colour.RED, "n": 1},  # a str subclass: its text
        OrderedDict([("b", 1), ("a", 2)]),  # a dict subclass: sorted like a dict
        {"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4},  # non-ASCII keys: UTF-16 order
        {"t": (1, "x", None, True, 0.5)},  # a tuple is an array
        {"deep": [[[[{"a": [0.25, -1.5, 2]}]]]]},
    ],
)
def test_the_shapes_the_fast_road_passes_by_equal_the_reference(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_integers_between_two_to_the_53_and_beyond_64_bits_keep_exact_digits() -> None:
    for n in (2**53, 2**63 + 5, 2**64 + 1, -(2**70)):
        assert canonical_bytes({"n": n, "f": 0.5}) == f'{{"f":0.5,"n":{n}}}'.encode()


def test_a_lone_surrogate_keeps_its_earlier_bytes() -> None:
    # orjson refuses lone surrogates; the standard encoder writes them as before.
    assert canonical_bytes({"s": "\ud800"}) == '{"s":"\ud800"}'.encode("utf-8", "surrogatepass")


def test_the_ledgers_str_enums_take_the_fast_road() -> None:
    # Every ledger event carries StrEnum values (its type, a status): the reference encoder
    # (pure Python, ~50 µs an event) must not be what seals them.
    from gate_proxy.core.canonical import _plain
    from gate_proxy.core.intents import Event, Status

    body = {"type": Event.APPROVED, "data": {"result": Status.APPROVED, "risk_score": 0.3}}
    assert _plain(body)
    assert canonical_bytes(body) == rfc8785.dumps(body)


def test_a_lone_surrogate_in_a_key_has_no_canonical_form() -> None:
    with pytest.raises(ValueError, match="no canonical JSON form"):
        canonical_bytes({"\ud800": 1})
