"""The ledger chain inside a write transaction: sealing events and signing checkpoints.

Everything here runs while the writer holds SQLite's write lock (writer.py), so the head
it reads is the true head, whichever process appended last.
"""

import secrets
import sqlite3
import time
from dataclasses import dataclass, field

from gate_proxy.clock import utc_iso
from gate_proxy.keys import Signer
from gate_proxy.ledger import GENESIS_HASH, checkpoint_message, event_body, seal
from gate_proxy.store.base import EventDraft

# Sign a checkpoint after this many events, or this many seconds after the last one.
CHECKPOINT_EVERY_EVENTS = 1000
CHECKPOINT_EVERY_SECONDS = 10.0

_HEAD_SQL = (
    "SELECT (SELECT seq FROM ledger ORDER BY seq DESC LIMIT 1), "
    "(SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1), "
    "(SELECT max(seq) FROM ledger_checkpoints)"
)
_INSERT_EVENT_SQL = (
    "INSERT INTO ledger (seq, id, intent_id, type, created_at, body, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class Head:
    seq: int = 0
    hash: str = GENESIS_HASH
    checkpoint_seq: int = 0
    checkpoint_at: float = field(default_factory=time.monotonic)

    def load(self, conn: sqlite3.Connection) -> None:
        """Read the head from the database (under the write lock, inside a batch)."""
        seq, head_hash, checkpoint_seq = conn.execute(_HEAD_SQL).fetchone()
        if seq is not None:
            self.seq, self.hash = seq, head_hash
        else:
            self.seq, self.hash = 0, GENESIS_HASH
        self.checkpoint_seq = checkpoint_seq or 0


EventRow = tuple[int, str, str | None, str, str, str, str]


def seal_events(
    events: list[EventDraft], seq: int, prev: str, at: str
) -> tuple[list[EventRow], int, str]:
    """Chain ``events`` after (seq, prev): their rows, and the new head (seq, hash).
    ValueError if an event's data has no canonical JSON form (nothing is written)."""
    rows: list[EventRow] = []
    if not events:
        return rows, seq, prev
    # An event id is its sequence number then 6 random hex digits: unique by construction
    # (seq is the primary key), and ordered like seq, so the ledger's UNIQUE index on id
    # grows at its end instead of rewriting random pages in every commit (random ids
    # cost about a third of the SQL time of an append). One urandom call per write.
    entropy = secrets.token_hex(3 * len(events))
    for index, draft in enumerate(events):
        seq += 1
        event_id = f"evt_{seq:010x}{entropy[index * 6 : index * 6 + 6]}"
        body = event_body(
            seq, event_id, draft.type, draft.intent_id, draft.actor, draft.agent_id, at,
            draft.data, prev,
        )  # fmt: skip
        text, prev = seal(body)
        rows.append((seq, event_id, draft.intent_id, draft.type, at, text, prev))
    return rows, seq, prev


def insert_events(conn: sqlite3.Connection, rows: list[EventRow]) -> None:
    if rows:
        conn.executemany(_INSERT_EVENT_SQL, rows)


def maybe_checkpoint(
    conn: sqlite3.Connection, head: Head, signer: Signer, force: bool = False
) -> None:
    """Sign (seq, hash) of the head if enough events or time passed since the last one."""
    pending = head.seq - head.checkpoint_seq
    if pending <= 0:
        return
    age = time.monotonic() - head.checkpoint_at
    if not (force or pending >= CHECKPOINT_EVERY_EVENTS or age >= CHECKPOINT_EVERY_SECONDS):
        return
    at = utc_iso()
    message = checkpoint_message(head.seq, head.hash, at, signer.key_id)
    conn.execute(
        "INSERT INTO ledger_checkpoints (seq, hash, created_at, key_id, signature) "
        "VALUES (?, ?, ?, ?, ?)",
        (head.seq, head.hash, at, signer.key_id, signer.sign(message)),
    )
    head.checkpoint_seq = head.seq
    head.checkpoint_at = time.monotonic()
