"""JSON string extraction: a JSON payload reduced to its decoded string keys and values, so
escapes cannot hide a term. Objects decode to (key, value) pair tuples. PURE."""

import json
from collections.abc import Iterator


class _NotJson:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON = _NotJson()
"""Returned by `decode_json` when the text is not a JSON object, array or string."""


def _reject_constant(name: str) -> object:
    # NaN/Infinity are not JSON; accepting them would let NaN slip past min/max checks.
    raise ValueError(f"{name} is not valid JSON")


# Objects decode to tuples of (key, value) pairs so duplicate keys stay visible: a parser
# that keeps the first duplicate upstream must not see a value we never checked.
_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=tuple, parse_constant=_reject_constant)


def decode_json(text: str) -> object:
    """Decode a JSON object, array or string; objects become tuples of (key, value) pairs.

    Returns `NOT_JSON` for anything else (plain text, bare numbers, invalid JSON).
    """
    stripped = text.lstrip(" \t\r\n\ufeff")
    if not stripped or stripped[0] not in '{["':
        return NOT_JSON
    try:
        return _PAIRS_DECODER.decode(stripped)
    except (ValueError, RecursionError):
        return NOT_JSON


def json_strings(text: str, value: object) -> str:
    """Decoded strings of `value` (already decoded from `text`), joined by newlines."""
    if "\\" not in text:
        # Without backslashes a valid JSON text has no escapes, so its string literals are
        # exactly the odd segments between double quotes; much faster than walking.
        return "\n".join(text.split('"')[1::2])
    return "\n".join(iter_json_strings(value))


def payload_strings(payload: str) -> str:
    """Decoded string keys and values of a JSON payload joined by newlines; else the payload.

    JSON here means an object, array or string; other text (including bare JSON numbers)
    is returned unchanged. Values of duplicate keys are all included.
    """
    value = decode_json(payload)
    if value is NOT_JSON:
        return payload
    return json_strings(payload, value)


def iter_json_strings(value: object) -> Iterator[str]:
    """Yield every string key and value of a decoded JSON value, in document order.

    Objects may be dicts or tuples of (key, value) pairs (the duplicate-preserving form
    that `policy.evaluate` parses into). Iterative, so deep nesting cannot overflow.
    """
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, tuple):  # object as (key, value) pairs
            for key, child in reversed(item):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, list):
            stack.extend(reversed(item))
