"""Reading API request bodies and query strings into use-case inputs.

Malformed input is InvalidInput (400) naming the field. The rules here and the request
schemas of the OpenAPI document (gate_proxy/api/openapi/requests.py) say the same thing:
tests/test_api_contract.py checks that every body the schema admits is accepted here and
every body it refuses is refused here. Shared conventions:

* JSON ``null`` counts as absent for every optional field (the Zehrava SDK sends every
  unset field as null);
* every spelling of a field that is present is checked, even when an earlier spelling
  wins (``recordCount`` and ``record_count``), so a bad value is never silently ignored;
* "blank" is ASCII whitespace only (``BLANK``), which every regex dialect (the schema's,
  a client's validator, Python's) agrees on.
"""

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gate_proxy.api.errors import HttpError
from gate_proxy.errors import invalid
from gate_proxy.principal import Role
from gate_proxy.usecases import Proposal
from gate_proxy.usecases.agents import NAME_PATTERN, RISK_TIERS
from gate_proxy.usecases.review import MAX_BULK_APPROVALS, BulkItem

BLANK = " \t\n\r\f\v"
# Counts and values stay inside what JSON clients and SQLite represent exactly.
MAX_COUNT = 2**53 - 1
MAX_VALUE_USD = 1e15
MAX_SEQ = 2**63 - 1
EXPIRES_IN = re.compile(r"([0-9]{1,5})([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def aliased[T](
    body: dict[str, Any], names: tuple[str, ...], read: Callable[[str, Any], T]
) -> T | None:
    """The first of ``names`` with a non-null value, read by ``read(name, value)``.

    Every spelling present is read (and so checked), not only the one that wins."""
    values = [read(name, body[name]) for name in names if body.get(name) is not None]
    return values[0] if values else None


def without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its null fields dropped, for use cases that read ``body.get(name,
    default)`` (null = absent, as everywhere in the API)."""
    return {key: value for key, value in body.items() if value is not None}


# -- field readers: (name, value) -> value, or InvalidInput naming the field ----------------------


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    return value


def identifier(name: str, value: Any) -> str:
    """A required name (destination, policy, an id): a string that is not blank."""
    if not isinstance(value, str) or not value.strip(BLANK):
        raise invalid(f"{name} is required: a non-blank string")
    return value.strip(BLANK)


def count(name: str, value: Any) -> int:
    # 3.0 is the integer 3 to JSON Schema (and to JavaScript): accept it as one.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise invalid(f"{name} must be a non-negative integer of at most {MAX_COUNT}")
    return value


def money(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name} must be a number from 0 to {MAX_VALUE_USD:.0e}")
    if isinstance(value, int) and not 0 <= value <= MAX_VALUE_USD:  # before float(): 10**400
        raise invalid(f"{name} must be a number from 0 to {MAX_VALUE_USD:.0e}")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= MAX_VALUE_USD:
        raise invalid(f"{name} must be a number from 0 to {MAX_VALUE_USD:.0e}")
    return number


def strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{name} must be a list of strings")
    return value


def mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{name} must be an object")
    return value


def one_of(*allowed: str) -> Callable[[str, Any], str]:
    def read(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise invalid(f"{name} must be one of {', '.join(allowed)}")
        return value

    return read


def expires_in(name: str, value: Any) -> int:
    match = EXPIRES_IN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(f"{name} must look like 30m, 1h or 2d (1-5 digits and s, m, h or d)")
    return max(1, int(match.group(1)) * UNIT_SECONDS[match.group(2)])


# -- bodies -------------------------------------------------------------------------------------


def proposal_from_body(body: dict[str, Any]) -> Proposal:
    destination = aliased(body, ("destination",), identifier)
    policy = aliased(body, ("policy",), identifier)
    if destination is None:
        raise invalid("destination is required: a non-blank string")
    if policy is None:
        raise invalid("policy is required: a non-blank string")
    payload = body.get("payload")  # any JSON value; not a string: its JSON text
    if payload is not None and not isinstance(payload, str):
        payload = json.dumps(payload, ensure_ascii=False)
    value = aliased(body, ("estimated_value_usd",), money)
    return Proposal(
        destination=destination,
        policy=policy,
        payload=payload,
        record_count=aliased(body, ("recordCount", "record_count"), count),
        estimated_value_usd=value,
        sensitivity_tags=tuple(aliased(body, ("sensitivity_tags",), strings) or ()),
        idempotency_key=aliased(body, ("idempotency_key",), text),
        on_behalf_of=aliased(body, ("on_behalf_of",), text),
        expires_in_seconds=aliased(body, ("expiresIn",), expires_in),
        metadata=aliased(body, ("metadata",), mapping) or {},
    )


def registration_from_body(body: dict[str, Any]) -> dict[str, Any]:
    """An agent registration, checked field by field, nulls dropped (the use case reads
    the plain dict and checks it again)."""
    name = body.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # fullmatch: no "x\n"
        raise invalid(
            "name is required: 1-64 letters, digits, _ . @ - (starting with one of the first two)"
        )
    aliased(body, ("role",), one_of(*(role.value for role in Role)))
    aliased(body, ("riskTier", "risk_tier"), one_of(*RISK_TIERS))
    for key in ("owner", "framework", "environment"):
        aliased(body, (key,), text)
    for key in ("allowed_policies", "allowed_destinations"):
        aliased(body, (key,), strings)
    aliased(body, ("metadata",), mapping)
    return without_nulls(body)


@dataclass(frozen=True, slots=True)
class ReviewInput:
    """An approve or reject: the hash the reviewer saw, and their note or reason."""

    review_hash: str | None
    note: str | None
    reason: str | None


def review_from_body(body: dict[str, Any]) -> ReviewInput:
    return ReviewInput(
        review_hash=aliased(body, ("reviewHash", "fingerprint"), text),
        note=aliased(body, ("note",), text),
        reason=aliased(body, ("reason",), text),
    )


@dataclass(frozen=True, slots=True)
class BulkApprovalInput:
    """A bulk approve: the intents (each with the review hash the reviewer saw) and one note."""

    items: tuple[BulkItem, ...]
    note: str | None


def bulk_approval_from_body(body: dict[str, Any]) -> BulkApprovalInput:
    """``{"intents": [{"intentId", "reviewHash"?}, ...], "note"?}``; 413 past
    MAX_BULK_APPROVALS intents (before the items are read), 400 naming a bad item."""
    listed = body.get("intents")
    if not isinstance(listed, list) or not listed:
        raise invalid(f"intents is required: a list of 1 to {MAX_BULK_APPROVALS} objects")
    if len(listed) > MAX_BULK_APPROVALS:
        raise HttpError(
            413,
            "too_many_intents",
            f"at most {MAX_BULK_APPROVALS} intents per call, got {len(listed)}: split the list",
        )
    items = tuple(_bulk_item(index, entry) for index, entry in enumerate(listed))
    return BulkApprovalInput(items, aliased(body, ("note",), text))


def _bulk_item(index: int, entry: Any) -> BulkItem:
    where = f"intents[{index}]"
    if not isinstance(entry, dict):
        raise invalid(f"{where} must be an object with an intentId")
    intent_id = aliased(entry, ("intentId",), lambda name, v: identifier(f"{where}.{name}", v))
    if intent_id is None:
        raise invalid(f"{where}.intentId is required: a non-blank string")
    review_hash = aliased(entry, ("reviewHash",), lambda name, v: text(f"{where}.{name}", v))
    return BulkItem(intent_id, review_hash)


def legacy_intent_id(body: dict[str, Any]) -> str:
    """Seed 004's approve/reject name the intent in the body: intentId, proposalId (V1)
    or intent_id."""
    intent_id = aliased(body, ("intentId", "proposalId", "intent_id"), identifier)
    if intent_id is None:
        raise invalid("intentId (or proposalId) is required: a non-blank string")
    return intent_id


# -- query strings -----------------------------------------------------------------------------

INTEGER = re.compile(r"-?[0-9]+")  # int() alone would take " 7", "+7", "7_0" and "٧"


def query_int(
    request: web.Request, name: str, default: int, *, lowest: int, highest: int, clamp: bool
) -> int:
    """An integer query parameter: ASCII digits only. Out of range: clamped or refused."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if INTEGER.fullmatch(raw) else None
    except ValueError:  # more digits than Python converts (4300)
        value = None
    if value is None:
        raise invalid(f"{name} must be an integer")
    if clamp:
        return max(lowest, min(value, highest))
    if not lowest <= value <= highest:
        raise invalid(f"{name} must be an integer from {lowest} to {highest}")
    return value
