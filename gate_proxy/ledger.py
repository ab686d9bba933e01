"""The hash chain: how events are sealed, and how a ledger is verified offline.

Each event's canonical JSON body includes the previous event's hash, and its own hash
is SHA-256 over that body. Checkpoints sign (seq, hash) with the gate's Ed25519 key, so
rewriting the chain from some point on breaks every later checkpoint signature.
"""

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gate_proxy.core.canonical import canonical_bytes, canonical_json
from gate_proxy.keys import verify_signature

GENESIS_HASH = "0" * 64
# The body's canonical form, recorded in every event as "hash_v". 2: RFC 8785 (JCS, the
# rfc8785 package). Events without the field were sealed by v1 (our earlier canonical
# JSON, which rounded floats); they still verify, because verification hashes the stored
# text, never a re-encoding. Any other version is refused: we would not know its rules.
HASH_VERSION = 2
_KNOWN_VERSION_MARK = f',"hash_v":{HASH_VERSION}'.encode()
_VERSION_MARK = re.compile(rb',"hash_v":(-?\d+)$')


def event_body(
    seq: int, event_id: str, kind: str, intent_id: str | None, actor: str,
    agent_id: str | None, at: str, data: Any, prev: str,
) -> dict[str, Any]:  # fmt: skip
    """The body of one ledger event as both stores seal it (the hashed shape)."""
    return {
        "seq": seq,
        "id": event_id,
        "type": kind,
        "intent_id": intent_id,
        "actor": actor,
        "agent_id": agent_id,
        "at": at,
        "data": data,
        "hash_v": HASH_VERSION,
        "prev": prev,
    }


def seal(body: dict[str, Any]) -> tuple[str, str]:
    """Return (canonical body text, hash) for an event body that already holds ``prev``."""
    raw = canonical_bytes(body)
    return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()


def checkpoint_message(seq: int, event_hash: str, created_at: str, key_id: str) -> bytes:
    return canonical_bytes({"seq": seq, "hash": event_hash, "at": created_at, "key_id": key_id})


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    checkpoints: int
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"ledger intact: {self.events} events, {self.checkpoints} signed checkpoints"
        where = f"event seq={self.broken_seq}" + (f" id={self.broken_id}" if self.broken_id else "")
        return f"ledger BROKEN at {where}: {self.reason}"


def _rows(conn: sqlite3.Connection, columns: str) -> Iterator[tuple[Any, ...]]:
    # Iterating the cursor itself: sqlite3 fetches in C, with no list per batch.
    return iter(conn.execute(f"SELECT {columns} FROM ledger ORDER BY seq"))


def _json_string(value: str | None) -> str:
    # An identifier (our ids, event types) contains no quote, backslash or control
    # character, so its JSON form is itself in quotes; anything else takes the exact
    # canonical encoder. (Non-ASCII letters need no escaping in RFC 8785 either.)
    if value is not None and value.isidentifier():
        return f'"{value}"'
    return canonical_json(value)


def expected_tail(event_id: str, intent_id: str | None, prev: str, seq: int, kind: str) -> bytes:
    # Canonical JSON sorts keys, so an event body always ends with exactly these five
    # members. Comparing the tail checks the previous-hash link and every indexed column
    # against the hashed body without parsing JSON (most of the cost of verifying).
    return (
        f',"id":{_json_string(event_id)},"intent_id":{_json_string(intent_id)},'
        f'"prev":"{prev}","seq":{seq},"type":{_json_string(kind)}}}'
    ).encode()


def event_problem(
    body: bytes, stored_hash: str, seq: int, event_id: str, intent_id: str | None, kind: str,
    prev: str,
) -> str | None:  # fmt: skip
    """Why one stored event does not verify after ``prev`` (None: it does). Shared by both
    stores' verification: the hash of the body, the body's tail against the previous hash
    and the indexed columns, and the hash version."""
    if hashlib.sha256(body).hexdigest() != stored_hash:
        return "hash does not match body"
    tail = expected_tail(event_id, intent_id, prev, seq, kind)
    if not body.endswith(tail):
        link_ok = f'"prev":"{prev}"'.encode() in body
        return "indexed columns differ from body" if link_ok else "previous-hash link broken"
    # The member before the tail: our version mark, or (v1) no mark at all.
    head_end = len(body) - len(tail)
    if not body.endswith(_KNOWN_VERSION_MARK, 0, head_end) and _VERSION_MARK.search(
        body, max(0, head_end - 24), head_end
    ):
        return "unknown hash_v"
    return None


def verify_connection(conn: sqlite3.Connection, public_key: Ed25519PublicKey) -> VerifyResult:
    prev = GENESIS_HASH
    expected_seq = 1
    columns = "seq, id, intent_id, type, CAST(body AS BLOB), hash"
    for seq, event_id, intent_id, event_type, body, stored_hash in _rows(conn, columns):
        if seq != expected_seq:
            reason = f"missing event (next present is {seq})"
            return VerifyResult(False, expected_seq - 1, 0, expected_seq, None, reason)
        problem = event_problem(body, stored_hash, seq, event_id, intent_id, event_type, prev)
        if problem is not None:
            return VerifyResult(False, seq - 1, 0, seq, event_id, problem)
        prev = stored_hash
        expected_seq += 1
    count = expected_seq - 1
    return _verify_checkpoints(conn, public_key, count, count)


def _verify_checkpoints(
    conn: sqlite3.Connection, public_key: Ed25519PublicKey, count: int, last_seq: int
) -> VerifyResult:
    signed = 0
    checkpoints = conn.execute(
        "SELECT seq, hash, created_at, key_id, signature FROM ledger_checkpoints ORDER BY seq"
    ).fetchall()
    for seq, event_hash, created_at, key_id, signature in checkpoints:
        if seq > last_seq:
            return VerifyResult(
                False, count, signed, seq, None, f"checkpoint {seq} refers to a missing event"
            )
        row = conn.execute("SELECT id, hash FROM ledger WHERE seq = ?", (seq,)).fetchone()
        if row is None or row[1] != event_hash:
            return VerifyResult(
                False,
                count,
                signed,
                seq,
                row[0] if row else None,
                "event hash differs from the signed checkpoint",
            )
        if not verify_signature(
            public_key, checkpoint_message(seq, event_hash, created_at, key_id), signature
        ):
            return VerifyResult(False, count, signed, seq, row[0], "checkpoint signature invalid")
        signed += 1
    return VerifyResult(True, count, signed)


def verify_database(db_path: Path, public_key: Ed25519PublicKey) -> VerifyResult:
    # Read-only URI: verification must never write, not even a WAL checkpoint of its own.
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return verify_connection(conn, public_key)
    finally:
        conn.close()


def export_jsonl(db_path: Path) -> Iterator[str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for body, event_hash in _rows(conn, "body, hash"):
            parsed = json.loads(body)
            parsed["hash"] = event_hash
            yield json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    finally:
        conn.close()
