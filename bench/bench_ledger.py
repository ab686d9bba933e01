"""Ledger benchmark: chained appends through the real SqliteStore, then offline verification.

Run from the repository root:

    .venv/bin/python bench/bench_ledger.py            # full: 50,000 events x 5 repetitions
    .venv/bin/python bench/bench_ledger.py --quick    # short: 10,000 events x 3 repetitions

What it measures (each repetition on a fresh store in a temporary directory):

- append throughput with concurrent writers (the store's group commit batches them into one
  transaction), in the write shapes the gate really makes:
  * 1 event per write (a review, an execution outcome);
  * 4 events per write (proposed, policy_checked, approved, execution_requested: what an
    auto-approved proxied request appends);
  * the same 4 events plus the intent row they describe, via ``insert_intent``;
  * the proxied decision's actual write: ``insert_decided_intent`` builds the intent and
    its 4 events inside the write transaction (the auto-approved policy reads no counts);
- the CPU time of the whole process per event appended (every thread: the loop, the writer
  thread of ``durability: full``, the WAL checkpointer), the cost the gate's one core pays;
- ``gate_proxy.ledger.verify_database`` over the ledger just written: events verified per
  second (chain hashes, links, indexed columns and every signed checkpoint);
- single-writer latency: one write awaited at a time, p50/p99, with the default
  ``synchronous=NORMAL`` and with ``durability: full`` (``synchronous=FULL``, fsync per commit).

Every loop is bounded by a count and by a deadline. Medians of the repetitions are reported,
with the min–max range.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import background_load, fmt, header, md_table, median, percentile, spread

from gate_proxy.clock import utc_iso
from gate_proxy.core.decide import Counts
from gate_proxy.core.intents import Intent, Status
from gate_proxy.keys import Signer, load_or_create_signer
from gate_proxy.ledger import verify_database
from gate_proxy.store.base import EventDraft
from gate_proxy.store.sqlite import SqliteStore

APPEND_TARGET = 20_000  # chained events/s appended (issue #2)
VERIFY_TARGET = 200_000  # events/s verified (issue #2)
SCENARIO_DEADLINE_S = 120.0  # per repetition; a slow disk ends the run, it does not hang it


# --------------------------------------------------------------------------- realistic shapes


def _intent_id() -> str:
    return "int_" + secrets.token_hex(8)


def proposal_events(intent_id: str) -> list[EventDraft]:
    """The four events of an auto-approved proxied request, with the service's data."""
    agent, agent_id = "support-bot", "agt_5f2a9c01d3e4b6a7"
    sha = hashlib.sha256(intent_id.encode()).hexdigest()
    return [
        EventDraft(
            "proposed",
            intent_id,
            agent,
            agent_id,
            {
                "agent": agent,
                "on_behalf_of": None,
                "destination": "zendesk.reply",
                "policy": "support-reply",
                "source": "proxy",
                "record_count": None,
                "payload_sha256": sha,
                "payload_size": 61,
                "fingerprint": sha,
                "method": "POST",
                "url": "http://127.0.0.1:8080/v1/replies",
            },
        ),
        EventDraft(
            "policy_checked",
            intent_id,
            "system",
            agent_id,
            {
                "result": "approved",
                "reason_code": "auto_approved",
                "rule": "auto_approve_under",
                "risk_score": 0.12,
                "risk_level": "low",
                "environment": None,
                "shadow": False,
            },
        ),
        EventDraft("approved", intent_id, "system", agent_id, {"by": "policy"}),
        EventDraft(
            "execution_requested",
            intent_id,
            agent,
            agent_id,
            {
                "mode": "proxy",
                "method": "POST",
                "url": "http://127.0.0.1:8080/v1/replies",
                "fingerprint": sha,
            },
        ),
    ]


def outcome_event(intent_id: str) -> list[EventDraft]:
    return [
        EventDraft(
            "execution_succeeded", intent_id, "proxy", "agt_5f2a9c01d3e4b6a7", {"status_code": 200}
        )
    ]


def intent_row(intent_id: str) -> Intent:
    now = utc_iso()
    sha = hashlib.sha256(intent_id.encode()).hexdigest()
    return Intent(
        id=intent_id,
        agent_id="agt_5f2a9c01d3e4b6a7",
        agent_name="support-bot",
        source="proxy",
        destination="zendesk.reply",
        policy="support-reply",
        status=Status.SCHEDULED,
        reason_code="auto_approved",
        risk_score=0.12,
        risk_level="low",
        payload_type="json",
        payload_size=61,
        payload_sha256=sha,
        payload_preview='{"ticket": 4711, "to": "customer@example.com", "message": "hi"}',
        method="POST",
        url="http://127.0.0.1:8080/v1/replies",
        fingerprint=sha,
        created_at=now,
        decided_at=now,
        decided_by="system",
        executed_at=now,
    )


@dataclass(frozen=True)
class Shape:
    name: str
    events_per_write: int
    write: Callable[[SqliteStore], Any]  # returns an awaitable


def _append(events: Callable[[str], list[EventDraft]]) -> Callable[[SqliteStore], Any]:
    return lambda store: store.append(events(_intent_id()))


def _insert_intent(store: SqliteStore) -> Any:
    intent_id = _intent_id()
    return store.insert_intent(intent_row(intent_id), proposal_events(intent_id))


def _insert_decided(store: SqliteStore) -> Any:
    intent_id = _intent_id()

    def build(_counts: Counts) -> tuple[Intent, list[EventDraft]]:
        return intent_row(intent_id), proposal_events(intent_id)

    return store.insert_decided_intent(None, build)


SHAPES = [
    Shape("1 event / write", 1, _append(outcome_event)),
    Shape("4 events / write", 4, _append(proposal_events)),
    Shape("intent row + 4 events / write", 4, _insert_intent),
    Shape("decided intent + 4 events / write (the proxy's)", 4, _insert_decided),
]
PROXY_SHAPE = SHAPES[3]


# --------------------------------------------------------------------------- measurements


async def open_store(directory: Path, synchronous: str = "NORMAL") -> tuple[SqliteStore, Signer]:
    signer = load_or_create_signer(directory)
    store = SqliteStore(directory, signer, synchronous=synchronous)
    await store.open()
    return store, signer


async def append_run(
    directory: Path, shape: Shape, events: int, writers: int, synchronous: str = "NORMAL"
) -> tuple[int, float, float, SqliteStore, Signer]:
    """Append ``events`` events with ``writers`` concurrent writers. Returns (events appended,
    seconds, CPU seconds of the process, the closed store, its signer)."""
    store, signer = await open_store(directory, synchronous)
    writes_total = events // shape.events_per_write
    issued = 0
    deadline = time.monotonic() + SCENARIO_DEADLINE_S

    async def writer() -> int:
        nonlocal issued
        done = 0
        while issued < writes_total and time.monotonic() < deadline:
            issued += 1
            await shape.write(store)
            done += 1
        return done

    started, cpu_started = time.perf_counter(), time.process_time()
    counts = await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await store.close()
    return sum(counts) * shape.events_per_write, elapsed, cpu, store, signer


def verify_run(store: SqliteStore, signer: Signer, repeats: int) -> tuple[float, int]:
    """Median seconds of ``repeats`` full verifications, and the event count verified."""
    times = []
    count = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = verify_database(store.path, signer.public_key)
        times.append(time.perf_counter() - started)
        if not result.ok:
            raise SystemExit(f"verification failed on a freshly written ledger: {result}")
        count = result.events
    return median(times), count


async def latency_run(
    directory: Path, shape: Shape, count: int, synchronous: str, budget_s: float
) -> list[float]:
    """One write at a time; microseconds per awaited write."""
    store, _ = await open_store(directory, synchronous)
    try:
        for _ in range(min(100, count)):  # warm up: caches, the writer thread, the WAL file
            await shape.write(store)
        samples = []
        deadline = time.monotonic() + budget_s
        for _ in range(count):
            started = time.perf_counter_ns()
            await shape.write(store)
            samples.append((time.perf_counter_ns() - started) / 1000)
            if time.monotonic() > deadline:
                break
        return samples
    finally:
        await store.close()


# --------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> str:
    out = [header("Ledger (bench/bench_ledger.py)")]
    out.append(f"- background: {background_load()}")
    out.append(
        f"- {args.events:,} events per repetition, {args.repetitions} repetitions, "
        f"{args.writers} concurrent writers, synchronous=NORMAL (the default `durability`)"
    )
    out.append("")

    append_rows = []
    verify_rates: list[float] = []
    verify_events = 0
    best_append: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        root = Path(tmp)
        shapes = [*SHAPES, Shape("4 events / write, durability: full", 4, SHAPES[1].write)]
        for index, shape in enumerate(shapes):
            synchronous = "FULL" if "full" in shape.name else "NORMAL"
            rates, write_rates, cpu_per_event = [], [], []
            for rep in range(args.repetitions):
                gc.collect()
                directory = root / f"append-{index}-{rep}"
                appended, elapsed, cpu, store, signer = await append_run(
                    directory, shape, args.events, args.writers, synchronous
                )
                rates.append(appended / elapsed)
                write_rates.append(appended / shape.events_per_write / elapsed)
                cpu_per_event.append(cpu / appended * 1e6)
                if shape is PROXY_SHAPE:  # verify the most realistic ledger (intent rows too)
                    seconds, verify_events = verify_run(store, signer, args.verify_repeats)
                    verify_rates.append(verify_events / seconds)
                print(
                    f"  [{shape.name}] rep {rep + 1}: {appended:,} events in {elapsed:.2f}s "
                    f"= {appended / elapsed:,.0f} events/s",
                    file=sys.stderr,
                )
            best_append[shape.name] = median(rates)
            append_rows.append(
                [
                    shape.name,
                    args.writers,
                    f"{args.events:,}",
                    fmt(median(rates), 0),
                    spread(rates),
                    fmt(median(write_rates), 0),
                    fmt(median(cpu_per_event), 1),
                ]
            )

        out.append("### Append throughput (chained events per second)")
        out.append("")
        out.append(
            md_table(
                [
                    "write shape",
                    "writers",
                    "events / rep",
                    "events/s (median)",
                    "min–max",
                    "writes/s (median)",
                    "CPU µs / event",
                ],
                append_rows,
            )
        )
        out.append("")
        out.append("### Verification (`gate_proxy.ledger.verify_database`)")
        out.append("")
        out.append(
            md_table(
                ["ledger", "events", "verified events/s (median)", "min–max"],
                [
                    [
                        f"written by '{PROXY_SHAPE.name}'",
                        f"{verify_events:,}",
                        fmt(median(verify_rates), 0),
                        spread(verify_rates),
                    ]
                ],
            )
        )
        out.append("")

        latency_rows = []
        for shape, synchronous in (
            (SHAPES[0], "NORMAL"),
            (PROXY_SHAPE, "NORMAL"),
            (SHAPES[0], "FULL"),
        ):
            p50s, p99s, counts = [], [], []
            for rep in range(args.repetitions):
                samples = await latency_run(
                    root / f"latency-{shape.events_per_write}-{synchronous}-{rep}",
                    shape,
                    args.latency_writes,
                    synchronous,
                    budget_s=30.0,
                )
                p50s.append(percentile(samples, 50))
                p99s.append(percentile(samples, 99))
                counts.append(len(samples))
            latency_rows.append(
                [
                    shape.name,
                    synchronous,
                    f"{min(counts):,}",
                    fmt(median(p50s), 0),
                    fmt(median(p99s), 0),
                    spread(p50s),
                ]
            )
        out.append("### Single-writer append latency (one awaited write at a time, µs)")
        out.append("")
        out.append(
            md_table(
                ["write shape", "synchronous", "writes / rep", "p50", "p99", "p50 min–max"],
                latency_rows,
            )
        )
        out.append("")

    verify_median = median(verify_rates)
    out.append("### Targets (issue #2)")
    out.append("")
    per_shape = "; ".join(
        f"{name}: {rate:,.0f} {'✓' if rate >= APPEND_TARGET else '✗'}"
        for name, rate in best_append.items()
    )
    realistic = best_append[PROXY_SHAPE.name]
    out.append(
        f"- append ≥ {APPEND_TARGET:,} chained events/s: "
        f"{'**met**' if realistic >= APPEND_TARGET else '**not met**'} for the proxied "
        f"decision's real write ({PROXY_SHAPE.name}: {realistic:,.0f} events/s). "
        f"All shapes: {per_shape}"
    )
    out.append(
        f"- verify ≥ {VERIFY_TARGET:,} events/s: "
        f"{'**met**' if verify_median >= VERIFY_TARGET else '**not met**'} "
        f"({verify_median:,.0f} events/s)"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short run (10k events, 3 reps)")
    parser.add_argument("--events", type=int, help="events per repetition (default 50,000)")
    parser.add_argument("--repetitions", type=int, help="repetitions (default 5)")
    parser.add_argument("--writers", type=int, default=64, help="concurrent writers")
    parser.add_argument("--latency-writes", type=int, help="writes per latency repetition")
    parser.add_argument("--verify-repeats", type=int, default=3, help="verifications per ledger")
    args = parser.parse_args()
    args.events = max(1000, min(args.events or (10_000 if args.quick else 50_000), 1_000_000))
    args.repetitions = max(1, min(args.repetitions or (3 if args.quick else 5), 20))
    args.latency_writes = max(100, args.latency_writes or (500 if args.quick else 2000))
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
