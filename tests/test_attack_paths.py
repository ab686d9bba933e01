"""Attacks on path block rules, end to end: real `gate-proxy serve`, raw sockets, and
recording upstreams on 127.0.0.1.

The registry blocks `/admin` on an upstream whose every other path is passed through, so
a spelling the block misses would be forwarded and show up at the upstream. A second
upstream only passes `GET /read` through: a case variant of it must not be forwarded.
Requests are written byte by byte (absolute-form request lines with Proxy-Authorization)
because client libraries normalise some of these spellings before sending them.
"""

import base64
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

MAX_RESPONSE = 1024 * 1024


def destinations(open_port: int, read_port: int, tls_port: int) -> str:
    return f"""
default:
  action: block
"127.0.0.1:{open_port}":
  passthrough: true
  paths:
    /admin:
      block: true
"localhost:{tls_port}":
  passthrough: true
  paths:
    /admin:
      block: true
"127.0.0.1:{read_port}":
  paths:
    /read:
      method: GET
      passthrough: true
"""


@dataclass
class Env:
    gate: GateProcess
    open: Upstream  # everything passes except /admin
    read: Upstream  # only GET /read passes
    tls: Upstream  # as `open`, over intercepted HTTPS


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("attack-paths")
    with Upstream() as open_up, Upstream() as read_up, Upstream(tls=True) as tls_up:
        config = {
            "destinations.yaml": destinations(open_up.port, read_up.port, tls_up.port),
            "gate.yaml": f"upstream_ca_bundle: {tls_up.ca_cert_path}\n",
        }
        with running_gate(root, config=config) as gate:
            yield Env(gate, open_up, read_up, tls_up)


@pytest.fixture(scope="module")
def agent(env: Env) -> dict[str, Any]:
    return env.gate.register(f"attacker-{time.monotonic_ns()}")


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def send_raw_tls(env: Env, agent: dict[str, Any], path: bytes) -> Answer:
    """CONNECT, TLS with the gate's CA, then one origin-form request with ``path`` as given."""
    credentials = base64.b64encode(f"{agent['agentId']}:{agent['apiKey']}".encode())
    authority = b"localhost:%d" % env.tls.port
    gate_ca = ssl.create_default_context(cafile=env.gate.certs_dir / "mitmproxy-ca-cert.pem")
    with socket.create_connection(("127.0.0.1", env.gate.proxy_port), timeout=30) as sock:
        sock.sendall(
            b"CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n"
            % (authority, authority, credentials)
        )
        connect = http.client.HTTPResponse(sock, method="CONNECT")
        connect.begin()
        assert connect.status == 200, connect.status
        with gate_ca.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(
                b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, authority)
            )
            response = http.client.HTTPResponse(tls)
            response.begin()
            return Answer(response.status, response.read(MAX_RESPONSE))


def send_raw(env: Env, agent: dict[str, Any], port: int, path: bytes) -> Answer:
    """One absolute-form request through the forward proxy, the path sent exactly as given."""
    credentials = base64.b64encode(f"{agent['agentId']}:{agent['apiKey']}".encode())
    request = (
        b"GET http://127.0.0.1:%d%s HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"Proxy-Authorization: Basic %s\r\n"
        b"Connection: close\r\n\r\n" % (port, path, port, credentials)
    )
    with socket.create_connection(("127.0.0.1", env.gate.proxy_port), timeout=30) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, response.read(MAX_RESPONSE))


def marked(path: bytes) -> tuple[bytes, str]:
    """``path`` with a unique ``?m=`` marker; the query reaches an upstream verbatim."""
    marker = f"m{time.monotonic_ns()}"
    return path + b"?m=" + marker.encode(), marker


def received(upstream: Upstream, marker: str) -> list[str]:
    return [r.path for r in upstream.requests if marker in r.path]


# Every spelling below names /admin (or a path below it) for some kind of upstream.
ADMIN_SPELLINGS = [
    b"/admin",
    b"/ADMIN",
    b"/Admin/users",
    b"/%61dmin",
    b"/%41DMIN",
    b"//admin",
    b"/x/../admin",
    b"/./admin",
    b"/x/%2e%2e/admin",
    b"/admin/",
    b"/admin;jsessionid=1",
    b"/ADMIN;x=1/users",
    b"/x/..;/admin",
    b"/admin.",
    b"/admin..",
    b"/admin%20",
    b"/admin+",
    b"/admin%2Fusers",
    b"/%2Fadmin",
    b"/%5Cadmin",
    b"/\\admin",
    b"/admin\\users",
    b"/admin%3Bx=1",
    b"/admin%3Fx",
    b"/ADM%C4%B0N",  # dotted capital I
    b"/adm%C4%B1n",  # dotless i
    b"/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E",  # fullwidth "admin"
    b"/%C3%A1dmin",
    b"/ad%C2%ADmin",  # soft hyphen
]

# Spellings upstreams disagree about: refused whatever the rules say.
REFUSED_SPELLINGS = [
    b"/x%2F..%2Fadmin",
    b"/x/..%2Fadmin",
    b"/x%5C..%5Cadmin",
    b"/x\\..\\admin",
    b"/x/..%20/admin",
    b"/x/..+/admin",
    b"/x/%EF%BC%8E%EF%BC%8E/admin",  # fullwidth ".."
    b"/admin%00",
    b"/admin%00.json",
    b"/admin%0d%0aX-Injected:%201",
    b"/%2561dmin",  # double encoding
    b"/x/%C0%AE%C0%AE/admin",  # overlong "."
    b"/%C0%AFadmin",  # overlong "/"
    b"/caf%E9",  # not UTF-8
]

# Raw non-ASCII bytes in an absolute-form request line: mitmproxy's parser answers 400
# before any hook. (Origin-form targets, inside TLS, reach the registry: see below.)
RAW_BYTE_SPELLINGS = [
    "/ADM\u0130N".encode(),  # dotted capital I, raw UTF-8
    "/\uff21\uff24\uff2d\uff29\uff2e".encode(),  # fullwidth "ADMIN"
    b"/x/\xc0\xae\xc0\xae/admin",  # overlong "."
    b"/adm\xe9n",  # Latin-1
]


@pytest.mark.parametrize("path", ADMIN_SPELLINGS, ids=lambda p: p.decode("latin-1"))
def test_block_holds_for_every_spelling(env: Env, agent: dict[str, Any], path: bytes) -> None:
    target, marker = marked(path)
    before = len(env.open.requests)
    answer = send_raw(env, agent, env.open.port, target)
    assert answer.status == 403, answer.body
    assert answer.json()["reason_code"] == "destination_blocked"
    assert received(env.open, marker) == []
    assert len(env.open.requests) == before


@pytest.mark.parametrize("path", REFUSED_SPELLINGS, ids=lambda p: p.decode("latin-1"))
def test_ambiguous_spellings_are_refused(env: Env, agent: dict[str, Any], path: bytes) -> None:
    target, marker = marked(path)
    before = len(env.open.requests)
    answer = send_raw(env, agent, env.open.port, target)
    assert answer.status == 403, answer.body
    assert answer.json()["reason_code"] == "invalid_path"
    assert received(env.open, marker) == []
    assert len(env.open.requests) == before


@pytest.mark.parametrize("path", RAW_BYTE_SPELLINGS, ids=lambda p: p.decode("latin-1"))
def test_raw_non_ascii_request_lines_are_refused(
    env: Env, agent: dict[str, Any], path: bytes
) -> None:
    target, marker = marked(path)
    before = len(env.open.requests)
    answer = send_raw(env, agent, env.open.port, target)
    assert answer.status == 400, answer.body
    assert "message" in answer.json()
    assert received(env.open, marker) == []
    assert len(env.open.requests) == before


@pytest.mark.parametrize(
    "path", [b"/adminx", b"/x/admin", b"/public/c++", b"/wiki/Washington,_D.C."]
)
def test_other_paths_of_the_same_upstream_are_forwarded(
    env: Env, agent: dict[str, Any], path: bytes
) -> None:
    """The control: without the block, the upstream receives what the attacks would send."""
    target, marker = marked(path)
    answer = send_raw(env, agent, env.open.port, target)
    assert answer.status == 200, answer.body
    assert received(env.open, marker) == [target.decode()]


def test_case_variant_of_a_passthrough_path_is_not_passed_through(
    env: Env, agent: dict[str, Any]
) -> None:
    target, marker = marked(b"/read")
    assert send_raw(env, agent, env.read.port, target).status == 200
    assert received(env.read, marker) == [target.decode()]
    before = len(env.read.requests)
    for path in (b"/READ", b"/Read/x", b"/read.", b"/%EF%BD%92ead", b"/read%2Fx"):
        target, marker = marked(path)
        answer = send_raw(env, agent, env.read.port, target)
        assert answer.status == 403, (path, answer.body)
        assert answer.json()["reason_code"] == "destination_unknown"
        assert received(env.read, marker) == []
    assert len(env.read.requests) == before


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/ADM\u0130N".encode(), "destination_blocked"),  # dotted capital I, raw UTF-8
        ("/\uff21\uff24\uff2d\uff29\uff2e".encode(), "destination_blocked"),  # fullwidth
        ("/a\u0301dmin".encode(), "destination_blocked"),  # combining accent
        (b"/\\admin", "destination_blocked"),
        (b"/ADMIN.", "destination_blocked"),
        (b"/x/\xc0\xae\xc0\xae/admin", "invalid_path"),  # overlong ".", raw bytes
        (b"/adm\xe9n", "invalid_path"),  # Latin-1 byte
        (b"/admin\x00", "invalid_path"),  # raw NUL
        (b"/x\\..\\admin", "invalid_path"),
    ],
    ids=lambda p: p.decode("latin-1") if isinstance(p, bytes) else p,
)
def test_raw_bytes_in_origin_form_inside_tls(
    env: Env, agent: dict[str, Any], path: bytes, reason: str
) -> None:
    target, marker = marked(path)
    before = len(env.tls.requests)
    answer = send_raw_tls(env, agent, target)
    assert answer.status == 403, answer.body
    assert answer.json()["reason_code"] == reason
    assert received(env.tls, marker) == []
    assert len(env.tls.requests) == before


def test_raw_origin_form_control_is_forwarded(env: Env, agent: dict[str, Any]) -> None:
    target, marker = marked("/caf\u00e9/x".encode())
    answer = send_raw_tls(env, agent, target)
    assert answer.status == 200, answer.body
    assert received(env.tls, marker) == ["/caf%C3%A9/x?m=" + marker]


def test_block_holds_inside_intercepted_tls(env: Env, agent: dict[str, Any]) -> None:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{env.gate.proxy_port}"
    gate_ca = ssl.create_default_context(cafile=env.gate.certs_dir / "mitmproxy-ca-cert.pem")
    before = len(env.tls.requests)
    with httpx.Client(proxy=proxy, verify=gate_ca, timeout=30) as client:
        for path in ("/ADMIN", "/%61dmin", "/admin.", "/ADM%C4%B0N", "/admin%2Fusers"):
            response = client.get(f"{env.tls.url_localhost}{path}")
            assert response.status_code == 403, (path, response.text)
            assert response.json()["reason_code"] == "destination_blocked"
        refused = client.get(f"{env.tls.url_localhost}/x/..%2Fadmin")
        assert refused.status_code == 403 and refused.json()["reason_code"] == "invalid_path"
        assert len(env.tls.requests) == before
        control = client.get(f"{env.tls.url_localhost}/adminx")
    assert control.status_code == 200
    assert len(env.tls.requests) == before + 1
