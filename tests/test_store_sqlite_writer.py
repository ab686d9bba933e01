"""The SQLite store's group-commit writer (gate_proxy/store/sqlite/writer.py): one
transaction per loop turn on the event loop (durability normal) or on the writer thread
(durability full), each write alone in its savepoint, commit before a write returns, and a
database locked by another process waited for without blocking the loop."""

import asyncio
import contextlib
import math
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gate_proxy.clock import utc_iso
from gate_proxy.core.intents import Intent, Status
from gate_proxy.keys import Signer, load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.store.base import EventDraft, StoreError
from gate_proxy.store.sqlite import DB_FILE, SqliteStore
from gate_proxy.store.sqlite.wal import WalCheckpointer

DURABILITY = {"normal": "NORMAL", "full": "FULL"}


def _intent(intent_id: str) -> Intent:
    return Intent(
        id=intent_id,
        agent_id="agt_1",
        agent_name="a",
        source="proxy",
        destination="d",
        policy="p",
        status=Status.SCHEDULED,
        risk_score=0.12,
        risk_level="low",
        created_at=utc_iso(),
    )


def _note(n: int, data: object = None) -> list[EventDraft]:
    return [EventDraft("note", None, "test", data={"n": n, "v": data})]


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return load_or_create_signer(tmp_path)


@pytest.fixture(params=sorted(DURABILITY))
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, signer: Signer
) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path, signer, synchronous=DURABILITY[request.param])
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def _other_process(db: Path) -> sqlite3.Connection:
    """A connection of its own, as another process sharing the file would have."""
    return sqlite3.connect(db, isolation_level=None, check_same_thread=False)


def _committed_rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


async def test_writes_of_one_loop_turn_share_one_transaction(
    tmp_path: Path, signer: Signer
) -> None:
    store = SqliteStore(tmp_path, signer)
    await store.open()
    statements: list[str] = []
    try:
        assert store._db is not None  # the writer connection: watch what it runs
        store._db.set_trace_callback(statements.append)
        await asyncio.gather(*(store.append(_note(n)) for n in range(100)))
        store._db.set_trace_callback(None)
    finally:
        await store.close()
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1
    result = verify_database(tmp_path / DB_FILE, signer.public_key)
    assert result.ok and result.events == 100


async def test_a_write_returns_only_once_another_process_can_read_it(
    store: SqliteStore,
) -> None:
    for n in range(20):
        intent_id = f"int_wal{n:04d}"
        await store.insert_intent(_intent(intent_id), [EventDraft("proposed", intent_id, "a")])
        # A fresh connection is another process's view: committed, not merely queued.
        found = _committed_rows(store.path, f"SELECT id FROM intents WHERE id = '{intent_id}'")
        events = _committed_rows(
            store.path, f"SELECT seq FROM ledger WHERE intent_id = '{intent_id}'"
        )
        assert found == [(intent_id,)] and len(events) == 1


async def test_an_event_with_no_canonical_form_fails_alone(
    store: SqliteStore, signer: Signer
) -> None:
    outcomes = await asyncio.gather(
        store.append(_note(1)),
        store.append(_note(2, math.nan)),  # NaN has no JSON form: refused, not hashed
        store.insert_intent(
            _intent("int_nan"), [EventDraft("x", "int_nan", "a", data={"f": math.inf})]
        ),
        store.append(_note(3)),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], StoreError) and isinstance(outcomes[2], StoreError)
    assert await store.get_intent("int_nan") is None  # its savepoint rolled back the row
    await store.close()
    result = verify_database(store.path, signer.public_key)
    assert result.ok and result.events == 2


async def test_event_ids_are_unique_and_ordered_like_the_chain(store: SqliteStore) -> None:
    await asyncio.gather(*(store.append(_note(n) * 3) for n in range(50)))
    rows = _committed_rows(store.path, "SELECT seq, id FROM ledger ORDER BY seq")
    ids = [event_id for _, event_id in rows]
    assert len(rows) == 150 and len(set(ids)) == 150
    assert ids == sorted(ids)
    assert all(
        event_id.startswith(f"evt_{seq:010x}") and len(event_id) == 20 for seq, event_id in rows
    )


async def test_a_checkpoint_is_signed_after_every_write_queued_before_it(
    store: SqliteStore,
) -> None:
    writes = [asyncio.ensure_future(store.append(_note(n))) for n in range(10)]
    await asyncio.sleep(0)  # the ten writes start and queue up
    await store.checkpoint()
    assert all(write.done() for write in writes)
    checkpoints = _committed_rows(store.path, "SELECT seq FROM ledger_checkpoints")
    assert checkpoints[-1] == (10,)


@contextlib.contextmanager
def _write_lock_held(db: Path) -> Iterator[sqlite3.Connection]:
    other = _other_process(db)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO leases (name, holder, expires_at) VALUES ('other', 'other', 0)")
    try:
        yield other
    finally:
        with contextlib.suppress(sqlite3.Error):
            other.execute("ROLLBACK")
        other.close()


async def _loop_turns(count: int) -> int:
    """Let the loop run ``count`` turns; return how many ran (all, if it was never blocked)."""
    turns = 0
    for _ in range(count):
        await asyncio.sleep(0)
        turns += 1
    return turns


async def test_a_database_locked_by_another_process_is_waited_for_off_the_loop(
    tmp_path: Path, signer: Signer
) -> None:
    store = SqliteStore(tmp_path, signer)
    await store.open()
    try:
        await store.append(_note(0))
        with _write_lock_held(store.path) as other:
            write = asyncio.ensure_future(store.append(_note(1)))
            ticker_started = asyncio.get_running_loop().time()
            turns = await _loop_turns(200)
            # The loop kept turning while the write waited for the lock.
            assert turns == 200 and not write.done()
            other.execute("COMMIT")  # the other process appends nothing to the ledger
        async with asyncio.timeout(5):
            await write
        assert asyncio.get_running_loop().time() - ticker_started < 5
        assert await store.ledger_head_seq() == 2
    finally:
        await store.close()
    result = verify_database(tmp_path / DB_FILE, signer.public_key)
    assert result.ok and result.events == 2


async def test_a_lock_held_past_the_busy_timeout_fails_the_waiting_writes(
    tmp_path: Path, signer: Signer
) -> None:
    store = SqliteStore(tmp_path, signer)
    await store.open()
    store.busy_timeout_s = 0.05
    try:
        with _write_lock_held(store.path):
            outcomes = await asyncio.gather(
                store.append(_note(1)), store.append(_note(2)), return_exceptions=True
            )
        assert all(isinstance(outcome, StoreError) for outcome in outcomes), outcomes
        await store.append(_note(3))  # the writer goes on once the lock is free
    finally:
        await store.close()
    result = verify_database(tmp_path / DB_FILE, signer.public_key)
    assert result.ok and result.events == 1


def _run_other_store(db_dir: Path, signer: Signer, count: int, errors: list[BaseException]) -> None:
    async def main() -> None:
        other = SqliteStore(db_dir, signer)
        await other.open()
        try:
            for start in range(0, count, 10):
                await asyncio.gather(*(other.append(_note(n)) for n in range(start, start + 10)))
        finally:
            await other.close()

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported to the test's thread
        errors.append(exc)


async def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path, signer: Signer) -> None:
    """Another store with its own loop and thread: SQLite locks between connections as it
    does between processes, so each writer meets the other's lock and retries."""
    store = SqliteStore(tmp_path, signer)
    await store.open()
    errors: list[BaseException] = []
    other = threading.Thread(target=_run_other_store, args=(tmp_path, signer, 400, errors))
    other.start()
    try:
        for start in range(0, 400, 10):
            await asyncio.gather(*(store.append(_note(n)) for n in range(start, start + 10)))
    finally:
        await asyncio.to_thread(other.join, 60)
        await store.close()
    assert not other.is_alive() and errors == []
    result = verify_database(tmp_path / DB_FILE, signer.public_key)
    assert result.ok and result.events == 800
    ours = sum(store.written_here(seq) for seq in range(1, 801))
    assert ours == 400


async def test_the_wal_is_checkpointed_off_the_loop_and_restarted_when_large(
    tmp_path: Path, signer: Signer
) -> None:
    store = SqliteStore(tmp_path, signer)
    await store.open()
    try:
        assert store._db is not None
        # The writer itself never checkpoints: that is the background thread's job.
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        await asyncio.gather(*(store.append(_note(n)) for n in range(500)))
        with contextlib.closing(_other_process(store.path)) as conn:
            checkpointer = WalCheckpointer(store.path, "NORMAL", restart_frames=1)
            await asyncio.to_thread(checkpointer.checkpoint, conn)
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == copied  # everything is in the database file
        await store.append(_note(501))
        with contextlib.closing(_other_process(store.path)) as conn:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames < 20  # the WAL started over: the new write is at its beginning
    finally:
        await store.close()


def test_processes_opening_one_fresh_file_at_once_all_open_it(tmp_path: Path) -> None:
    # --workers N start together on an empty data dir. Before the fix, in about a third
    # of the attempts one of them died: switching the new file to WAL answered "database
    # is locked" (SQLite calls no busy handler there), or a migration was applied twice
    # ("table agents already exists": each saw none applied, then queued on the lock).
    from gate_proxy.store.migrations import MIGRATIONS

    signer = load_or_create_signer(tmp_path / "keys")
    for attempt in range(12):
        data_dir = tmp_path / f"data-{attempt}"
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def open_and_close(
            data_dir: Path = data_dir,
            errors: list[BaseException] = errors,
            start: threading.Barrier = start,
        ) -> None:
            async def run() -> None:
                store = SqliteStore(data_dir, signer)
                start.wait()  # every thread's loop opens at the same moment
                await store.open()
                await store.close()

            try:
                asyncio.run(run())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_and_close) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with contextlib.closing(sqlite3.connect(data_dir / DB_FILE)) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        assert sorted(versions) == [version for version, _ in MIGRATIONS]
        assert mode == "wal"
