"""Store benchmark for a fleet: decided inserts through 1 vs 2 store processes, on SQLite
and on PostgreSQL.

Run from the repository root:

    .venv/bin/python bench/bench_store_fleet.py            # 2,000 inserts x 3 repetitions
    .venv/bin/python bench/bench_store_fleet.py --inserts 500 --repetitions 1

What it measures: ``insert_decided_intent`` in the shape of an auto-approved proxied write
(counts for rates, budgets and the duplicate window read inside the write transaction,
then the intent row and its 4 ledger events: proposed, policy_checked, approved,
execution_requested). Each store process runs ``--concurrency`` coroutines that loop
until the process has made its share of the inserts; with 2 processes each makes half.
The processes are separate OS processes (``--worker`` mode of this script) started
together on a wall-clock barrier; throughput is all inserts over the time from the
barrier to the last process finishing. Every repetition uses a fresh database (a new
SQLite file; a new PostgreSQL database) and ends with the ledger verified.

PostgreSQL is a server this script starts itself (tests/pg_server.py) with the server's
default durability (fsync and synchronous_commit on), or GATE_TEST_DATABASE_URL. Every
loop is bounded by a count and by a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import background_load, fmt, header, md_table, median, spread

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.decide import Counts
from gate_proxy.core.intents import Intent, Status
from gate_proxy.keys import load_or_create_signer
from gate_proxy.store.base import CountQuery, EventDraft, Store

RUN_DEADLINE_S = 300.0
BARRIER_S = 3.0  # processes open their store, then start together this long after launch


def _decided_insert(n: int, tag: str) -> tuple[CountQuery, object]:
    now = utc_now()
    query = CountQuery(
        agent_id="agt_1",
        policy="p",
        destination="crm.contacts",
        fingerprint=f"{tag}-{n}",
        since_hour=utc_iso(now - timedelta(hours=1)),
        since_day=utc_iso(now - timedelta(days=1)),
        rates=True,
        budgets=True,
        dedupe_since=utc_iso(now - timedelta(minutes=5)),
    )

    def build(counts: Counts) -> tuple[Intent, list[EventDraft]]:
        intent = Intent(
            id=f"int_{tag}_{n:07d}",
            agent_id="agt_1",
            agent_name="bench",
            source="proxy",
            destination="crm.contacts",
            policy="p",
            status=Status.SCHEDULED,
            risk_score=0.1,
            risk_level="low",
            estimated_value_usd=1.0,
            fingerprint=f"{tag}-{n}",
            created_at=utc_iso(),
        )
        events = [
            EventDraft(kind, intent.id, "bench", "agt_1", {"n": n})
            for kind in ("proposed", "policy_checked", "approved", "execution_requested")
        ]
        return intent, events

    return query, build


def _open(target: str, data_dir: Path) -> Store:
    signer = load_or_create_signer(data_dir)
    if target.startswith("postgresql://"):
        from gate_proxy.store.postgres import PostgresStore

        return PostgresStore(target, signer)
    from gate_proxy.store.sqlite import SqliteStore

    return SqliteStore(Path(target), signer)


async def _worker(
    target: str, key_dir: Path, inserts: int, concurrency: int, start_at: float, tag: str
) -> dict[str, float]:
    store = _open(target, key_dir)
    await store.open()
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        counter = iter(range(inserts))

        async def loop() -> None:
            for n in counter:  # shared: the coroutines split the inserts between them
                query, build = _decided_insert(n, tag)
                await store.insert_decided_intent(query, build)  # type: ignore[arg-type]

        await asyncio.wait_for(
            asyncio.gather(*(loop() for _ in range(concurrency))), RUN_DEADLINE_S
        )
        ended = time.time()
    finally:
        await store.close()
    return {"started": started, "ended": ended}


def _run(target: str, key_dir: Path, processes: int, inserts: int, concurrency: int) -> float:
    """Inserts per second of ``processes`` store processes sharing ``target``."""
    load_or_create_signer(key_dir)  # here, before the workers race to create it
    start_at = time.time() + BARRIER_S
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                target,
                str(key_dir),
                str(inserts // processes),
                str(concurrency),
                repr(start_at),
                f"p{index}",
            ],
            stdout=subprocess.PIPE,
        )
        for index in range(processes)
    ]
    reports = []
    try:
        for child in children:
            out, _ = child.communicate(timeout=RUN_DEADLINE_S + 60)
            if child.returncode != 0:
                raise SystemExit(f"worker failed ({child.returncode}); its stderr says why")
            reports.append(json.loads(out))
    finally:
        for child in children:  # a stuck worker (it dumps its stacks first) ends here
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
    elapsed = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    return (inserts // processes) * processes / elapsed


async def _verify(target: str, key_dir: Path, expected: int) -> None:
    signer = load_or_create_signer(key_dir)
    if target.startswith("postgresql://"):
        from gate_proxy.store.postgres.verify import verify_postgres

        result = await verify_postgres(target, signer.public_key)
    else:
        from gate_proxy.ledger import verify_database

        result = verify_database(Path(target) / "gate.db", signer.public_key)
    if not result.ok or result.events != expected * 4:
        raise SystemExit(f"ledger check failed after the run: {result.describe()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=2000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    load = background_load()

    from pg_server import fresh_database, postgres_server

    results: dict[tuple[str, int], list[float]] = {}
    with postgres_server(settings={}) as admin_url:
        for _ in range(args.repetitions):
            for backend in ("sqlite", "postgres"):
                for processes in (1, 2):
                    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
                        key_dir = Path(tmp)
                        if backend == "sqlite":
                            rate = _run(tmp, key_dir, processes, args.inserts, args.concurrency)
                            asyncio.run(_verify(tmp, key_dir, args.inserts))
                        else:

                            async def one_pg(
                                key_dir: Path = key_dir, processes: int = processes
                            ) -> float:
                                async with fresh_database(admin_url) as url:
                                    rate = await asyncio.to_thread(
                                        _run,
                                        url,
                                        key_dir,
                                        processes,
                                        args.inserts,
                                        args.concurrency,
                                    )
                                    await _verify(url, key_dir, args.inserts)
                                    return rate

                            rate = asyncio.run(one_pg())
                    results.setdefault((backend, processes), []).append(rate)
                    print(f"{backend} x{processes}: {rate:,.0f} inserts/s", file=sys.stderr)

    print(header("Store: decided inserts through 1 vs 2 processes (issue #12)"))
    print(f"- background: {load}")
    print(
        f"- {args.inserts} decided inserts per run (4 ledger events each), "
        f"{args.concurrency} concurrent callers per process, {args.repetitions} repetitions; "
        "PostgreSQL at its default durability on the same machine"
    )
    print()
    base = median(results[("sqlite", 1)])
    rows = []
    for (backend, processes), rates in results.items():
        rows.append(
            [
                backend,
                processes,
                fmt(median(rates)),
                spread(rates),
                f"{median(rates) / base:.2f}×",
            ]
        )
    print(md_table(["store", "processes", "inserts/s (median)", "range", "vs SQLite ×1"], rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        # A worker stuck past the deadline prints every thread's stack and exits.
        faulthandler.dump_traceback_later(RUN_DEADLINE_S + 30, exit=True)
        target, key_dir, inserts, concurrency, start_at, tag = sys.argv[2:8]
        report = asyncio.run(
            _worker(target, Path(key_dir), int(inserts), int(concurrency), float(start_at), tag)
        )
        print(json.dumps(report))
    else:
        main()
