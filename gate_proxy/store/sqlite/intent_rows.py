"""Intents in and out of SQLite rows: the one place that knows how an Intent is stored.

JSON columns hold the tags and the metadata, ``shadow`` is an integer, the status is its
text; everything else is stored as it is.
"""

import json
from collections.abc import Mapping
from typing import Any

from gate_proxy.core.intents import INTENT_COLUMNS, Intent, Status
from gate_proxy.store.base import Row

# Columns a transition may set: everything but the identity and the status itself (the
# status moves only through transition_intent's checked from -> to).
_CHANGEABLE = frozenset(INTENT_COLUMNS) - {"id", "status"}


def intent_to_row(intent: Intent) -> Row:
    """The SQLite row (column -> bound value) that stores ``intent``."""
    return {column: _column_value(column, getattr(intent, column)) for column in INTENT_COLUMNS}


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
