"""Intent ids: random vs ordered by time, as SQLite's primary-key index sees them.

Run from the repository root:

    .venv/bin/python bench/bench_ids.py            # 200,000 intents already stored
    .venv/bin/python bench/bench_ids.py --quick    # 20,000

The gate's real schema (every migration), WAL with ``synchronous=NORMAL`` as the store opens
it; intents inserted 8 per transaction (a typical group-commit batch under load), a passive
WAL checkpoint every 100 transactions. Reported: CPU µs per inserted intent for ids made by
``keys.random_id`` (what intents had) and by ``keys.ordered_id`` (what they have), each mode
on its own fresh file, the modes interleaved over the rounds; medians and min–max.
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fmt, header, md_table, median, spread

from gate_proxy.keys import ordered_id, random_id
from gate_proxy.store.sqlite.schema import migrate

INSERT = (
    "INSERT INTO intents (id, agent_id, agent_name, source, destination, policy, status, "
    "risk_score, risk_level, created_at, fingerprint) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
BATCH = 8


def rows(make_id: Callable[[], str], count: int) -> list[tuple[object, ...]]:
    return [
        (make_id(), "agt_1", "bench", "proxy", "crm.import", "crm", "approved", 0.1, "low",
         "2026-12-02T00:00:00.000Z", secrets.token_hex(16))
        for _ in range(count)
    ]  # fmt: skip


def one_run(path: Path, make_id: Callable[[], str], stored: int, inserts: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows(make_id, stored))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        start = time.process_time()
        for turn in range(inserts // BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows(make_id, BATCH))
            conn.execute("COMMIT")
            if turn % 100 == 0:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return (time.process_time() - start) / inserts * 1e6
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stored = 20_000 if args.quick else 200_000
    inserts = 20_000
    modes = {"random (keys.random_id)": lambda: random_id("int_", 8),
             "ordered (keys.ordered_id)": lambda: ordered_id("int_", 8)}  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory(prefix="bench-ids-") as tmp:
        for round_ in range(args.rounds):
            for index, (name, make_id) in enumerate(modes.items()):
                path = Path(tmp) / f"r{round_}m{index}.db"
                results[name].append(one_run(path, make_id, stored, inserts))
    print(header(f"Intent ids ({stored:,} stored, {inserts:,} inserted, {BATCH} per commit)"))
    base = median(results["random (keys.random_id)"])
    print(md_table(
        ["intent id", "CPU µs / insert (median)", "min–max", "vs random"],
        [[name, fmt(median(v), 1), spread(v), f"{median(v) / base:.2f}×"]
         for name, v in results.items()],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
