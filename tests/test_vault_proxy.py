"""Credential injection end to end: real gate, real upstream, real vault protocols."""

import base64
import gzip
import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import brotli
import httpx
import pytest
import zstandard
from gate_process import GateProcess, running_gate
from mitmproxy import http
from mitmproxy.test import tflow, tutils
from upstreams import Upstream
from vault_fake import MOTO_ENV, FakeVault, start_moto_server

from gate_proxy.metrics import GateMetrics
from gate_proxy.proxy.addons.vault import CredentialInjector
from gate_proxy.proxy.flowstate import InFlight, state_of
from gate_proxy.vault import VaultManager, parse_vault_config

POLICIES = {
    "auto": "id: auto\nrequire_approval: never\n",
    "manual": "id: manual\nrequire_approval: always\n",
}
ENV_SECRET = "sk_live_envSecretValue0123456789"
VAULT_SECRET = "hvault-secret-ABCDEF0123456789"
AWS_SECRET = "aws-secret-token-9876543210zyx"


def registry(port: int) -> str:
    return f"""
"127.0.0.1:{port}":
  paths:
    /env: {{method: POST, destination: env.send, policy: auto}}
    /strict: {{method: POST, destination: strict.send, policy: auto}}
    /hashicorp: {{method: POST, destination: hc.send, policy: auto}}
    /aws: {{method: POST, destination: aws.send, policy: auto}}
    /held: {{method: POST, destination: env.send, policy: manual}}
"""


def proxy_client(gate: GateProcess, agent: dict[str, Any]) -> httpx.Client:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    return httpx.Client(proxy=proxy, timeout=30)


def wait_last_event(gate: GateProcess, event: str) -> list[dict[str, Any]]:
    with gate.admin() as admin:
        intent_id = admin.get("/v1/intents", params={"limit": 1}).json()["intents"][0]["intentId"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            trail = admin.get(f"/v1/intents/{intent_id}/audit").json()
            if trail[-1]["eventType"] == event:
                return trail
            time.sleep(0.05)
    raise AssertionError(f"{event} never recorded: {[e['eventType'] for e in trail]}")


def no_trace(gate: GateProcess, *secrets: str) -> None:
    for path in [*gate.data_dir.rglob("*"), *gate.root.glob("gate-*.log")]:
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:6]}… found in {path.name}"


@pytest.fixture
def fake_vault() -> Iterator[FakeVault]:
    vault = FakeVault().start()
    vault.put("gate/hc", {"api_key": VAULT_SECRET})
    try:
        yield vault
    finally:
        vault.stop()


def test_env_injection_strip_and_echo_scrub(tmp_path: Path) -> None:
    with Upstream() as upstream:  # echoes what it received, headers included
        config = {
            "destinations.yaml": registry(upstream.port),
            "vault.yaml": """
provider: env
credentials:
  env.send: {ref: GATE_TEST_SECRET, inject: header, template: "Bearer {secret}"}
  strict.send: {ref: GATE_TEST_SECRET, on_agent_credential: reject}
""",
        }
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"GATE_TEST_SECRET": ENV_SECRET}
        ) as gate:
            agent = gate.register("mailer")
            with proxy_client(gate, agent) as client:
                response = client.post(
                    f"{upstream.url}/env",
                    json={"m": "hi"},
                    headers={"Authorization": "Bearer agent-own-token"},
                )
                strict = client.post(
                    f"{upstream.url}/strict",
                    json={"m": "hi"},
                    headers={"Authorization": "Bearer agent-own-token"},
                )
            check = gate.cli(
                "vault",
                "check",
                "--config-dir",
                str(gate.config_dir),
                env={"GATE_TEST_SECRET": ENV_SECRET},
            )
        logs = gate.logs()
    assert response.status_code == 200
    (received,) = upstream.requests
    assert received.header("Authorization") == f"Bearer {ENV_SECRET}"
    assert "agent-own-token" not in json.dumps(received.to_json())
    assert ENV_SECRET not in response.text and "[REDACTED]" in response.text
    assert strict.status_code == 400
    assert strict.json()["reason_code"] == "agent_credential_not_allowed"
    assert check.returncode == 0, check.stdout + check.stderr
    assert "env.send" in check.stdout and ENV_SECRET not in check.stdout + check.stderr
    assert ENV_SECRET not in logs
    no_trace(gate, ENV_SECRET)


def test_hashicorp_injection_and_outage(tmp_path: Path, fake_vault: FakeVault) -> None:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": registry(upstream.port),
            "vault.yaml": f"""
hashicorp:
  url: {fake_vault.url}
  auth: token
  token_env: VAULT_TOKEN
  timeout_seconds: 2
credentials:
  hc.send: {{provider: hashicorp, path: gate/hc, key: api_key, inject: header,
            header: X-Api-Key, ttl_seconds: 0}}
""",
        }
        token = fake_vault.issue_token()
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"VAULT_TOKEN": token}
        ) as gate:
            agent = gate.register("hc-agent")
            with proxy_client(gate, agent) as client:
                ok = client.post(f"{upstream.url}/hashicorp", json={"m": "one"})
                assert ok.status_code == 200, ok.text
                fake_vault.stop()  # the vault goes away
                outage = client.post(f"{upstream.url}/hashicorp", json={"m": "two"})
            trail = wait_last_event(gate, "execution_failed")
            logs = gate.logs()
    assert upstream.requests[0].header("X-Api-Key") == VAULT_SECRET
    assert outage.status_code == 503
    assert outage.json()["reason_code"] == "credential_unavailable"
    assert len(upstream.requests) == 1  # nothing forwarded without the credential
    assert trail[-1]["metadata"]["error"] == "credential_unavailable"
    assert VAULT_SECRET not in logs and token not in logs
    no_trace(gate, VAULT_SECRET)


def test_aws_secrets_manager_through_moto(tmp_path: Path) -> None:
    moto = start_moto_server()
    try:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        session.client("secretsmanager", endpoint_url=moto.url).create_secret(
            Name="prod/aws-send", SecretString=json.dumps({"token": AWS_SECRET})
        )
        with Upstream() as upstream:
            config = {
                "destinations.yaml": registry(upstream.port),
                "vault.yaml": f"""
aws:
  region: us-east-1
  endpoint_url: {moto.url}
credentials:
  aws.send: {{provider: aws, ref: prod/aws-send, key: token, inject: query,
             query_param: api_key}}
""",
            }
            with running_gate(tmp_path, policies=POLICIES, config=config, env=MOTO_ENV) as gate:
                agent = gate.register("aws-agent")
                with proxy_client(gate, agent) as client:
                    response = client.post(
                        f"{upstream.url}/aws?api_key=agent-guess", json={"m": "x"}
                    )
                logs = gate.logs()
    finally:
        moto.stop()
    assert response.status_code == 200, response.text
    (received,) = upstream.requests
    assert f"api_key={AWS_SECRET}" in received.path
    assert "agent-guess" not in received.path
    assert AWS_SECRET not in response.text  # the echo of the path is scrubbed
    assert AWS_SECRET not in logs
    no_trace(gate, AWS_SECRET)


def test_held_request_is_injected_on_replay(tmp_path: Path) -> None:
    import threading

    with Upstream() as upstream:
        config = {
            "destinations.yaml": registry(upstream.port),
            "vault.yaml": "credentials:\n  env.send: {ref: GATE_TEST_SECRET}\n",
        }
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"GATE_TEST_SECRET": ENV_SECRET}
        ) as gate:
            agent = gate.register("holder")
            results: list[httpx.Response] = []

            def send() -> None:
                with proxy_client(gate, agent) as client:
                    results.append(
                        client.post(
                            f"{upstream.url}/held",
                            json={"m": "wait"},
                            headers={"X-Gate-Wait": "true"},
                        )
                    )

            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            with gate.admin() as admin:
                deadline = time.monotonic() + 10
                held: list[dict[str, Any]] = []
                while not held and time.monotonic() < deadline:
                    held = admin.get("/v1/proxy/held").json()["held"]
                    time.sleep(0.05)
                assert held
                admin.post(f"/v1/intents/{held[0]['intentId']}/approve", json={})
            thread.join(timeout=20)
    assert results[0].status_code == 200
    assert upstream.requests[0].header("Authorization") == f"Bearer {ENV_SECRET}"
    assert ENV_SECRET not in results[0].text


# --------------------------------------------------------------------------- in process
# The CredentialInjector's hooks on mitmproxy flows, with a real VaultManager (env provider)
# and real metrics: what leaves each hook, without a gate process around it.

INPROC_SECRET = "sk_inproc_0123456789abcdefABCDEF"
INPROC_TOKEN = f"Bearer {INPROC_SECRET}".encode()


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> CredentialInjector:
    monkeypatch.setenv("GATE_INPROC_SECRET", INPROC_SECRET)
    vault = VaultManager(
        parse_vault_config("provider: env\ncredentials:\n  d.send: {ref: GATE_INPROC_SECRET}\n")
    )
    runtime = SimpleNamespace(vault=vault, usecases=SimpleNamespace(metrics=GateMetrics()))
    return CredentialInjector(runtime)  # type: ignore[arg-type]


async def injected_flow(injector: CredentialInjector, **request: Any) -> http.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(**request)) if request else tflow.tflow()
    flow.request.headers["Accept-Encoding"] = "gzip, deflate, br, zstd"
    state = state_of(flow)
    state.injection = injector.runtime.vault.injection_for("d.send")
    state.in_flight = InFlight("int_inproc", "agt_inproc")
    await injector.request(flow)
    assert flow.response is None
    return flow


def upstream_answer(
    flow: http.HTTPFlow,
    body: bytes,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    *,
    stream: bool = False,
    version: bytes = b"HTTP/1.1",
    reason: bytes = b"OK",
) -> http.Response:
    """The response as mitmproxy hands it to responseheaders (after GateForwarding, which
    sets ``stream`` for event streams and big bodies)."""
    fields = (*headers, (b"content-length", str(len(body)).encode()))
    response = tutils.tresp(
        http_version=version, reason=reason, headers=http.Headers(fields), content=body
    )
    response.stream = stream
    flow.response = response
    return response


def stream_through(response: http.Response, chunks: list[bytes]) -> bytes:
    """Feed the body to the stream callable as mitmproxy does; no chunk may be empty
    (mitmproxy would send it as the end of a chunked body)."""
    assert callable(response.stream)
    out: list[bytes] = []
    for chunk in [*chunks, b""]:
        produced = response.stream(chunk)
        assert isinstance(produced, list) and all(produced), produced
        out += produced
    return b"".join(out)


def gzip_pieces(data: bytes, size: int) -> list[bytes]:
    compressed = gzip.compress(data)
    return [compressed[i : i + size] for i in range(0, len(compressed), size)]


async def test_injection_asks_the_upstream_for_identity(injector: CredentialInjector) -> None:
    flow = await injected_flow(injector)
    assert flow.request.headers.get_all("Accept-Encoding") == ["identity"]
    assert flow.request.headers["Authorization"] == INPROC_TOKEN.decode()
    assert INPROC_SECRET not in repr(state_of(flow).scrubbing)


async def test_reason_phrase_and_headers_are_scrubbed(injector: CredentialInjector) -> None:
    flow = await injected_flow(injector)
    headers = (
        (b"X-Echo", INPROC_TOKEN),
        (b"X-Raw", b"k=" + INPROC_SECRET.encode()),
        (b"X-" + INPROC_SECRET.encode(), b"name"),
        (b"X-Kept", b"plain"),
    )
    response = upstream_answer(flow, b"ok", headers, reason=b"OK " + INPROC_TOKEN)
    await injector.responseheaders(flow)
    assert response.data.reason == b"OK [REDACTED]"
    assert response.headers.fields[:3] == (
        (b"X-Echo", b"[REDACTED]"),
        (b"X-Raw", b"k=[REDACTED]"),
        (b"X-Kept", b"plain"),
    )


async def test_many_headers_are_scrubbed_in_linear_time(injector: CredentialInjector) -> None:
    """Headers.keys() is quadratic in mitmproxy 12 (10,000 headers: ~13 s); fields are not."""
    flow = await injected_flow(injector)
    many = tuple((b"X-H%d" % i, b"v " + INPROC_TOKEN) for i in range(20_000))
    response = upstream_answer(flow, b"ok", many)
    started = time.monotonic()
    await injector.responseheaders(flow)
    assert time.monotonic() - started < 5
    assert response.headers.fields[0] == (b"X-H0", b"v [REDACTED]")
    assert INPROC_TOKEN not in bytes(response.headers)


async def test_streamed_gzip_is_reframed_decoded_and_scrubbed(
    injector: CredentialInjector,
) -> None:
    flow = await injected_flow(injector)
    plain = b"data: " + INPROC_TOKEN + b"\n\n" + b"x" * 5000 + INPROC_SECRET.encode()
    compressed = gzip.compress(plain)
    response = upstream_answer(flow, compressed, ((b"Content-Encoding", b"gzip"),), stream=True)
    await injector.responseheaders(flow)
    names = [name.lower() for name, _ in response.headers.fields]
    assert b"content-length" not in names and b"content-encoding" not in names
    assert response.headers["transfer-encoding"] == "chunked"  # mitmproxy chunks only then
    out = stream_through(response, gzip_pieces(plain, 7))
    assert out == plain.replace(INPROC_TOKEN, b"[REDACTED]").replace(
        INPROC_SECRET.encode(), b"[REDACTED]"
    )
    await injector.response(flow)  # nothing left to do for a streamed body
    assert state_of(flow).scrubbing is None


@pytest.mark.parametrize(
    ("response_version", "request_version", "chunked"),
    [
        (b"HTTP/1.1", "HTTP/1.1", True),
        (b"HTTP/1.1", "HTTP/2.0", True),  # h2 strips it and ends the stream
        (b"HTTP/1.1", "HTTP/1.0", False),  # a 1.0 agent: delimited by closing
        (b"HTTP/1.0", "HTTP/1.1", False),
        (b"HTTP/2.0", "HTTP/1.1", False),  # mitmproxy closes after a length-less h2 answer
        (b"HTTP/2.0", "HTTP/2.0", False),
    ],
)
async def test_streamed_framing_per_protocol(
    injector: CredentialInjector,
    response_version: bytes,
    request_version: str,
    chunked: bool,
) -> None:
    flow = await injected_flow(injector, http_version=request_version.encode())
    response = upstream_answer(
        flow,
        b"data: x\n\n",
        ((b"content-type", b"text/event-stream"),),
        stream=True,
        version=response_version,
    )
    await injector.responseheaders(flow)
    assert "content-length" not in response.headers
    assert ("transfer-encoding" in response.headers) is chunked


@pytest.mark.parametrize(
    ("upstream_te", "request_version", "expected"),
    [
        (b"chunked", "HTTP/1.1", [b"chunked"]),
        (b"identity", "HTTP/1.1", [b"chunked"]),  # read-until-close upstream, chunked agent
        (b"chunked", "HTTP/1.0", []),  # no chunks for an HTTP/1.0 agent
    ],
)
async def test_streamed_transfer_encoding_is_set_once(
    injector: CredentialInjector, upstream_te: bytes, request_version: str, expected: list[bytes]
) -> None:
    flow = await injected_flow(injector, http_version=request_version.encode())
    response = upstream_answer(
        flow, b"data: x\n\n", ((b"Transfer-Encoding", upstream_te),), stream=True
    )
    await injector.responseheaders(flow)
    values = [v for n, v in response.headers.fields if n.lower() == b"transfer-encoding"]
    assert values == expected


async def test_streamed_head_response_is_left_framed(injector: CredentialInjector) -> None:
    flow = await injected_flow(injector, method=b"HEAD")
    response = upstream_answer(flow, b"", ((b"content-type", b"text/event-stream"),), stream=True)
    response.headers["content-length"] = "5000000"
    await injector.responseheaders(flow)
    assert response.stream is False and response.headers["content-length"] == "5000000"


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", brotli.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
    ],
)
async def test_buffered_compressed_body_is_decoded_and_scrubbed(
    injector: CredentialInjector, coding: str, encode: Any
) -> None:
    flow = await injected_flow(injector)
    plain = b'{"echo": "' + INPROC_TOKEN + b'"}'
    response = upstream_answer(flow, encode(plain), ((b"Content-Encoding", coding.encode()),))
    await injector.responseheaders(flow)
    await injector.response(flow)
    assert response.raw_content == b'{"echo": "[REDACTED]"}'
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(response.raw_content))


@pytest.mark.parametrize(
    ("coding", "body", "stream", "reason_code"),
    [
        (b"gzip, br", brotli.compress(gzip.compress(INPROC_TOKEN)), False, "unsupported"),
        (b"gzip, gzip", gzip.compress(gzip.compress(INPROC_TOKEN)), True, "unsupported"),
        (b"compress", INPROC_TOKEN, False, "unsupported"),
        (b"base64", base64.b64encode(INPROC_TOKEN), True, "unsupported"),
        (b"gzip", b"\x1f\x8b\x08\x00 not gzip " + INPROC_TOKEN, False, "invalid"),
    ],
)
async def test_undecodable_body_becomes_a_502(
    injector: CredentialInjector, coding: bytes, body: bytes, stream: bool, reason_code: str
) -> None:
    flow = await injected_flow(injector)
    upstream_answer(flow, body, ((b"Content-Encoding", coding),), stream=stream)
    await injector.responseheaders(flow)
    assert flow.response is not None and flow.response.stream is False  # buffered, not sent
    await injector.response(flow)
    answer = flow.response
    assert answer.status_code == 502
    payload = json.loads(answer.content or b"")
    assert payload["reason_code"] == f"upstream_encoding_{reason_code}"
    assert payload["intentId"] == "int_inproc" and payload["destination"] == "d.send"
    assert INPROC_SECRET.encode() not in answer.content
    assert sum(injector.runtime.usecases.metrics.upstream_errors.values.values()) == 1


async def test_transfer_coding_other_than_chunked_becomes_a_502(
    injector: CredentialInjector,
) -> None:
    flow = await injected_flow(injector)
    upstream_answer(flow, gzip.compress(INPROC_TOKEN), ((b"Transfer-Encoding", b"gzip, chunked"),))
    await injector.responseheaders(flow)
    await injector.response(flow)
    assert flow.response is not None and flow.response.status_code == 502
    assert json.loads(flow.response.content or b"")["reason_code"] == (
        "upstream_encoding_unsupported"
    )


async def test_stream_that_stops_decoding_kills_the_flow(injector: CredentialInjector) -> None:
    flow = await injected_flow(injector)
    response = upstream_answer(flow, b"", ((b"Content-Encoding", b"gzip"),), stream=True)
    response.headers["content-type"] = "text/event-stream"
    await injector.responseheaders(flow)
    assert callable(response.stream)
    good = zlib.compressobj(wbits=31)
    first = good.compress(b"data: " + b"y" * 100 + b"\n\n") + good.flush(zlib.Z_SYNC_FLUSH)
    assert response.stream(first)  # decoded and passed on (minus the hold-back)
    assert response.stream(b"\xff\xff garbage " + INPROC_TOKEN) == []
    assert flow.error is not None and flow.error.msg == flow.error.KILLED_MESSAGE
    assert response.stream(b"more") == [] and response.stream(b"") == []


async def test_trailers_are_scrubbed(injector: CredentialInjector) -> None:
    flow = await injected_flow(injector)
    response = upstream_answer(flow, b"ok")
    await injector.responseheaders(flow)
    response.trailers = http.Headers(((b"x-checksum", INPROC_TOKEN),))
    await injector.response(flow)
    assert response.trailers.fields == ((b"x-checksum", b"[REDACTED]"),)
