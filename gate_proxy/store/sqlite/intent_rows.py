"""Intents in and out of SQLite rows: the one place that knows how an Intent is stored.

JSON columns hold the tags and the metadata, ``shadow`` is an integer, the status is its
text; everything else is stored as it is.
"""

import json
import operator
from collections.abc import Mapping
from typing import Any

from gate_proxy.core.intents import INTENT_COLUMNS, Intent, Status
from gate_proxy.store.base import Row

# Columns a transition may set: everything but the identity and the status itself (the
# status moves only through transition_intent's checked from -> to).
_CHANGEABLE = frozenset(INTENT_COLUMNS) - {"id", "status"}

INSERT_INTENT_SQL = (
    f"INSERT INTO intents ({', '.join(INTENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in INTENT_COLUMNS)})"
)
# Every column's value in one C call (a getattr per column costs more than the insert's
# own SQL on the hot path); the four stored differently are then replaced in place.
_all_columns = operator.attrgetter(*INTENT_COLUMNS)
_STATUS, _TAGS, _SHADOW, _METADATA = (
    INTENT_COLUMNS.index(column) for column in ("status", "sensitivity_tags", "shadow", "metadata")
)


def intent_values(intent: Intent) -> list[Any]:
    """The bound values, in INTENT_COLUMNS order, of the row that stores ``intent``."""
    values = list(_all_columns(intent))
    values[_STATUS] = intent.status.value
    values[_TAGS] = json.dumps(list(intent.sensitivity_tags)) if intent.sensitivity_tags else "[]"
    values[_SHADOW] = int(intent.shadow)
    values[_METADATA] = json.dumps(dict(intent.metadata)) if intent.metadata else "{}"
    return values


def intent_to_row(intent: Intent) -> Row:
    """The SQLite row (column -> bound value) that stores ``intent``."""
    return dict(zip(INTENT_COLUMNS, intent_values(intent), strict=True))


def intent_from_row(row: Row) -> Intent:
    """The Intent of a row read with ``rows.decode`` (JSON columns already decoded)."""
    return Intent(
        **{
            **row,
            "status": Status(row["status"]),
            "sensitivity_tags": tuple(row["sensitivity_tags"] or ()),
            "metadata": row["metadata"] or {},
            "shadow": bool(row["shadow"]),
        }
    )


def encode_changes(changes: Mapping[str, Any]) -> Row:
    """The bound values of a transition's other columns; a column it may not set is a
    programming error (ValueError), never SQL built from an unknown name."""
    unknown = set(changes) - _CHANGEABLE
    if unknown:
        raise ValueError(f"not a column a transition may set: {', '.join(sorted(unknown))}")
    return {column: _column_value(column, value) for column, value in changes.items()}


def _column_value(column: str, value: Any) -> Any:
    if column == "sensitivity_tags":
        return json.dumps(list(value))
    if column == "metadata":
        return json.dumps(dict(value))
    if column == "shadow":
        return int(bool(value))
    if column == "status":
        return Status(value).value
    return value
