"""Canonical JSON (RFC 8785, JCS) for every hash and signature the gate makes.

The ``rfc8785`` package is the reference: it writes numbers as ECMAScript does and sorts
keys by UTF-16 code units. It is pure Python, so the common case takes a faster road
that gives the same bytes: the standard encoder with sorted keys and no whitespace is
byte-identical to JCS for values without floats whose object keys are all ASCII (there
code-point and UTF-16 order agree, and both escape exactly the same characters). Any
float, or a non-ASCII key, goes to ``rfc8785``. A property test holds the two equal
(tests/test_canonical.py). Non-finite numbers are refused: they have no JSON form.
"""

import json
from typing import Any

import rfc8785

__all__ = ["canonical_bytes", "canonical_json"]

# Version of the canonical form inside ledger events (``hash_v``): 1 was the gate's own
# approximation of JCS, 2 is RFC 8785. Verification hashes the stored text, so both verify.
CANONICAL_VERSION = 2

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _plain(value: Any) -> bool:
    """True when the standard encoder's output is already JCS for ``value``."""
    if isinstance(value, str | bool) or value is None:
        return True
    if isinstance(value, int):
        return True  # exact digits; beyond ±2**53 JCS has no form (see canonical_bytes)
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _plain(item) for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return False  # anything else: let the reference encoder decide (or refuse)


def canonical_bytes(value: Any) -> bytes:
    if _plain(value):
        return _encoder.encode(value).encode("utf-8", "surrogatepass")
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        # An integer beyond ±2**53 has no RFC 8785 form (I-JSON: send it as a string).
        # Hashes only need the same bytes for the same value: its exact digits, with the
        # standard encoder for the rest of this value.
        return _encoder.encode(value).encode("utf-8", "surrogatepass")
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"no canonical JSON form: {exc}") from exc


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value``."""
    return canonical_bytes(value).decode("utf-8", "surrogatepass")
