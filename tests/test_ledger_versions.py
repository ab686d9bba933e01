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


def _tamper(db: Path, sql: str) -> None:
    """What someone with write access to the file could do: the triggers are no obstacle."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER ledger_no_update")
        conn.execute("DROP TRIGGER ledger_no_delete")
        conn.execute(sql)


@pytest.mark.parametrize(
    ("sql", "broken_seq", "reason"),
    [
        ("UPDATE ledger SET id = 'evt_other' WHERE seq = 2", 2, "indexed columns differ from body"),
        (
            "UPDATE ledger SET type = 'approved' WHERE seq = 3",
            3,
            "indexed columns differ from body",
        ),
        ("UPDATE ledger SET intent_id = 'int_x' WHERE seq = 1", 1, "indexed columns differ"),
        ("DELETE FROM ledger WHERE seq = 2", 2, "missing event (next present is 3)"),
        (
            "UPDATE ledger SET body = replace(body, '\"n\":1', '\"n\":7') WHERE seq = 2",
            2,
            "hash does not match body",
        ),
    ],
)
async def test_verify_finds_each_kind_of_tampering(
    tmp_path: Path, sql: str, broken_seq: int, reason: str
) -> None:
    db = await _written(tmp_path, 4)
    _tamper(db, sql)
    result = verify_database(db, load_or_create_signer(tmp_path).public_key)
    assert not result.ok
    assert result.broken_seq == broken_seq and result.reason is not None
    assert result.reason.startswith(reason), result
    assert result.events == broken_seq - 1


async def test_a_rewritten_body_with_its_hash_breaks_the_next_link(tmp_path: Path) -> None:
    db = await _written(tmp_path, 4)
    with sqlite3.connect(db) as conn:
        body = conn.execute("SELECT body FROM ledger WHERE seq = 2").fetchone()[0]
    forged = json.loads(body)
    forged["data"]["n"] = 7
    text, digest = seal(forged)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER ledger_no_update")
        conn.execute("UPDATE ledger SET body = ?, hash = ? WHERE seq = 2", (text, digest))
    result = verify_database(db, load_or_create_signer(tmp_path).public_key)
    assert not result.ok and result.broken_seq == 3
    assert result.reason == "previous-hash link broken"


@pytest.mark.parametrize("odd_id", ['evt "quoted"', "evt\\back", "evt\nline", "évt_ünï", "0evt"])
async def test_ids_that_need_json_escapes_verify_and_still_bind_to_the_body(
    tmp_path: Path, odd_id: str
) -> None:
    db = await _written(tmp_path, 2)
    with sqlite3.connect(db) as conn:
        seq, prev = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC").fetchone()
        body = {"type": "note", "actor": "a", "agent_id": None, "at": "2026-01-01T00:00:00Z"}
        body |= {"data": {}, "hash_v": 2, "seq": seq + 1, "prev": prev, "id": odd_id}
        body["intent_id"] = odd_id
        text, digest = seal(body)
        conn.execute(
            "INSERT INTO ledger (seq, id, intent_id, type, created_at, body, hash) "
            "VALUES (?, ?, ?, 'note', ?, ?, ?)",
            (seq + 1, odd_id, odd_id, body["at"], text, digest),
        )
    key = load_or_create_signer(tmp_path).public_key
    assert verify_database(db, key).ok
    # The column spelled as its JSON escape (what a naive comparison would accept).
    escaped = json.dumps(odd_id, ensure_ascii=False)[1:-1]
    if escaped != odd_id:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER ledger_no_update")
            conn.execute("UPDATE ledger SET id = ? WHERE seq = ?", (escaped, seq + 1))
        result = verify_database(db, key)
        assert not result.ok and result.reason == "indexed columns differ from body"
