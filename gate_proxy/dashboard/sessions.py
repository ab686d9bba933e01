"""Dashboard sign-in sessions: server-side, in memory, with idle and absolute lifetimes.

The browser holds only a random session id (in an httpOnly cookie). The store keeps the
SHA-256 of that id, the SHA-256 of the reviewer's key (never the key) and a CSRF token.
Sessions live in this process only: a restart signs everybody out.
"""

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SESSIONS = 10_000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class Session:
    key_hash: str
    principal_id: str
    csrf_token: str
    created: float
    last_seen: float
    id_hash: str = field(default="")

    def csrf_matches(self, presented: str | None) -> bool:
        # Constant time: the token is the only thing standing between a forged form and a vote.
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.csrf_token.encode("utf-8"))


class SessionStore:
    def __init__(
        self,
        ttl_s: float,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self._clock = clock
        # Keyed by the id's hash, so a dump of this dict gives nobody a usable cookie.
        self._sessions: dict[str, Session] = {}

    def create(self, key_hash: str, principal_id: str) -> tuple[str, Session]:
        """A new session (never a reused id: no fixation). Returns (cookie value, session)."""
        self._prune()
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            self._sessions.pop(oldest.id_hash, None)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(
            key_hash=key_hash,
            principal_id=principal_id,
            csrf_token=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            id_hash=_digest(token),
        )
        self._sessions[session.id_hash] = session
        return token, session

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session for a cookie value, or None (unknown, idle too long, too old)."""
        if not token or len(token) > 128:
            return None
        session = self._sessions.get(_digest(token))
        if session is None:
            return None
        now = self._clock()
        if now - session.created > self.ttl_s or now - session.last_seen > self.idle_s:
            self._sessions.pop(session.id_hash, None)
            return None
        if touch:
            session.last_seen = now
        return session

    def expires_in(self, session: Session) -> float:
        """Seconds until this session ends if nothing else happens."""
        now = self._clock()
        return max(
            0.0,
            min(session.created + self.ttl_s, session.last_seen + self.idle_s) - now,
        )

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.id_hash, None)

    def drop_key(self, key_hash: str) -> None:
        """End every session of one key (it was revoked or suspended)."""
        for id_hash in [h for h, s in self._sessions.items() if s.key_hash == key_hash]:
            self._sessions.pop(id_hash, None)

    def _prune(self) -> None:
        now = self._clock()
        for id_hash in [
            h
            for h, s in self._sessions.items()
            if now - s.created > self.ttl_s or now - s.last_seen > self.idle_s
        ]:
            self._sessions.pop(id_hash, None)

    def __len__(self) -> int:
        return len(self._sessions)
