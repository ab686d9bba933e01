"""Both Store backends behind one test helper: the same tests run on SQLite and PostgreSQL.

A ``StoreBackend`` names one database (a SQLite file in a data dir, or a fresh PostgreSQL
database) and opens any number of stores on it: two stores on one database are two
processes of a fleet (workers on one box, replicas on PostgreSQL).
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from gate_proxy.keys import Signer
from gate_proxy.ledger import VerifyResult, verify_database
from gate_proxy.store.base import Store
from gate_proxy.store.postgres import PostgresStore
from gate_proxy.store.postgres.verify import verify_postgres
from gate_proxy.store.sqlite import DB_FILE, SqliteStore

BACKENDS = ("sqlite", "postgres")


@dataclass
class StoreBackend:
    name: str
    data_dir: Path
    signer: Signer
    url: str | None = None  # PostgreSQL only

    def new_store(self) -> Store:
        if self.url is not None:
            return PostgresStore(self.url, self.signer)
        return SqliteStore(self.data_dir, self.signer)

    async def open_store(self) -> Store:
        store = self.new_store()
        await store.open()
        return store

    async def verify(self) -> VerifyResult:
        if self.url is not None:
            return await verify_postgres(self.url, self.signer.public_key)
        return verify_database(self.data_dir / DB_FILE, self.signer.public_key)

    async def raw_intent(self, intent_id: str) -> dict[str, Any]:
        """The intents row as the database holds it (no decoding)."""
        if self.url is not None:
            conn = await asyncpg.connect(self.url)
            try:
                record = await conn.fetchrow("SELECT * FROM intents WHERE id = $1", intent_id)
            finally:
                await conn.close()
            assert record is not None
            return dict(record.items())
        with sqlite3.connect(f"file:{self.data_dir / DB_FILE}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM intents WHERE id = ?", (intent_id,)).fetchone()
        return dict(row)

    async def intent_columns(self) -> list[str]:
        if self.url is not None:
            conn = await asyncpg.connect(self.url)
            try:
                rows = await conn.fetch(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'intents' AND table_schema = current_schema()"
                )
            finally:
                await conn.close()
            return [row["column_name"] for row in rows]
        with sqlite3.connect(f"file:{self.data_dir / DB_FILE}?mode=ro", uri=True) as conn:
            return [row[1] for row in conn.execute("PRAGMA table_info(intents)")]

    async def execute(self, statement: str) -> None:
        """Run one raw statement as the database's owner (what an intruder with the
        gate's database credentials could try)."""
        if self.url is not None:
            conn = await asyncpg.connect(self.url)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()
            return
        conn = sqlite3.connect(self.data_dir / DB_FILE, isolation_level=None)
        try:
            conn.execute(statement)
        finally:
            conn.close()
