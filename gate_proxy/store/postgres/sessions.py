"""Dashboard sessions, shared by every process (the cookie's id only as its SHA-256)."""

from gate_proxy.store.base import Row
from gate_proxy.store.postgres.connection import PostgresConnection

_COLUMNS = ("id_hash", "key_hash", "principal_id", "csrf_token", "created", "last_seen")


class SessionTables(PostgresConnection):
    async def insert_session(self, session: Row) -> None:
        await self._execute(
            f"INSERT INTO dashboard_sessions ({', '.join(_COLUMNS)}) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            (
                session["id_hash"],
                session["key_hash"],
                session["principal_id"],
                session["csrf_token"],
                float(session["created"]),
                float(session["last_seen"]),
            ),
        )

    async def get_session(self, id_hash: str) -> Row | None:
        return await self._fetch_one(
            f"SELECT {', '.join(_COLUMNS)} FROM dashboard_sessions WHERE id_hash = $1",
            (id_hash,),
        )

    async def touch_session(self, id_hash: str, last_seen: float) -> None:
        await self._execute(
            "UPDATE dashboard_sessions SET last_seen = GREATEST(last_seen, $2) WHERE id_hash = $1",
            (id_hash, float(last_seen)),
        )

    async def delete_session(self, id_hash: str) -> None:
        await self._execute("DELETE FROM dashboard_sessions WHERE id_hash = $1", (id_hash,))

    async def delete_sessions_of_key(self, key_hash: str) -> None:
        await self._execute("DELETE FROM dashboard_sessions WHERE key_hash = $1", (key_hash,))

    async def prune_sessions(self, created_before: float, seen_before: float) -> None:
        """Delete sessions past their absolute lifetime or idle for too long."""
        await self._execute(
            "DELETE FROM dashboard_sessions WHERE created < $1 OR last_seen < $2",
            (float(created_before), float(seen_before)),
        )
