"""Rows in and out of PostgreSQL.

Columns hold the same values as in SQLite (JSON as text, flags as integers), so the
encoders of the SQLite package are shared rather than copied: intents via
``sqlite/intent_rows.py``, the other JSON columns via ``sqlite/rows.py``.
"""

import json
from typing import Any

import asyncpg

from gate_proxy.store.base import Row
from gate_proxy.store.sqlite.rows import JSON_COLUMNS, encode

__all__ = ["JSON_COLUMNS", "decode", "encode", "insert_statement"]


def decode(record: asyncpg.Record) -> Row:
    row = dict(record.items())
    for key in JSON_COLUMNS & row.keys():
        if row[key] is not None:
            row[key] = json.loads(row[key])
    return row


def insert_statement(table: str, row: Row) -> tuple[str, tuple[Any, ...]]:
    """``INSERT INTO table`` for an already encoded row: (sql, params). Column names come
    from our own code (dataclass fields, use-case dicts), never from a request."""
    columns = ", ".join(row)
    marks = ", ".join(f"${index}" for index in range(1, len(row) + 1))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())
