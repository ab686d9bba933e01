"""Several processes on one SQLite file (``--workers``): leases and the ledger's growth.

SQLite has no notifications, so ``wait_for_ledger`` polls the head: one indexed read per
interval, and only while someone waits (held requests, dashboard streams).
"""

import asyncio
import sqlite3

from gate_proxy.store.sqlite.connection import SqliteConnection

POLL_INTERVAL_S = 0.05


class Coordination(SqliteConnection):
    async def ledger_head_seq(self) -> int:
        row = await self._lookup_one("SELECT COALESCE(MAX(seq), 0) AS seq FROM ledger")
        return int(row["seq"]) if row else 0

    async def wait_for_ledger(self, after_seq: int, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        while await self.ledger_head_seq() <= after_seq:
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(POLL_INTERVAL_S, left))

    async def try_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        def take(conn: sqlite3.Connection) -> bool:
            # One statement under the write lock: insert, or take over if expired or ours.
            cursor = conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, holder, now + ttl_s, now),
            )
            return cursor.rowcount == 1

        return bool(await self.write(take, []))

    async def release_lease(self, name: str, holder: str) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

        await self.write(release, [])

    async def live_leases(self, prefix: str, now: float) -> dict[str, str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self._lookup(
            "SELECT name, holder FROM leases WHERE name LIKE ? ESCAPE '\\' AND expires_at > ?",
            (escaped + "%", now),
        )
        return {row["name"]: row["holder"] for row in rows}
