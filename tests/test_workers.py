"""`gate-proxy serve --workers 2`: two processes on the same ports and one store, a
supervisor that restarts a killed worker, and nothing lost when one dies mid-request."""

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from gate_process import TEST_ADMIN_KEY, GateProcess, prepare_root
from upstreams import Upstream, free_port, slow

POLICIES = {"auto": "id: auto\nauto_approve_under: 1\n"}


def destinations(port: int) -> str:
    return f"""
default:
  action: block
"127.0.0.1:{port}":
  paths:
    /auto: {{method: POST, destination: ops.auto, policy: auto}}
    /slow: {{method: POST, destination: ops.slow, policy: auto}}
"""


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(part) for part in text.split()}


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def rows(gate: GateProcess, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{gate.data_dir / 'gate.db'}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def carriers(gate: GateProcess) -> dict[str, str]:
    """intent id -> the instance that carried its execution."""
    found = {}
    for (body,) in rows(gate, "SELECT body FROM ledger WHERE type = 'execution_requested'"):
        event = json.loads(body)
        found[event["intent_id"]] = event["data"]["instance"]
    return found


def post(gate: GateProcess, agent: dict[str, Any], url: str, body: dict[str, Any]) -> int:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    with httpx.Client(proxy=proxy, timeout=30) as client:  # a new connection each time
        return client.post(url, json=body).status_code


def test_two_workers_share_the_ports_the_chain_and_survive_a_kill(tmp_path: Path) -> None:
    with Upstream(routes={"/slow": slow(30)}) as upstream:
        prepare_root(tmp_path, POLICIES)
        (tmp_path / "config" / "destinations.yaml").write_text(destinations(upstream.port))
        gate = GateProcess(tmp_path, free_port(), free_port(), free_port(), TEST_ADMIN_KEY)
        gate.start("--workers", "2")
        try:
            assert gate.process is not None
            supervisor = gate.process.pid
            wait_for(lambda: len(children(supervisor)) == 2)
            wait_for(
                lambda: len(rows(gate, "SELECT name FROM leases WHERE name LIKE 'inst%'")) == 2
            )
            agent = gate.register(f"w-{time.monotonic_ns()}")

            codes = [post(gate, agent, f"{upstream.url}/auto", {"n": n}) for n in range(120)]
            assert codes == [200] * 120
            assert len(upstream.requests) == 120
            assert len(set(carriers(gate).values())) == 2  # the kernel used both workers

            # A request in flight on one worker (the upstream takes 30 s to answer)...
            outcome: list[Any] = []
            sender = threading.Thread(
                target=lambda: outcome.append(
                    _try(lambda: post(gate, agent, f"{upstream.url}/slow", {"slow": 1}))
                )
            )
            sender.start()
            wait_for(lambda: any(r.path == "/slow" for r in upstream.requests))
            (intent_id, instance), *_ = [
                item for item in carriers(gate).items() if item[0] not in _auto_ids(gate)
            ]
            victim = int(instance.split("_")[1])
            assert victim in children(supervisor)
            # ...whose process dies. Its lease must lapse before anyone may call its
            # execution orphaned: move the clock past it instead of waiting.
            gate.shift_clock(60)
            os.kill(victim, signal.SIGKILL)
            sender.join(timeout=30)
            assert outcome and outcome[0] != 200  # the agent saw the failure
            wait_for(lambda: len(children(supervisor)) == 2 and victim not in children(supervisor))

            def reconciled() -> bool:
                with gate.admin() as admin:
                    intent = admin.get(f"/v1/intents/{intent_id}").json()
                return intent["status"] == "failed" and intent["reason_code"] == "execution_unknown"

            wait_for(reconciled)
            more = [post(gate, agent, f"{upstream.url}/auto", {"after": n}) for n in range(20)]
            assert more == [200] * 20
            # Every request the upstream received has its write-ahead record.
            assert len(carriers(gate)) >= len(upstream.requests)
            verify = gate.cli("ledger", "verify", "--data-dir", str(gate.data_dir))
            assert verify.returncode == 0, verify.stdout + verify.stderr
        finally:
            code = gate.stop()
        assert code == 0
        assert gate.process is not None and gate.process.returncode == 0


def _try(call: Any) -> Any:
    try:
        return call()
    except httpx.HTTPError as exc:
        return exc


def _auto_ids(gate: GateProcess) -> set[str]:
    return {row[0] for row in rows(gate, "SELECT id FROM intents WHERE destination = 'ops.auto'")}


def test_workers_need_fixed_ports_and_say_so(tmp_path: Path) -> None:
    prepare_root(tmp_path, POLICIES)
    gate = GateProcess(tmp_path, 0, free_port(), free_port(), TEST_ADMIN_KEY)
    gate.start("--workers", "2", wait=False)
    assert gate.process is not None
    assert gate.process.wait(timeout=60) == 2
    assert "--workers needs fixed ports" in gate.logs()


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    prepare_root(tmp_path, POLICIES)
    (tmp_path / "config" / "destinations.yaml").write_text("default: [not, a, mapping]\n")
    gate = GateProcess(tmp_path, free_port(), free_port(), free_port(), TEST_ADMIN_KEY)
    gate.start("--workers", "2", wait=False)
    assert gate.process is not None
    assert gate.process.wait(timeout=120) == 2
    assert "cannot start" in gate.logs()
