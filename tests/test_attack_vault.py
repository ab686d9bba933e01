"""Attack: make the upstream hand the injected credential back to the agent.

The real gate (`gate-proxy serve`) injects a secret from the `env` provider into requests to
a vault-managed destination. A hostile (or merely careless) upstream echoes it back in every
place the scrubber might miss: a gzip event stream, a gzip body big enough to be streamed,
deflate / br / zstd bodies, the reason phrase, header names and values, and streamed
identity bodies whose Content-Length no longer fits once scrubbed. The agent must never
receive the secret's bytes, must never wait on a length that lies (every request has a
bounded timeout), and the upstream must have been asked for `Accept-Encoding: identity`.
Echoes in other encodings (base64, hex, ...) are out of scope (docs/vault.md).
"""

import gzip
import json
import random
import re
import socketserver
import ssl
import subprocess
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import zstandard
from gate_process import GateProcess, running_gate
from upstreams import RecordedRequest, Reply, Upstream, echo_json

SECRET = "sk_live_attackEcho0123456789abcdefXYZ"
TOKEN = f"Bearer {SECRET}"
REDACTED = b"[REDACTED]"
AGENT_ACCEPT = "gzip, deflate, br, zstd"
TIMEOUT = httpx.Timeout(10.0)  # a client left waiting on a wrong length fails here, not hangs
POLICIES = {"auto": "id: auto\nrequire_approval: never\n"}
BIG = 1536 * 1024  # over forwarding's 1 MiB: such bodies are streamed, not buffered


def secret_of(req: RecordedRequest) -> bytes:
    """What the upstream really received (the gate injected it): echo that, not a guess."""
    return (req.header("Authorization") or "").removeprefix("Bearer ").encode()


def sse_events(secret: bytes) -> list[bytes]:
    return [
        b"data: hi\n\n",  # shorter than the scrubber's hold-back window
        b"data: Bearer " + secret + b"\n\n",
        b"data: split " + secret[:9],  # the secret spans two events (and two chunks)
        secret[9:] + b" end\n\n",
        b"data: done\n\n",
    ]


SSE_SCRUBBED = b"data: hi\n\ndata: [REDACTED]\n\ndata: split [REDACTED] end\n\ndata: done\n\n"


def gzip_stream(pieces: list[bytes]) -> list[bytes]:
    """One gzip stream, flushed after each piece, as a compressing SSE server sends it."""
    compressor = zlib.compressobj(wbits=31)
    chunks = [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
    return [*chunks, compressor.flush()]


def big_body(secret: bytes) -> bytes:
    """Incompressible bytes (so gzip stays over 1 MiB) with the secret at chunk edges."""
    body = bytearray(random.Random(7).randbytes(BIG))
    for offset in (0, 65536 - 5, 700_001, BIG - len(secret)):
        body[offset : offset + len(secret)] = secret
    return bytes(body)


def scrubbed(body: bytes) -> bytes:
    return body.replace(SECRET.encode(), REDACTED)


# --------------------------------------------------------------------------- the upstream


def sse_gzip(req: RecordedRequest) -> Reply:
    headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
    chunks = gzip_stream(sse_events(secret_of(req)))
    return Reply(200, headers, chunks=chunks, chunk_interval=0.02)


def big_gzip(req: RecordedRequest) -> Reply:
    body = gzip.compress(big_body(secret_of(req)), compresslevel=1)
    assert len(body) > 1024 * 1024
    return Reply(
        200, {"content-type": "application/octet-stream", "content-encoding": "gzip"}, body
    )


def encoded_echo(coding: str, encode: Any) -> Any:
    def handler(req: RecordedRequest) -> Reply:
        echo = echo_json(req).body
        assert SECRET.encode() in echo
        return Reply(
            200, {"content-type": "application/json", "content-encoding": coding}, encode(echo)
        )

    return handler


def reason_echo(req: RecordedRequest) -> Reply:
    return Reply(
        200, {"content-type": "text/plain"}, b"ok", reason=f"OK {req.header('Authorization')}"
    )


def header_echo(req: RecordedRequest) -> Reply:
    secret = secret_of(req).decode()
    headers = {
        "content-type": "text/plain",
        "x-echo": f"Bearer {secret}",
        "x-echo-raw": f"key={secret}; more",
        f"x-key-{secret}": "in the name",
        "x-harmless": "kept",
    }
    return Reply(200, headers, b"ok")


def sse_with_length(req: RecordedRequest) -> Reply:
    # text/event-stream is streamed; its Content-Length is too long once scrubbed.
    body = b"".join(sse_events(secret_of(req)))
    return Reply(200, {"content-type": "text/event-stream"}, body)


def big_plain(req: RecordedRequest) -> Reply:
    return Reply(200, {"content-type": "application/octet-stream"}, big_body(secret_of(req)))


def stacked(req: RecordedRequest) -> Reply:
    body = brotli.compress(gzip.compress(echo_json(req).body))
    return Reply(200, {"content-type": "application/json", "content-encoding": "gzip, br"}, body)


def unknown_coding(req: RecordedRequest) -> Reply:
    headers = {"content-type": "application/json", "content-encoding": "compress"}
    return Reply(200, headers, echo_json(req).body)


def stacked_sse(req: RecordedRequest) -> Reply:
    headers = {"content-type": "text/event-stream", "content-encoding": "gzip, gzip"}
    return Reply(200, headers, chunks=gzip_stream(sse_events(secret_of(req))))


def corrupt_gzip(req: RecordedRequest) -> Reply:
    body = b"\x1f\x8b\x08\x00garbage " + secret_of(req)  # a gzip header, then not gzip
    return Reply(200, {"content-type": "application/json", "content-encoding": "gzip"}, body)


def corrupt_sse(req: RecordedRequest) -> Reply:
    good = gzip_stream([b"data: hi\n\n"])[0]
    chunks = [good, b"\xff\xfe not deflate " + secret_of(req), b"data: more\n\n"]
    headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
    return Reply(200, headers, chunks=chunks, chunk_interval=0.02)


ROUTES = {
    "/echo/sse-gzip": sse_gzip,
    "/echo/big-gzip": big_gzip,
    "/echo/deflate": encoded_echo("deflate", zlib.compress),
    "/echo/br": encoded_echo("br", brotli.compress),
    "/echo/zstd": encoded_echo("zstd", zstandard.ZstdCompressor().compress),
    "/echo/x-gzip": encoded_echo("x-gzip", gzip.compress),
    "/echo/reason": reason_echo,
    "/echo/header": header_echo,
    "/echo/sse-length": sse_with_length,
    "/echo/big-plain": big_plain,
    "/echo/stacked": stacked,
    "/echo/unknown": unknown_coding,
    "/echo/stacked-sse": stacked_sse,
    "/echo/corrupt": corrupt_gzip,
    "/echo/corrupt-sse": corrupt_sse,
    "/echo/plain": echo_json,
}


class RawUpstream(socketserver.ThreadingTCPServer):
    """For the one answer tests/upstreams.py cannot give: a single exact
    `Transfer-Encoding: gzip, chunked` header (it adds its own `chunked` field, and mitmproxy
    rejects two). Reads one request, echoes its Authorization gzip-compressed as a transfer
    coding, closes. Records the request heads it saw."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _RawHandler)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> "RawUpstream":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class _RawHandler(socketserver.StreamRequestHandler):
    server: RawUpstream

    def handle(self) -> None:
        self.request.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            line = self.rfile.readline(65537)
            if not line:
                return
            head += line
        self.server.heads.append(head)
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        self.rfile.read(int(length.group(1)) if length else 0)
        auth = re.search(rb"(?im)^authorization:\s*(.*?)\r$", head)
        body = gzip.compress(b'{"echo": "' + (auth.group(1) if auth else b"") + b'"}')
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n"
            % (len(body), body)
        )


# --------------------------------------------------------------------------- the gate


@dataclass
class Env:
    gate: GateProcess
    plain: Upstream
    tls: Upstream
    raw: RawUpstream
    agent: dict[str, Any]

    def client(self, **kwargs: Any) -> httpx.Client:
        proxy = (
            f"http://{self.agent['agentId']}:{self.agent['apiKey']}"
            f"@127.0.0.1:{self.gate.proxy_port}"
        )
        ca = ssl.create_default_context(cafile=self.gate.certs_dir / "mitmproxy-ca-cert.pem")
        return httpx.Client(proxy=proxy, verify=ca, timeout=TIMEOUT, trust_env=False, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("attack-vault")
    with (
        Upstream(routes=ROUTES) as plain,
        Upstream(tls=True, routes=ROUTES) as tls,
        RawUpstream() as raw,
    ):
        config = {
            "destinations.yaml": f"""
"127.0.0.1:{plain.port}":
  paths:
    /echo: {{method: POST, destination: echo.send, policy: auto}}
"localhost:{tls.port}":
  paths:
    /echo: {{method: POST, destination: echo.send, policy: auto}}
"127.0.0.1:{raw.port}":
  paths:
    /echo: {{method: POST, destination: echo.send, policy: auto}}
""",
            "vault.yaml": """
provider: env
credentials:
  echo.send: {ref: GATE_ATTACK_SECRET, inject: header, template: "Bearer {secret}"}
""",
            "gate.yaml": f"upstream_ca_bundle: {tls.ca_cert_path}\n",
        }
        with running_gate(
            root, policies=POLICIES, config=config, env={"GATE_ATTACK_SECRET": SECRET}
        ) as gate:
            yield Env(gate, plain, tls, raw, gate.register("echo-attacker"))


@dataclass
class Received:
    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    raw: bytes  # the body as it came over the wire, before any content decoding
    http_version: str

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.encode():
                return value.decode("latin-1")
        return None

    def assert_clean(self) -> None:
        """No trace of the secret anywhere the agent can read, and nothing left to decode
        (a compressed body would hide the secret from this very check)."""
        for secret in (SECRET.encode(), TOKEN.encode()):
            assert secret not in self.raw
            assert secret.decode() not in self.reason
            for name, value in self.headers:
                assert secret not in name and secret not in value, name
        coding = self.header("content-encoding")
        assert coding in (None, "identity"), coding


def fetch(client: httpx.Client, url: str) -> Received:
    with client.stream(
        "POST", url, json={"m": "echo"}, headers={"Accept-Encoding": AGENT_ACCEPT}
    ) as response:
        raw = b"".join(response.iter_raw())
    return Received(
        response.status_code,
        response.reason_phrase,
        list(response.headers.raw),
        raw,
        response.http_version,
    )


def last_request(upstream: Upstream, path: str) -> RecordedRequest:
    return [r for r in upstream.requests if r.path == path][-1]


def assert_asked_for_identity(upstream: Upstream, path: str) -> None:
    request = last_request(upstream, path)
    assert request.header("Authorization") == TOKEN  # injected (and so worth echoing)
    assert request.header_all("Accept-Encoding") == ["identity"]  # not the agent's list


# --------------------------------------------------------------------------- the attacks


def test_the_upstream_is_asked_for_identity(env: Env) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}/echo/plain")
    assert received.status == 200
    assert_asked_for_identity(env.plain, "/echo/plain")
    received.assert_clean()
    assert json.loads(received.raw)["headers"]  # the echo itself still arrives


def test_gzip_event_stream_is_decoded_then_scrubbed(env: Env) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}/echo/sse-gzip")
        again = fetch(client, f"{env.plain.url}/echo/plain")  # same connection: framing held
    received.assert_clean()
    assert received.status == 200
    assert received.raw == SSE_SCRUBBED  # every event, in full, none of the secret
    assert_asked_for_identity(env.plain, "/echo/sse-gzip")  # it compressed all the same
    assert received.header("transfer-encoding") == "chunked"
    assert received.header("content-length") is None
    assert again.status == 200


def test_gzip_body_over_one_mib_is_streamed_decoded_and_scrubbed(env: Env) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}/echo/big-gzip")
    received.assert_clean()
    assert received.status == 200
    assert received.raw == scrubbed(big_body(SECRET.encode()))
    assert received.header("content-length") is None  # streamed: the length was unknowable
    assert_asked_for_identity(env.plain, "/echo/big-gzip")


@pytest.mark.parametrize("path", ["/echo/deflate", "/echo/br", "/echo/zstd", "/echo/x-gzip"])
def test_compressed_buffered_bodies_are_decoded_then_scrubbed(env: Env, path: str) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}{path}")
    received.assert_clean()
    assert received.status == 200
    echo = json.loads(received.raw)  # plain JSON now: decoded, not passed through
    assert echo["path"] == path
    assert ["Authorization", "[REDACTED]"] in echo["headers"]
    assert received.header("content-length") == str(len(received.raw))
    assert_asked_for_identity(env.plain, path)


def test_reason_phrase_is_scrubbed(env: Env) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}/echo/reason")
    received.assert_clean()
    assert received.reason == "OK [REDACTED]"
    assert received.raw == b"ok"


def test_header_names_and_values_are_scrubbed(env: Env) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}/echo/header")
    received.assert_clean()
    assert received.header("x-echo") == "[REDACTED]"
    assert received.header("x-echo-raw") == "key=[REDACTED]; more"
    assert received.header("x-harmless") == "kept"
    assert not [n for n, _ in received.headers if n.lower().startswith(b"x-key-")]


@pytest.mark.parametrize("path", ["/echo/sse-length", "/echo/big-plain"])
def test_streamed_body_with_content_length_is_reframed(env: Env, path: str) -> None:
    """The scrubbed body is shorter than the upstream's Content-Length: keeping that header
    would leave the agent waiting for bytes that never come (here: a ReadTimeout)."""
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}{path}")
        again = fetch(client, f"{env.plain.url}/echo/plain")
    received.assert_clean()
    expected = SSE_SCRUBBED if path == "/echo/sse-length" else scrubbed(big_body(SECRET.encode()))
    assert received.raw == expected
    assert received.header("content-length") is None
    assert received.header("transfer-encoding") == "chunked"
    assert again.status == 200


def curl_http2(env: Env, url: str, tmp_path: Path) -> Received:
    """curl, because it prefers h2 in ALPN (httpx offers http/1.1 first, and mitmproxy
    honours the client's order). No --compressed: the body is kept as it came."""
    head, body = tmp_path / "head", tmp_path / "body"
    proxy = f"http://{env.agent['agentId']}:{env.agent['apiKey']}@127.0.0.1:{env.gate.proxy_port}"
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--http2",
            "--max-time",
            "10",
            "-x",
            proxy,
            "--cacert",
            str(env.gate.certs_dir / "mitmproxy-ca-cert.pem"),
            "-H",
            f"Accept-Encoding: {AGENT_ACCEPT}",
            "-d",
            "m=echo",
            "-D",
            str(head),
            "-o",
            str(body),
            "-w",
            "%{http_version}",
            url,
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr  # 28 would be curl's timeout: a hang
    status_line, *lines = head.read_bytes().split(b"\r\n")
    headers = [tuple(line.split(b": ", 1)) for line in lines if b": " in line]
    return Received(
        int(status_line.split()[1]),
        "",  # HTTP/2 has no reason phrase
        [(name, value) for name, value in headers],
        body.read_bytes(),
        f"HTTP/{result.stdout.decode()}",
    )


@pytest.mark.parametrize("path", ["/echo/sse-length", "/echo/sse-gzip"])
def test_http2_agent_gets_a_well_framed_scrubbed_stream(
    env: Env, path: str, tmp_path: Path
) -> None:
    received = curl_http2(env, f"{env.tls.url_localhost}{path}", tmp_path)
    received.assert_clean()
    assert received.http_version == "HTTP/2"
    assert received.status == 200
    assert received.raw == SSE_SCRUBBED
    assert received.header("content-length") is None


@pytest.mark.parametrize(
    ("path", "reason_code"),
    [
        ("/echo/stacked", "upstream_encoding_unsupported"),
        ("/echo/unknown", "upstream_encoding_unsupported"),
        ("/echo/stacked-sse", "upstream_encoding_unsupported"),
        ("/echo/corrupt", "upstream_encoding_invalid"),
    ],
)
def test_undecodable_answer_is_refused_not_passed_on(env: Env, path: str, reason_code: str) -> None:
    with env.client() as client:
        received = fetch(client, f"{env.plain.url}{path}")
    received.assert_clean()
    assert received.status == 502
    body = json.loads(received.raw)
    assert body["reason_code"] == reason_code
    assert body["destination"] == "echo.send"
    assert received.header("x-gate-decision") == "error"
    assert last_request(env.plain, path).header("Authorization") == TOKEN  # it did go out


def test_transfer_coding_is_refused_not_passed_on(env: Env) -> None:
    """mitmproxy undoes only the chunked part of `gzip, chunked`: passed on, the agent
    would get gzip bytes (and could gunzip the secret out of them)."""
    with env.client() as client:
        received = fetch(client, f"http://127.0.0.1:{env.raw.port}/echo/te")
    received.assert_clean()
    assert received.status == 502
    assert json.loads(received.raw)["reason_code"] == "upstream_encoding_unsupported"
    (head,) = env.raw.heads
    assert TOKEN.encode() in head  # it was injected, and so echoed
    assert re.search(rb"(?im)^accept-encoding: identity\r$", head)


def test_stream_that_stops_decoding_is_cut_off(env: Env) -> None:
    """Mid-stream garbage: what was decoded went on, the rest never does, and the agent
    sees a broken response (not a complete-looking one) within its timeout."""
    with env.client() as client:
        request = client.build_request("POST", f"{env.plain.url}/echo/corrupt-sse", json={"m": "x"})
        response = client.send(request, stream=True)
        raw = b""
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_raw():
                    raw += chunk
        finally:
            response.close()
    assert response.status_code == 200
    assert SECRET.encode() not in raw
    assert b"more" not in raw and b"not deflate" not in raw
