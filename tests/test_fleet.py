"""Two gate processes on one store, as replicas behind a load balancer: real processes,
real proxies, real upstreams. What one decides or approves, the other honours; what one
holds, the other releases; a limit, an approval and the ledger's chain stay single.

Every test runs on both stores:
- sqlite: two processes in fleet mode (``--workers 2 --worker-index i``: leases, the
  ledger feed, the chain head read under the write lock) on their own ports, sharing one
  data dir (workers on one box);
- postgres: two replicas, each with its own data and certs dirs (two boxes), one
  PostgreSQL database (a real server the harness starts), the same mounted key files.
"""

import asyncio
import concurrent.futures
import hashlib
import itertools
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from gate_process import TEST_ADMIN_KEY, GateProcess, prepare_root
from upstreams import Upstream, free_port

from gate_proxy.keys import load_or_create_signer
from gate_proxy.proxy.ca import CA_KEY_AND_CERT, ensure_ca

POLICIES = {
    "needs-review": "id: needs-review\nrequire_approval: always\nexpiry_minutes: 30\n",
    "auto": "id: auto\nauto_approve_under: 1\n",
    "limited": "id: limited\nauto_approve_under: 1\nrate_limits:\n  per_agent_per_hour: 5\n",
}


def destinations(port: int) -> str:
    return f"""
default:
  action: block
"127.0.0.1:{port}":
  paths:
    /review: {{method: POST, destination: ops.review, policy: needs-review}}
    /auto: {{method: POST, destination: ops.auto, policy: auto}}
    /limited: {{method: POST, destination: ops.limited, policy: limited}}
"""


@dataclass
class Store:
    """Where the pair's ledger lives, and how to read it from outside the gates."""

    kind: str
    data_dir: Path
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.url is None:
            with sqlite3.connect(f"file:{self.data_dir / 'gate.db'}?mode=ro", uri=True) as db:
                return db.execute(sql).fetchall()

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.url)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def verify_args(self) -> list[str]:
        where = ["--database-url", self.url] if self.url else []
        return ["ledger", "verify", "--data-dir", str(self.data_dir), *where]


@dataclass
class Pair:
    a: GateProcess
    b: GateProcess
    upstream: Upstream
    store: Store

    def proxy(self, gate: GateProcess, agent: dict[str, Any], **kwargs: Any) -> httpx.Client:
        url = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
        return httpx.Client(proxy=url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(body) for (body,) in self.store.query("SELECT body FROM ledger ORDER BY seq")
        ]

    def payload_digests(self) -> dict[str, str]:
        return dict(self.store.query("SELECT id, payload_sha256 FROM intents"))

    def verify(self) -> str:
        result = self.a.cli(*self.store.verify_args(), env=self.store.env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def stop(self) -> None:
        self.b.stop()
        self.a.stop()


def shared_keys(directory: Path) -> dict[str, str]:
    """What make-secrets.sh gives a fleet: one signing key and one CA, as mounted files."""
    directory.mkdir(parents=True, exist_ok=True)
    load_or_create_signer(directory)
    ensure_ca(directory / "ca")
    return {
        "GATE_SIGNING_KEY_FILE": str(directory / "signing.key"),
        "GATE_CA_FILE": str(directory / "ca" / CA_KEY_AND_CERT),
    }


def start_pair(root: Path, backend: str, pg_url: str | None) -> Pair:
    upstream = Upstream().start()
    if backend == "sqlite":
        prepare_root(root, POLICIES)
        (root / "config" / "destinations.yaml").write_text(destinations(upstream.port))
        gates = [GateProcess(root, free_port(), free_port(), free_port(), None) for _ in "ab"]
        gates[0].start("--workers", "2", "--worker-index", "0")  # makes the keys and CA
        gates[1].start("--workers", "2", "--worker-index", "1")
        return Pair(gates[0], gates[1], upstream, Store("sqlite", root / "data"))
    assert pg_url is not None
    env = shared_keys(root / "keys")
    gates = []
    for name in ("a", "b"):
        prepare_root(root / name, POLICIES)
        (root / name / "config" / "destinations.yaml").write_text(destinations(upstream.port))
        gate = GateProcess(root / name, free_port(), free_port(), free_port(), TEST_ADMIN_KEY)
        gate.start("--database-url", pg_url, env=env)
        gates.append(gate)
    return Pair(gates[0], gates[1], upstream, Store("postgres", root / "a" / "data", pg_url, env))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    backend = request.param
    pg_url = request.getfixturevalue("pg_module_url") if backend == "postgres" else None
    started = start_pair(tmp_path_factory.mktemp(f"fleet-{backend}"), backend, pg_url)
    try:
        yield started
    finally:
        started.stop()
        started.upstream.stop()


def marker() -> str:
    return f"m-{time.monotonic_ns()}"


def received(pair: Pair, mark: str) -> int:
    return sum(1 for r in pair.upstream.requests if mark.encode() in r.body)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_an_agent_registered_on_one_replica_works_on_the_other(pair: Pair) -> None:
    agent = pair.a.register(f"both-{time.monotonic_ns()}")
    mark = marker()
    with pair.proxy(pair.b, agent) as client:
        answer = client.post(f"{pair.upstream.url}/auto", json={"m": mark})
    assert answer.status_code == 200, answer.text
    assert received(pair, mark) == 1


def test_a_revocation_on_one_replica_bites_on_the_other_within_a_second(pair: Pair) -> None:
    agent = pair.a.register(f"revoked-{time.monotonic_ns()}")
    with pair.proxy(pair.b, agent) as client:
        assert client.post(f"{pair.upstream.url}/auto", json={"m": marker()}).status_code == 200
        with pair.a.admin() as admin:
            assert admin.post(f"/v1/agents/{agent['agentId']}/revoke").status_code == 200
        revoked_at = time.monotonic()
        mark = marker()
        while True:
            answer = client.post(f"{pair.upstream.url}/auto", json={"m": mark})
            if answer.status_code != 200:
                break
            assert time.monotonic() - revoked_at < 1.0, "still forwarded a second after revoke"
            mark = marker()
    assert answer.status_code == 403
    assert received(pair, mark) == 0


def test_a_request_held_on_one_replica_is_released_by_an_approval_on_the_other(
    pair: Pair,
) -> None:
    agent = pair.a.register(f"held-{time.monotonic_ns()}")
    mark = marker()
    answers: list[httpx.Response] = []

    def send() -> None:
        with pair.proxy(pair.a, agent, timeout=60) as client:
            answers.append(
                client.post(
                    f"{pair.upstream.url}/review", json={"m": mark}, headers={"X-Gate-Wait": "true"}
                )
            )

    sender = threading.Thread(target=send)
    sender.start()
    with pair.b.admin() as admin:  # B sees A's pending intent through the store

        def pending() -> list[dict[str, Any]]:
            listed = admin.get("/v1/intents", params={"status": "pending_approval"}).json()
            return [i for i in listed["intents"] if i["agentId"] == agent["agentId"]]

        wait_for(lambda: bool(pending()))
        intent_id = pending()[0]["intentId"]
        with pair.a.admin() as on_a:  # the hold is on A
            wait_for(lambda: on_a.get("/v1/proxy/held").json()["count"] >= 1)
        approved = admin.post(f"/v1/intents/{intent_id}/approve", json={})
        assert approved.status_code == 200, approved.text
    sender.join(timeout=30)
    assert not sender.is_alive()
    assert answers[0].status_code == 200, answers[0].text
    assert received(pair, mark) == 1
    types = [e["type"] for e in pair.events() if e["intent_id"] == intent_id]
    assert types.count("execution_requested") == 1


def test_an_approved_retry_runs_once_across_replicas(pair: Pair) -> None:
    agent = pair.a.register(f"retry-{time.monotonic_ns()}")
    mark = marker()
    body = json.dumps({"m": mark}).encode()
    headers = {"Content-Type": "application/json"}
    with pair.proxy(pair.a, agent) as client:
        pending = client.post(f"{pair.upstream.url}/review", content=body, headers=headers)
    assert pending.status_code == 202
    intent_id = pending.headers["X-Gate-Intent-Id"]
    with pair.b.admin() as admin:
        assert admin.post(f"/v1/intents/{intent_id}/approve", json={}).status_code == 200

    def retry(gate: GateProcess) -> int:
        with pair.proxy(gate, agent) as client:
            return client.post(
                f"{pair.upstream.url}/review",
                content=body,
                headers={**headers, "X-Gate-Intent-Id": intent_id},
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(retry, [pair.a, pair.b] * 4))
    assert sorted(codes) == [200] + [409] * 7
    assert received(pair, mark) == 1


def test_a_rate_limit_holds_across_replicas(pair: Pair) -> None:
    agent = pair.a.register(f"limited-{time.monotonic_ns()}")
    mark = marker()

    def send(gate: GateProcess) -> int:
        with pair.proxy(gate, agent) as client:
            return client.post(f"{pair.upstream.url}/limited", json={"m": mark}).status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(send, [pair.a, pair.b] * 10))
    assert codes.count(200) == 5
    assert received(pair, mark) == 5


def test_concurrent_writes_through_both_keep_one_chain(pair: Pair) -> None:
    agents = [pair.a.register(f"chain-{i}-{time.monotonic_ns()}") for i in range(4)]
    mark = marker()

    def send(index: int) -> int:
        gate = pair.a if index % 2 else pair.b
        with pair.proxy(gate, agents[index % 4]) as client:
            return client.post(
                f"{pair.upstream.url}/auto", json={"m": mark, "i": index}
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(send, range(80)))
    assert codes == [200] * 80
    assert received(pair, mark) == 80
    events = pair.events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    carriers = {e["data"].get("instance") for e in events if e["type"] == "execution_requested"}
    assert len(carriers - {None}) >= 2  # both processes carried requests
    assert "ledger intact" in pair.verify()


def test_a_dashboard_session_from_one_replica_works_on_the_other(pair: Pair) -> None:
    reviewer = pair.a.register(f"rev-{time.monotonic_ns()}", role="reviewer")
    with httpx.Client(base_url=pair.a.url) as on_a:
        signed_in = on_a.post("/dashboard/login", json={"key": reviewer["apiKey"]})
        assert signed_in.status_code == 200, signed_in.text
        cookie = on_a.cookies.get("gate_dashboard")
    assert cookie
    with httpx.Client(base_url=pair.b.url, cookies={"gate_dashboard": cookie}) as on_b:
        session = on_b.get("/dashboard/api/session")
    assert session.status_code == 200
    assert session.json()["principal"]["name"] == reviewer["name"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_under_load_leaves_a_ledger_that_verifies(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A replica dies mid-load: every request the upstream received has its write-ahead
    record, and the chain verifies."""
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    pair = start_pair(tmp_path, backend, pg_url)
    a, b, upstream = pair.a, pair.b, pair.upstream
    try:
        agent = a.register(f"load-{time.monotonic_ns()}")
        stop = threading.Event()
        numbers = itertools.count()
        mark = marker()

        def load(gate: GateProcess) -> None:
            for _ in range(400):
                if stop.is_set():
                    return
                body = {"m": mark, "n": next(numbers)}
                try:
                    with pair.proxy(gate, agent, timeout=10) as client:
                        client.post(f"{upstream.url}/auto", json=body)
                except httpx.HTTPError:
                    if gate is b:
                        return  # b is dead

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(load, gate) for gate in (a, a, b, b)]
            wait_for(lambda: received(pair, mark) >= 40, timeout=30)
            assert b.process is not None
            b.process.send_signal(signal.SIGKILL)
            b.process.wait(timeout=10)
            wait_for(lambda: received(pair, mark) >= 80, timeout=30)  # a carries on
            stop.set()
            for future in futures:
                future.result(timeout=60)
    finally:
        pair.stop()
        upstream.stop()
    digest_of = pair.payload_digests()
    requested = {
        digest_of[e["intent_id"]] for e in pair.events() if e["type"] == "execution_requested"
    }
    delivered = [r.body for r in upstream.requests if mark.encode() in r.body]
    assert len(delivered) >= 80
    missing = [body for body in delivered if hashlib.sha256(body).hexdigest() not in requested]
    assert missing == []
    assert "ledger intact" in pair.verify()
