"""Leases: one holder at a time across every process (the sweeper, liveness)."""

from gate_proxy.store.postgres.connection import PostgresConnection

# One statement decides: the row lock of ON CONFLICT DO UPDATE makes two callers wait for
# each other, and the WHERE is checked on the row as the winner left it.
_TAKE = """
INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
RETURNING holder
"""


class LeaseTables(PostgresConnection):
    async def try_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """Take ``name`` (free, expired, or already ours) until ``now + ttl_s``; False if
        another holder's lease is live."""
        taken = await self._fetch_value(_TAKE, (name, holder, float(now + ttl_s), float(now)))
        return taken is not None

    async def release_lease(self, name: str, holder: str) -> None:
        await self._execute("DELETE FROM leases WHERE name = $1 AND holder = $2", (name, holder))

    async def live_leases(self, prefix: str, now: float) -> dict[str, str]:
        """Unexpired leases whose name starts with ``prefix``: name -> holder."""
        rows = await self._fetch(
            "SELECT name, holder FROM leases WHERE starts_with(name, $1) AND expires_at > $2 "
            "ORDER BY name",
            (prefix, float(now)),
        )
        return {row["name"]: row["holder"] for row in rows}
