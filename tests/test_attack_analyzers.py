"""Content analyzers under attack, end to end (security issue 9, item 18).

A policy blocks destructive SQL on a registry path. An attacker sends SQL bodies built to
break the analyzer: 100 KB and 300 KB of SQL, one long statement (sqlparse used to raise
past 10,000 tokens in one statement, and the gate answered 503) or many, a 2 KB
``... WHERE 1+1+...`` that used to exceed sqlparse's grouping depth, a 2 MiB body. Each
must get a decision (403 blocked, or 202 pending where the policy only asks for review),
never a 503, and the upstream must receive none of them. A benign query on the same path
is forwarded: the route works.

While the gate analyses the worst bodies we know, ``GET /health`` on the control API must
still answer quickly: analysis is bounded (about 50 ms per analyzer), so even on the event
loop it cannot stall the gate for long. (Against the analyzers before issue 9, the long
INSERT and the grouping-depth body got 503 and /health timed out.)
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

POLICIES = {
    "warehouse": (
        "id: warehouse\n"
        "sql: {block: [drop, truncate, alter, stacked],"
        " require_approval: [delete_without_where, update_without_where]}\n"
        "require_approval: never\n"
    ),
    "warehouse-review": (
        "id: warehouse-review\n"
        "sql: {require_approval: [drop, stacked, delete_without_where]}\n"
        "require_approval: never\n"
    ),
}
HEALTH_BOUND_S = 1.0  # generous: analysis is bounded; the gate may also run it off the loop


def registry(port: int) -> str:
    return (
        f'default:\n  action: block\n"localhost:{port}":\n  paths:\n'
        "    /v1/query: {method: POST, destination: warehouse.sql, policy: warehouse}\n"
        "    /v1/review: {method: POST, destination: warehouse.sql,"
        " policy: warehouse-review}\n"
    )


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream
        self.agent = gate.register(f"analyzers-{time.monotonic_ns()}")

    def client(self, timeout: float = 30) -> httpx.Client:
        agent = self.agent
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=timeout)

    def url(self, path: str) -> str:
        return f"http://localhost:{self.upstream.port}{path}"

    def received(self, mark: str) -> list[Any]:
        return [r for r in self.upstream.requests if mark.encode() in r.body]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("analyzers")
    with Upstream() as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def mark() -> str:
    return f"m{time.monotonic_ns()}"


def stacked_sql(size: int, tag: str) -> str:
    """`size` characters of stacked UPDATEs; the marker is in a comment (not code)."""
    head = f"/* {tag} */ "
    unit = "UPDATE accounts SET note = 'x' WHERE id = 7; "
    return head + unit * ((size - len(head)) // len(unit) + 1)


def one_long_insert(size: int, tag: str) -> str:
    """One statement of more than 10,000 tokens (sqlparse raised on it: a 503 before)."""
    head = f"/* {tag} */ INSERT INTO accounts (id, note) VALUES "
    rows = ",".join(f"({i}, 'x')" for i in range((size - len(head)) // 10))
    return f"{head}{rows}; DROP TABLE accounts"


def test_a_benign_query_is_forwarded(env: Env) -> None:
    tag = mark()
    with env.client() as client:
        response = client.post(env.url("/v1/query"), json={"query": f"SELECT 1 /* {tag} */"})
    assert response.status_code == 200, response.text
    assert len(env.received(tag)) == 1


ATTACKS = [
    ("100 KB INSERT, one statement, plain text", one_long_insert, 100_000, False),
    ("300 KB INSERT, one statement, in JSON", one_long_insert, 300_000, True),
    ("100 KB of stacked statements, plain text", stacked_sql, 100_000, False),
    ("100 KB of stacked statements in JSON", stacked_sql, 100_000, True),
    ("300 KB of stacked statements, plain text", stacked_sql, 300_000, False),
    ("2 MiB of stacked statements in JSON", stacked_sql, 2 * 1024 * 1024, True),
]


@pytest.mark.parametrize(("name", "build", "size", "as_json"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_large_sql_is_decided_and_never_forwarded(
    env: Env, name: str, build: Callable[[int, str], str], size: int, as_json: bool
) -> None:
    tag = mark()
    sql = build(size, tag)
    with env.client() as client:
        if as_json:
            response = client.post(env.url("/v1/query"), json={"query": sql})
        else:
            headers = {"content-type": "text/plain"}
            response = client.post(env.url("/v1/query"), content=sql, headers=headers)
    assert response.status_code == 403, f"{name}: {response.status_code} {response.text[:300]}"
    assert response.json()["reason_code"] == "sql_blocked"
    assert env.received(tag) == []


def test_grouping_depth_attack_is_decided(env: Env) -> None:
    """2 KB that made sqlparse raise "Maximum grouping depth exceeded" (a 503 before)."""
    tag = mark()
    sql = f"/* {tag} */ DELETE FROM accounts WHERE 1" + "+1" * 1000 + "; DROP TABLE accounts"
    with env.client() as client:
        response = client.post(env.url("/v1/query"), json={"query": sql})
    assert response.status_code == 403, response.text
    assert response.json()["reason_code"] == "sql_blocked"
    assert env.received(tag) == []


def test_review_only_policy_makes_large_sql_pending(env: Env) -> None:
    """Without a block rule, too-large SQL still needs a human: 202, nothing forwarded."""
    tag = mark()
    with env.client() as client:
        response = client.post(env.url("/v1/review"), json={"query": stacked_sql(300_000, tag)})
    assert response.status_code == 202, response.text
    assert response.json()["reason_code"] == "sql_review_required"
    assert env.received(tag) == []


def worst_bodies(tag: str) -> list[str]:
    """The costliest bodies for the gate's analyzers we know (bench --adversarial)."""
    statements = json.dumps([f"DROP TABLE t; SELECT 1 /* {tag} */"] * 7000)  # ~250 KB
    semicolons = f"/* {tag} */ SELECT 1" + ";" * 100_000
    ibans = f"{tag}; " + "DE89370400440532013000 " * 4200  # PII at its 96 KiB limit
    return [statements, semicolons, ibans]


def test_health_answers_quickly_while_the_worst_bodies_are_analysed(env: Env) -> None:
    tag = mark()
    bodies = worst_bodies(tag) * 3  # nine requests, three at a time
    statuses: list[int] = []
    lock = threading.Lock()

    def send(chunk: list[str]) -> None:
        with env.client(timeout=60) as client:
            for body in chunk:
                headers = {"content-type": "text/plain"}
                response = client.post(env.url("/v1/query"), content=body, headers=headers)
                with lock:
                    statuses.append(response.status_code)

    senders = [threading.Thread(target=send, args=(bodies[i::3],)) for i in range(3)]
    for sender in senders:
        sender.start()
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=env.gate.url, timeout=10) as health:
        while any(s.is_alive() for s in senders) and time.monotonic() < deadline:
            started = time.monotonic()
            assert health.get("/health").status_code == 200
            latencies.append(time.monotonic() - started)
            if len(latencies) >= 500:
                break
            time.sleep(0.01)
    for sender in senders:
        sender.join(timeout=60)
    assert not any(s.is_alive() for s in senders)
    assert sorted(statuses) == [403] * len(bodies), statuses
    assert env.received(tag) == []
    assert latencies, "no /health probe ran while the bodies were analysed"
    assert max(latencies) < HEALTH_BOUND_S, f"slowest /health: {max(latencies):.3f} s"
