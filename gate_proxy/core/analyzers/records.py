"""Record checks: how much of a batch is empty (seed 003's CRM overwrite). PURE.

    record_checks:
      - path: "contacts[*].email"
        max_empty_ratio: 0.2

The records are the elements the last ``[*]`` expands (``contacts``); the value checked
is the rest of the path inside each record (``email``). A path without ``[*]`` must
select a list, whose elements are the values. Empty means missing, null, a string of
only whitespace, an empty list or an empty object.

Fail closed: a payload that is not JSON, a path that selects no list, or a duplicate key
on the path is a finding too (the check could not be applied).
"""

from dataclasses import dataclass
from typing import Final

from gate_proxy.core.analyzers.base import Finding
from gate_proxy.core.analyzers.fields import WILDCARD, FieldPath, select_values
from gate_proxy.core.terms import NOT_JSON

__all__ = ["RecordCheck", "analyze_records"]

ON_FAIL: Final = ("require_approval", "block")


@dataclass(frozen=True, slots=True)
class RecordCheck:
    path: FieldPath
    max_empty_ratio: float
    on_fail: str = "require_approval"


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


def _record_values(
    parsed: object, path: FieldPath, limit: int | None
) -> tuple[list[object], str | None]:
    """(one value per record, problem); missing values are None."""
    segments = path.segments
    last = max((i for i, s in enumerate(segments) if s is WILDCARD), default=None)
    too_many = f"more than {limit} records: over the analyzer's limit"
    if last is None:
        selection = select_values(parsed, segments)
        if selection.duplicate_key is not None:
            return [], f"duplicate key {selection.duplicate_key!r} on the path"
        lists = [v for _, v in selection.matches if isinstance(v, list)]
        if not lists:
            return [], "the path selects no list of records"
        if limit is not None and sum(len(values) for values in lists) > limit:
            return [], too_many
        return [item for values in lists for item in values], None
    records = select_values(parsed, segments[: last + 1], limit=limit)
    if records.truncated:
        return [], too_many
    if records.duplicate_key is not None:
        return [], f"duplicate key {records.duplicate_key!r} on the path"
    if records.lists == 0:
        return [], "the path selects no list of records"
    rest = segments[last + 1 :]
    if not rest:
        return [record for _, record in records.matches], None
    if len(rest) == 1 and isinstance(rest[0], str):
        return _key_values(records.matches, rest[0], limit, too_many)
    values: list[object] = []
    for _, record in records.matches:
        inner = select_values(record, rest, limit=limit)
        if inner.truncated:
            return [], too_many
        if inner.duplicate_key is not None:
            return [], f"duplicate key {inner.duplicate_key!r} on the path"
        values.append(inner.matches[0][1] if inner.matches else None)
    return values, None


def _key_values(
    records: list[tuple[str, object]], key: str, limit: int | None, too_many: str
) -> tuple[list[object], str | None]:
    """The usual ``items[*].field``: `select_values(record, (key,))` for each record,
    without a selection per record (the same values, duplicates and limit)."""
    index = int(key) if key.isascii() and key.isdigit() else None
    values: list[object] = []
    for _, record in records:
        if isinstance(record, tuple):  # an object as (key, value) pairs
            found = [pair[1] for pair in record if pair[0] == key]
            if limit is not None and len(found) > limit:
                return [], too_many
            if len(found) > 1:
                return [], f"duplicate key {key!r} on the path"
            values.append(found[0] if found else None)
        elif isinstance(record, dict):
            values.append(record.get(key))
        elif index is not None and isinstance(record, list) and index < len(record):
            values.append(record[index])
        else:
            values.append(None)
    return values, None


def analyze_records(
    parsed: object, checks: tuple[RecordCheck, ...], max_records: int | None = None
) -> list[Finding]:
    """Findings of each check; over `max_records` values a check is unchecked (fails)."""
    findings: list[Finding] = []
    for check in checks:
        where = check.path.text
        if parsed is NOT_JSON or not isinstance(parsed, list | tuple | dict):
            findings.append(
                Finding("record.unchecked", "high", where, "record_checks need a JSON payload")
            )
            continue
        values, problem = _record_values(parsed, check.path, max_records)
        if problem is not None:
            findings.append(Finding("record.unchecked", "high", where, problem))
            continue
        if not values:
            continue  # an empty batch has no empty records
        empty = sum(1 for value in values if _empty(value))
        ratio = empty / len(values)
        if ratio > check.max_empty_ratio:
            findings.append(
                Finding(
                    "record.empty_ratio",
                    "high",
                    where,
                    f"{empty} of {len(values)} records ({ratio:.0%}) are empty; "
                    f"max_empty_ratio {check.max_empty_ratio:g}",
                )
            )
    return findings
