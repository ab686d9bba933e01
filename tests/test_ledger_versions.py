"""Ledger hash schemes: new events say `hash_v: 2` (RFC 8785); events sealed before the
field existed still verify; an event claiming a scheme we do not know does not."""

import json
import sqlite3
from pathlib import Path

import pytest

from gate_proxy.keys import load_or_create_signer
from gate_proxy.ledger import GENESIS_HASH, seal, verify_database
from gate_proxy.store.base import EventDraft
from gate_proxy.store.sqlite import SqliteStore


async def _written(tmp_path: Path, count: int) -> Path:
    store = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
    await store.open()
    await store.append([EventDraft("note", None, "test", data={"n": n}) for n in range(count)])
    await store.close()
    return tmp_path / "gate.db"


def _append_raw(db: Path, body: dict[str, object]) -> None:
    """Append one event the way an older (or forged) writer would have sealed it."""
    with sqlite3.connect(db) as conn:
        seq, prev = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC").fetchone()
        body = {**body, "seq": seq + 1, "prev": prev, "id": f"evt_raw{seq}", "intent_id": None}
        text, digest = seal(body)
        conn.execute(
            "INSERT INTO ledger (seq, id, intent_id, type, created_at, body, hash) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?)",
            (seq + 1, body["id"], body["type"], body["at"], text, digest),
        )


async def test_new_events_carry_hash_v_2(tmp_path: Path) -> None:
    db = await _written(tmp_path, 3)
    with sqlite3.connect(db) as conn:
        bodies = [json.loads(text) for (text,) in conn.execute("SELECT body FROM ledger")]
    assert [body["hash_v"] for body in bodies] == [2, 2, 2]
    assert bodies[0]["prev"] == GENESIS_HASH


@pytest.mark.parametrize(("version", "intact"), [(None, True), (2, True), (1, False), (3, False)])
async def test_verify_accepts_v1_and_v2_and_refuses_unknown_schemes(
    tmp_path: Path, version: int | None, intact: bool
) -> None:
    db = await _written(tmp_path, 2)
    body: dict[str, object] = {
        "type": "note",
        "actor": "old-gate",
        "agent_id": None,
        "at": "2026-01-01T00:00:00.000Z",
        "data": {"amount": 8.5e-06},
    }
    if version is not None:
        body["hash_v"] = version
    _append_raw(db, body)
    result = verify_database(db, load_or_create_signer(tmp_path).public_key)
    assert result.ok is intact, result
    if not intact:
        assert result.reason == "unknown hash_v"
