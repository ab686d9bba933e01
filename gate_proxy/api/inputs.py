"""Reading API request bodies into use-case inputs; malformed input is InvalidInput."""

import json
import math
import re
from typing import Any

from gate_proxy.errors import invalid
from gate_proxy.usecases import Proposal

EXPIRES_IN = re.compile(r"^(\d{1,5})([smhd])$")


def parse_expires_in(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not (match := EXPIRES_IN.match(value.strip())):
        raise invalid("expiresIn must look like 30m, 1h or 2d")
    number, unit = int(match.group(1)), match.group(2)
    return max(1, number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def optional(body: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present with a value: JSON null counts as absent (clients such
    as the Zehrava SDK send every unset optional field as null)."""
    for name in names:
        value = body.get(name)
        if value is not None:
            return value
    return None


def proposal_from_body(body: dict[str, Any]) -> Proposal:
    destination, policy = body.get("destination"), body.get("policy")
    if not isinstance(destination, str) or not destination.strip():
        raise invalid("destination is required")
    if not isinstance(policy, str) or not policy.strip():
        raise invalid("policy is required")
    payload = optional(body, "payload")
    if payload is not None and not isinstance(payload, str):
        payload = json.dumps(payload, ensure_ascii=False)
    record_count = optional(body, "recordCount", "record_count")
    if record_count is not None and (
        not isinstance(record_count, int) or isinstance(record_count, bool) or record_count < 0
    ):
        raise invalid("recordCount must be a non-negative integer")
    value = optional(body, "estimated_value_usd")
    if value is not None and (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise invalid("estimated_value_usd must be a number >= 0")
    tags = optional(body, "sensitivity_tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise invalid("sensitivity_tags must be a list of strings")
    metadata = optional(body, "metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise invalid("metadata must be an object")
    for key in ("idempotency_key", "on_behalf_of"):
        if optional(body, key) is not None and not isinstance(body[key], str):
            raise invalid(f"{key} must be a string")
    return Proposal(
        destination=destination.strip(),
        policy=policy.strip(),
        payload=payload,
        record_count=record_count,
        estimated_value_usd=float(value) if value is not None else None,
        sensitivity_tags=tuple(tags),
        idempotency_key=optional(body, "idempotency_key"),
        on_behalf_of=optional(body, "on_behalf_of"),
        expires_in_seconds=parse_expires_in(optional(body, "expiresIn")),
        metadata=metadata,
    )
