"""Rows in and out of SQLite: JSON columns, and reads that close their cursor."""

import json
import sqlite3
from typing import Any

from gate_proxy.store.base import Row

JSON_COLUMNS = {
    "allowed_policies",
    "allowed_destinations",
    "metadata",
    "sensitivity_tags",
    "report",
}


def encode(row: Row) -> Row:
    return {
        key: json.dumps(value) if key in JSON_COLUMNS and value is not None else value
        for key, value in row.items()
    }


def decode(cursor_description: Any, values: tuple[Any, ...]) -> Row:
    row = {column[0]: value for column, value in zip(cursor_description, values, strict=True)}
    for key in JSON_COLUMNS & row.keys():
        if row[key] is not None:
            row[key] = json.loads(row[key])
    return row


def insert_statement(table: str, row: Row) -> tuple[str, tuple[Any, ...]]:
    """``INSERT INTO table`` for an already encoded row: (sql, params)."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())


def fetch_all(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
) -> tuple[Any, list[tuple[Any, ...]]]:
    cursor = conn.execute(sql, params)
    try:
        return cursor.description, cursor.fetchall()
    finally:
        cursor.close()
