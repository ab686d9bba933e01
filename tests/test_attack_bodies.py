"""The gate reads a body the way the upstream will (issue 9, items 5 and 18).

``crm-low-risk`` auto-approves batches of up to 100 records (``extract_records:
inputs.length``). A 500-record batch must never be forwarded without review, however it
is encoded: a UTF-8 BOM, UTF-16/32 (with or without BOM), a case variant of the key, a
duplicate key, a charset that contradicts the bytes. And valid but unusual bodies (a lone
surrogate escape, request trailers) get a decision, not a 503 or a hung connection.
"""

import codecs
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from rawhttp import proxy_auth, raw_proxy, read_response
from upstreams import Upstream

POLICIES = {
    "crm-low-risk": "id: crm-low-risk\nauto_approve_under: 100\nrequire_approval_over: 100\n",
    "support-reply": "id: support-reply\nblock_if_terms: [sue]\nauto_approve_under: 1\n",
}


def registry(port: int) -> str:
    return (
        f'default:\n  action: block\n"localhost:{port}":\n  paths:\n'
        "    /v1/contacts: {method: POST, destination: hubspot.contacts, policy: crm-low-risk,\n"
        "                   extract_records: inputs.length}\n"
        "    /v1/replies: {method: POST, destination: zendesk.reply, policy: support-reply}\n"
    )


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream
        self.agent = gate.register(f"bodies-{time.monotonic_ns()}")

    def client(self) -> httpx.Client:
        agent = self.agent
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=10)

    def url(self, path: str) -> str:
        return f"http://localhost:{self.upstream.port}{path}"

    def received(self, mark: str) -> list[Any]:
        needles = [mark.encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be")]
        needles += [mark.encode(codec) for codec in ("utf-32-le", "utf-32-be")]
        return [r for r in self.upstream.requests if any(n in r.body for n in needles)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("bodies")
    with Upstream() as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def batch(mark: str, count: int, key: str = "inputs") -> str:
    return json.dumps({key: [{"email": f"{i}@x.example"} for i in range(count)], "m": mark})


def mark() -> str:
    return f"b{time.monotonic_ns()}"


ENCODINGS = [
    ("utf-8 BOM", lambda text: codecs.BOM_UTF8 + text.encode(), "application/json"),
    ("utf-16 BOM", lambda text: text.encode("utf-16"), "application/json"),
    ("utf-16-le no BOM", lambda text: text.encode("utf-16-le"), "application/json"),
    ("utf-16-be no BOM", lambda text: text.encode("utf-16-be"), "application/json"),
    ("utf-32", lambda text: text.encode("utf-32"), "application/json"),
    (
        "utf-16 declared",
        lambda text: text.encode("utf-16-le"),
        "application/json; charset=utf-16le",
    ),
]


@pytest.mark.parametrize(("name", "encode", "content_type"), ENCODINGS)
def test_large_batch_in_any_utf_encoding_is_counted(
    env: Env, name: str, encode: Any, content_type: str
) -> None:
    m = mark()
    with env.client() as client:
        response = client.post(
            env.url("/v1/contacts"),
            content=encode(batch(m, 500)),
            headers={"Content-Type": content_type},
        )
    assert response.status_code == 202, (name, response.text)
    assert response.json()["reason_code"] == "record_threshold_exceeded"
    assert not env.received(m)
    # The same encoding of a small batch is read, counted and forwarded byte for byte.
    small = encode(batch(m + "small", 5))
    with env.client() as client:
        ok = client.post(
            env.url("/v1/contacts"), content=small, headers={"Content-Type": content_type}
        )
    assert ok.status_code == 200, (name, ok.text)
    (delivered,) = env.received(m + "small")
    assert delivered.body == small


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        # A case-insensitive upstream binds "Inputs" to inputs: it counts.
        ('{"Inputs": %s, "m": "%s"}', "application/json", 202, "record_threshold_exceeded"),
        # Two readings of the batch: refused.
        (
            '{"inputs": [], "Inputs": %s, "m": "%s"}',
            "application/json",
            403,
            "record_count_ambiguous",
        ),
        (
            '{"inputs": [], "inputs": %s, "m": "%s"}',
            "application/json",
            403,
            "record_count_ambiguous",
        ),
        # No readable count: a human decides (never "1 record").
        ('{"records": %s, "m": "%s"}', "application/json", 202, "record_count_unknown"),
        ('{"inputs": %s, "m": "%s",}', "application/json", 202, "record_count_unknown"),
    ],
)
def test_large_batch_under_a_tricky_key_is_never_auto_approved(
    env: Env, body: str, content_type: str, status: int, reason: str
) -> None:
    m = mark()
    records = json.dumps([{"email": f"{i}@x.example"} for i in range(500)])
    with env.client() as client:
        response = client.post(
            env.url("/v1/contacts"),
            content=(body % (records, m)).encode(),
            headers={"Content-Type": content_type},
        )
    assert (response.status_code, response.json()["reason_code"]) == (status, reason)
    assert not env.received(m)


def test_charset_contradicting_the_bytes_is_refused(env: Env) -> None:
    m = mark()
    with env.client() as client:
        response = client.post(
            env.url("/v1/contacts"),
            content=batch(m, 5).encode("utf-16-le"),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    assert response.status_code == 403
    assert response.json()["reason_code"] == "ambiguous_body"
    assert not env.received(m)


def test_terms_are_found_in_utf16_text(env: Env) -> None:
    m = mark()
    with env.client() as client:
        response = client.post(
            env.url("/v1/replies"),
            content=json.dumps({"m": m, "text": "we will sue"}).encode("utf-16"),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 403
    assert response.json()["reason_code"] == "blocked_term_detected"
    assert not env.received(m)


def test_lone_surrogate_escape_gets_a_decision_not_a_503(env: Env) -> None:
    m = mark()
    with env.client() as client:
        response = client.post(
            env.url("/v1/replies"),
            content=('{"m": "' + m + '", "text": "hi \\ud800 there"}').encode(),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert env.received(m)


def test_request_trailers_get_an_answer(env: Env) -> None:
    m = mark()
    payload = json.dumps({"m": m, "text": "hello"}).encode()
    chunked = b"%x\r\n%s\r\n0\r\nX-Checksum: abc\r\n\r\n" % (len(payload), payload)
    with raw_proxy(env.gate.proxy_port) as sock:
        sock.sendall(
            f"POST {env.url('/v1/replies')} HTTP/1.1\r\nHost: localhost:{env.upstream.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "Trailer: X-Checksum\r\n".encode()
            + proxy_auth(env.agent)
            + b"\r\n"
            + chunked
        )
        answer = read_response(sock)
    # Trailers are not part of what the gate decides on; it refuses rather than drop them.
    assert answer.status == 400
    assert b"trailers" in answer.body
    assert not env.received(m)
