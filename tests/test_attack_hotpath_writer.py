"""The on-loop SQLite writer when another process keeps the write lock past its busy timeout.

Every queued write must end (committed, or failed so the caller refuses): a write left
waiting forever holds its proxied request open with nothing decided.
"""

import asyncio
import sqlite3
from pathlib import Path

from gate_proxy.keys import load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.store.base import EventDraft, StoreError
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.store.sqlite.writer import MAX_BATCH


async def test_every_write_queued_behind_a_lock_held_past_the_timeout_ends(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
    await store.open()
    writes: list[asyncio.Future[None]] = []
    try:
        store.busy_timeout_s = 0.2  # the writer's own knob: no 5 s wait in a test
        lock = sqlite3.connect(tmp_path / "gate.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another process's long write
        writes += [
            asyncio.ensure_future(store.append([EventDraft("note", None, "test", data={"n": n})]))
            for n in range(MAX_BATCH + 50)
        ]
        done, _ = await asyncio.wait(writes, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert done, "no write ended while the lock was held"
        lock.execute("ROLLBACK")
        lock.close()
        _, still_waiting = await asyncio.wait(writes, timeout=2)
        assert not still_waiting, f"{len(still_waiting)} writes never ended"
        failed = sum(isinstance(w.exception(), StoreError) for w in writes)
        assert failed >= 1
    finally:
        await store.close()  # commits whatever is still queued
        await asyncio.wait(writes, timeout=5)
        for write in writes:  # every failure looked at: no "never retrieved" at exit
            if write.done() and not write.cancelled():
                write.exception()
    result = verify_database(tmp_path / "gate.db", load_or_create_signer(tmp_path).public_key)
    assert result.ok, result.describe()
