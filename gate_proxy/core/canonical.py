"""Canonical JSON (RFC 8785, JCS) for every hash and signature the gate makes.

The ``rfc8785`` package is the reference: it writes numbers as ECMAScript does and sorts
keys by UTF-16 code units. It is pure Python (about 50 µs for a ledger event), so the
common case takes a faster road to the same bytes: orjson with sorted keys. For values
made of dicts with ASCII string keys, lists, tuples, strings, booleans, None, integers and
"plain" floats, orjson's output is byte-identical to JCS:

- keys: for ASCII, byte order is UTF-16 order;
- strings: both write UTF-8 and escape only ``"``, ``\\`` and the controls below U+0020,
  with the same short forms (\\b \\t \\n \\f \\r) and lowercase ``\\u00xx`` for the rest;
- integers: exact digits (beyond ±2**53 JCS has no form; see ``canonical_bytes``);
- a float whose shortest round-trip form (``repr``) has a fraction and no exponent (0.12,
  -3.5: the range 1e-4 <= |x| < 1e16) is written as that same shortest form by
  ECMAScript, by ``rfc8785`` (which starts from ``repr``) and by orjson.

Every other float (1.0, 1e21, 5e-324, -0.0), a non-ASCII key, and any other type go to
``rfc8785``. Property tests hold the two equal (tests/test_canonical.py). Non-finite
numbers are refused: they have no JSON form.
"""

import json
from typing import Any

import orjson
import rfc8785

__all__ = ["canonical_bytes", "canonical_json"]

# Version of the canonical form inside ledger events (``hash_v``): 1 was the gate's own
# approximation of JCS, 2 is RFC 8785. Verification hashes the stored text, so both verify.
CANONICAL_VERSION = 2

# orjson refuses lone surrogates and integers beyond 64 bits; for those the standard
# encoder writes the same bytes our earlier fast road did (exact digits, surrogatepass).
_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_SORTED = orjson.OPT_SORT_KEYS
_float_repr = float.__repr__


def _plain(value: Any) -> bool:
    """True when orjson's output is already JCS for ``value`` (see the module doc)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            kind = type(item)
            if not (kind is str or kind is int or kind is bool or item is None or _plain(item)):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            kind = type(item)
            if not (kind is str or kind is int or kind is bool or item is None or _plain(item)):
                return False
        return True
    if kind is float:
        text = _float_repr(value)
        # An exponent, no fraction (1.0, -0.0) or not finite ("inf", "nan"): the reference.
        return "e" not in text and "n" not in text and not text.endswith(".0")
    # A str subclass (the gate's StrEnum statuses and event types): orjson and ``rfc8785``
    # both write its characters, as for a plain str. Any other subclass or type: let the
    # reference encoder decide (or refuse).
    return isinstance(value, str)


def canonical_bytes(value: Any) -> bytes:
    if _plain(value):
        try:
            return orjson.dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:  # a lone surrogate, an integer beyond 64 bits
            return _encoder.encode(value).encode("utf-8", "surrogatepass")
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        # An integer beyond ±2**53 has no RFC 8785 form (I-JSON: send it as a string).
        # Hashes only need the same bytes for the same value: its exact digits, with the
        # standard encoder for the rest of this value.
        return _encoder.encode(value).encode("utf-8", "surrogatepass")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        # UnicodeEncodeError: a lone surrogate where the reference must write UTF-8 (a
        # non-ASCII key); no UTF-8 store could hold it either.
        raise ValueError(f"no canonical JSON form: {exc}") from exc


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value``."""
    return canonical_bytes(value).decode("utf-8", "surrogatepass")
