"""Dashboard sign-in sessions, shared by every process on this store."""

import sqlite3

from gate_proxy.store.base import Row
from gate_proxy.store.sqlite.connection import SqliteConnection


class SessionTables(SqliteConnection):
    async def insert_session(self, session: Row) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO dashboard_sessions (id_hash, key_hash, principal_id, csrf_token, "
                "created, last_seen) VALUES (:id_hash, :key_hash, :principal_id, :csrf_token, "
                ":created, :last_seen)",
                session,
            )

        await self.write(insert, [])

    async def get_session(self, id_hash: str) -> Row | None:
        return await self._lookup_one(
            "SELECT * FROM dashboard_sessions WHERE id_hash = ?", (id_hash,)
        )

    async def touch_session(self, id_hash: str, last_seen: float) -> None:
        def touch(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE dashboard_sessions SET last_seen = MAX(last_seen, ?) WHERE id_hash = ?",
                (last_seen, id_hash),
            )

        await self.write(touch, [])

    async def delete_session(self, id_hash: str) -> None:
        await self._delete("DELETE FROM dashboard_sessions WHERE id_hash = ?", (id_hash,))

    async def delete_sessions_of_key(self, key_hash: str) -> None:
        await self._delete("DELETE FROM dashboard_sessions WHERE key_hash = ?", (key_hash,))

    async def prune_sessions(self, created_before: float, seen_before: float) -> None:
        await self._delete(
            "DELETE FROM dashboard_sessions WHERE created < ? OR last_seen < ?",
            (created_before, seen_before),
        )

    async def _delete(self, sql: str, params: tuple[object, ...]) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self.write(delete, [])
