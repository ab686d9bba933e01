"""Dashboard sign-in sessions: server-side, in the store, with idle and absolute lifetimes.

The browser holds only a random session id (in an httpOnly cookie). The store keeps the
SHA-256 of that id, the SHA-256 of the reviewer's key (never the key) and a CSRF token.
Sessions live in the store, so every process and replica of the gate knows them (sign in
on one, approve through another), and a restart signs nobody out.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from gate_proxy.clock import current as current_clock
from gate_proxy.store.base import Row, Store

MAX_TOKEN_LENGTH = 128
# A touch is written at most this often per session: every dashboard request must not
# be a store write.
TOUCH_EVERY_S = 5.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class Session:
    key_hash: str
    principal_id: str
    csrf_token: str
    created: float
    last_seen: float
    id_hash: str = ""

    def csrf_matches(self, presented: str | None) -> bool:
        # Constant time: the token is the only thing standing between a forged form and a vote.
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.csrf_token.encode("utf-8"))

    def same_as(self, other: "Session | None") -> bool:
        return other is not None and other.id_hash == self.id_hash

    @classmethod
    def from_row(cls, row: Row) -> "Session":
        return cls(
            key_hash=row["key_hash"],
            principal_id=row["principal_id"],
            csrf_token=row["csrf_token"],
            created=float(row["created"]),
            last_seen=float(row["last_seen"]),
            id_hash=row["id_hash"],
        )


class SessionStore:
    def __init__(
        self,
        store: Store,
        ttl_s: float,
        idle_s: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        # Wall time (sessions are shared by processes), from the gate's clock.
        self._clock = clock or (lambda: current_clock().time())

    async def create(self, key_hash: str, principal_id: str) -> tuple[str, Session]:
        """A new session (never a reused id: no fixation). Returns (cookie value, session)."""
        now = self._clock()
        await self.store.prune_sessions(now - self.ttl_s, now - self.idle_s)
        token = secrets.token_urlsafe(32)
        session = Session(
            key_hash=key_hash,
            principal_id=principal_id,
            csrf_token=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            id_hash=_digest(token),
        )
        await self.store.insert_session(
            {
                "id_hash": session.id_hash,
                "key_hash": key_hash,
                "principal_id": principal_id,
                "csrf_token": session.csrf_token,
                "created": now,
                "last_seen": now,
            }
        )
        return token, session

    async def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session for a cookie value, or None (unknown, idle too long, too old)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        row = await self.store.get_session(_digest(token))
        if row is None:
            return None
        session = Session.from_row(row)
        now = self._clock()
        if now - session.created > self.ttl_s or now - session.last_seen > self.idle_s:
            await self.store.delete_session(session.id_hash)
            return None
        if touch and now - session.last_seen >= min(TOUCH_EVERY_S, self.idle_s / 2):
            await self.store.touch_session(session.id_hash, now)
            session.last_seen = now
        return session

    def expires_in(self, session: Session) -> float:
        """Seconds until this session ends if nothing else happens."""
        now = self._clock()
        return max(
            0.0,
            min(session.created + self.ttl_s, session.last_seen + self.idle_s) - now,
        )

    async def drop(self, session: Session) -> None:
        await self.store.delete_session(session.id_hash)

    async def drop_key(self, key_hash: str) -> None:
        """End every session of one key (it was revoked or suspended)."""
        await self.store.delete_sessions_of_key(key_hash)
