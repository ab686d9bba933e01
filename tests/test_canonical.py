"""core/canonical.py is RFC 8785 byte for byte: checked against the rfc8785 package."""

import math
import random

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
