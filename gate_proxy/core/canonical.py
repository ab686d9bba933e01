"""Canonical JSON in the style of RFC 8785 (JCS), used for every hash and signature.

Keys are sorted, there is no insignificant whitespace, strings are UTF-8, and numbers
use the shortest round-trip form. Integral floats are written as integers ("1", not
"1.0") as JCS does. Non-finite numbers are refused: they have no JSON form.
"""

import json
import math
import re
from typing import Any

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _jcs_number(value: float) -> str:
    """ECMAScript Number-to-String, as RFC 8785 requires."""
    if not math.isfinite(value):
        raise ValueError("non-finite numbers have no canonical JSON form")
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if -7 < power < 21:  # ECMAScript writes these without an exponent
        return format(value, "f").rstrip("0").rstrip(".") if power < 0 else str(int(value))
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def _encode_slow(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return _encoder.encode(value)
    if isinstance(value, float):
        return _jcs_number(value)
    if isinstance(value, dict):
        items = sorted((str(key), item) for key, item in value.items())
        return (
            "{"
            + ",".join(f"{_encoder.encode(key)}:{_encode_slow(item)}" for key, item in items)
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_slow(item) for item in value) + "]"
    return _encoder.encode(value)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_float(item) for item in value)
    return False


# Python and JCS write floats alike except integral values ("1.0") and exponents ("1e-07").
# Checking the encoded text for those shapes is far cheaper than walking every value; a
# false alarm (the shape inside a string) only costs the slow path, never a wrong result.
_NON_JCS_NUMBER = re.compile(r"\d\.0[,}\]]|\d\.0$|\de[+-]")


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value``."""
    text = _encoder.encode(value)
    if _NON_JCS_NUMBER.search(text) and _has_float(value):
        text = _encode_slow(value)
    return text


def canonical_bytes(value: Any) -> bytes:
    return canonical_json(value).encode("utf-8")
