"""WAL checkpoints on their own thread and connection, never on the event loop.

A checkpoint copies the WAL into the database file and fsyncs both; run by SQLite's
auto-checkpoint it would stall whichever commit crossed the threshold, and the writer
commits on the event loop (writer.py). So the writer connection has
``wal_autocheckpoint=0`` and this thread runs ``PRAGMA wal_checkpoint(PASSIVE)``: it
never takes the write lock and never waits for one.

A passive checkpoint lets the WAL start over only once it has copied every frame, which
under steady writes may never happen. When the WAL holds more than ``RESTART_FRAMES``
frames, a RESTART checkpoint takes the write lock while it copies and resets the WAL: the
writer meanwhile sees SQLITE_BUSY and retries (off the loop's critical path, see
writer.py), so the loop itself never blocks on it.
"""

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("gate.store")

INTERVAL_S = 0.5  # at most this long between checkpoints while writes come in
NUDGE_EVERY_COMMITS = 256  # the writer wakes us sooner after this many commits
RESTART_FRAMES = 16_384  # 64 MiB of 4 KiB pages: make the WAL start over
BUSY_TIMEOUT_MS = 5000


class WalCheckpointer:
    """Checkpoints ``path``'s WAL every ``INTERVAL_S`` or when nudged, on a daemon thread."""

    def __init__(
        self, path: Path, synchronous: str, *, restart_frames: int = RESTART_FRAMES
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._restart_frames = restart_frames
        self._wake = threading.Event()
        self._stopping = False
        self._commits = 0
        self._dirty = False
        self._thread = threading.Thread(target=self._run, name="gate-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        """Called by the writer after each commit (on its thread: a counter, mostly)."""
        self._dirty = True
        self._commits += 1
        if self._commits >= NUDGE_EVERY_COMMITS:
            self._commits = 0
            self._wake.set()

    def stop(self) -> None:
        """Stop and join the thread (blocking: call it off the loop)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.error("WAL checkpointer could not open the database: %s", exc)
            return
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            while not self._stopping:
                self._wake.wait(INTERVAL_S)
                self._wake.clear()
                if self._dirty and not self._stopping:
                    self._dirty = False
                    self.checkpoint(conn)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= self._restart_frames:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as exc:  # a checkpoint is an optimisation: the next one retries
            log.warning("WAL checkpoint failed: %s", exc)
