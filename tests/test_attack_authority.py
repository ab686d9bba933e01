"""Decided = delivered, for the target's name (issue 9, item 1).

An agent names its target in the CONNECT authority, the TLS SNI, an absolute-form request
line or HTTP/2 :authority, the Host header and forwarding headers. The gate decides on one
of them; if it let the others differ, an upstream (or an ingress in front of several
names) that routes on another one would receive a write the gate never decided. Each test
opens an allowed tunnel or URL and names a blocked host elsewhere, then checks what the
recording upstream received: nothing.

Two names of one address stand in for "domain fronting": ``localhost`` (allowed) and
``127.0.0.1`` (blocked), both served by the same upstream, whose certificate also covers
``payments.example``.
"""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from rawhttp import proxy_auth, raw_proxy, read_response, tunnel
from upstreams import Upstream, issue_server_cert, make_test_ca

POLICIES = {"auto": "id: auto\nrequire_approval: never\n"}


def registry(plain: int, tls: int) -> str:
    allowed = "    /v1/contacts: {method: POST, destination: crm.contacts, policy: auto}\n"
    return (
        "default:\n  action: block\n"
        f'"localhost:{tls}":\n  paths:\n{allowed}'
        f'"localhost:{plain}":\n  paths:\n{allowed}'
        f'"127.0.0.1:{tls}":\n  block: true\n'
        f'"127.0.0.1:{plain}":\n  block: true\n'
        "routes:\n"
        f"  - prefix: /crm/\n    upstream: http://localhost:{plain}/\n"
    )


class Env:
    def __init__(self, gate: GateProcess, plain: Upstream, tls: Upstream) -> None:
        self.gate, self.plain, self.tls = gate, plain, tls
        self.agent = gate.register(f"fronting-{time.monotonic_ns()}")

    @property
    def ca(self) -> Path:
        return self.gate.certs_dir / "mitmproxy-ca-cert.pem"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("authority")
    ca = make_test_ca(root / "upstream-ca")
    cert = issue_server_cert(ca, names=("localhost", "payments.example"), ips=("127.0.0.1",))
    with Upstream() as plain, Upstream(tls=True, cert=cert, ca=ca) as tls:
        config = {
            "destinations.yaml": registry(plain.port, tls.port),
            "gate.yaml": f"upstream_ca_bundle: {ca[0]}\n",
        }
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, plain, tls)


def marker() -> str:
    return f"m-{time.monotonic_ns()}"


def received(upstream: Upstream, mark: str) -> list[Any]:
    return [r for r in upstream.requests if mark.encode() in r.body or mark in r.path]


def post_in_tunnel(
    env: Env, *, sni: str | None, head: str, mark: str, connect_host: str = "localhost"
) -> int:
    body = f'{{"m": "{mark}"}}'.encode()
    with tunnel(
        env.gate.proxy_port, env.agent, connect_host, env.tls.port, sni=sni, ca=env.ca
    ) as tls:
        tls.sendall(
            head.encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return read_response(tls).status


def test_sni_naming_another_host_is_refused(env: Env) -> None:
    mark = marker()
    status = post_in_tunnel(
        env,
        sni="payments.example",
        head=f"POST /v1/contacts HTTP/1.1\r\nHost: localhost:{env.tls.port}\r\n",
        mark=mark,
    )
    assert status == 421
    assert "payments.example" not in env.tls.snis
    assert not received(env.tls, mark)


def test_host_header_naming_a_blocked_host_is_refused(env: Env) -> None:
    mark = marker()
    status = post_in_tunnel(
        env,
        sni="localhost",
        head=f"POST /v1/contacts HTTP/1.1\r\nHost: 127.0.0.1:{env.tls.port}\r\n",
        mark=mark,
    )
    assert status == 421
    assert not received(env.tls, mark)


def test_absolute_form_inside_a_tunnel_naming_another_host_is_refused(env: Env) -> None:
    mark = marker()
    status = post_in_tunnel(
        env,
        sni="localhost",
        head=f"POST https://127.0.0.1:{env.tls.port}/v1/contacts HTTP/1.1\r\n"
        f"Host: localhost:{env.tls.port}\r\n",
        mark=mark,
    )
    assert status == 421
    assert not received(env.tls, mark)


def curl_h2(env: Env, body: str, *headers: str) -> list[str]:
    """curl over HTTP/2 through the gate; a -H Host: becomes the request's :authority."""
    proxy = f"http://{env.agent['agentId']}:{env.agent['apiKey']}@127.0.0.1:{env.gate.proxy_port}"
    command = ["curl", "-s", "--http2", "-x", proxy, "--cacert", str(env.ca)]
    for header in headers:
        command += ["-H", header]
    command += ["-H", "Content-Type: application/json", "-d", body]
    command += [
        f"https://localhost:{env.tls.port}/v1/contacts",
        "-w",
        "\n%{http_version} %{http_code}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return result.stdout.rsplit("\n", 1)[-1].split()


def test_http2_authority_naming_another_host_is_refused(env: Env) -> None:
    mark = marker()
    refused = curl_h2(env, f'{{"m": "{mark}"}}', f"Host: 127.0.0.1:{env.tls.port}")
    assert refused == ["2", "421"]
    assert not received(env.tls, mark)
    assert curl_h2(env, f'{{"m": "{mark}ok"}}') == ["2", "200"]
    (delivered,) = received(env.tls, mark + "ok")
    assert delivered.header("Host") == f"localhost:{env.tls.port}"


def test_plain_absolute_form_with_another_host_header_is_refused(env: Env) -> None:
    mark = marker()
    body = f'{{"m": "{mark}"}}'.encode()
    with raw_proxy(env.gate.proxy_port) as sock:
        sock.sendall(
            f"POST http://localhost:{env.plain.port}/v1/contacts HTTP/1.1\r\n".encode()
            + f"Host: 127.0.0.1:{env.plain.port}\r\n".encode()
            + proxy_auth(env.agent)
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = read_response(sock)
    assert answer.status == 421
    assert b"authority_mismatch" in answer.body
    assert not received(env.plain, mark)


@pytest.mark.parametrize(
    "header",
    [
        "X-Forwarded-Host: payments.example",
        "X-Host: 127.0.0.1",
        "X-Original-Host: payments.example",
        'Forwarded: for=10.0.0.1;host="payments.example"',
    ],
)
def test_forwarding_headers_naming_another_host_are_refused(env: Env, header: str) -> None:
    mark = marker()
    status = post_in_tunnel(
        env,
        sni="localhost",
        head=f"POST /v1/contacts HTTP/1.1\r\nHost: localhost:{env.tls.port}\r\n{header}\r\n",
        mark=mark,
    )
    assert status == 421
    assert not received(env.tls, mark)


def test_two_host_headers_are_refused(env: Env) -> None:
    mark = marker()
    status = post_in_tunnel(
        env,
        sni="localhost",
        head=f"POST /v1/contacts HTTP/1.1\r\nHost: localhost:{env.tls.port}\r\n"
        f"Host: 127.0.0.1:{env.tls.port}\r\n",
        mark=mark,
    )
    assert status == 400
    assert not received(env.tls, mark)


def test_agreeing_names_in_any_spelling_are_forwarded_canonically(env: Env) -> None:
    before = len(env.tls.snis)
    mark = marker()
    status = post_in_tunnel(
        env,
        sni="LOCALHOST",
        head=f"POST /v1/contacts HTTP/1.1\r\nHost: LocalHost.:{env.tls.port}\r\n"
        f"X-Forwarded-Host: localhost\r\n",
        mark=mark,
    )
    assert status == 200
    (delivered,) = received(env.tls, mark)
    assert delivered.header_all("Host") == [f"localhost:{env.tls.port}"]
    assert delivered.path == "/v1/contacts"
    # The upstream TLS name is the decided host, whatever the client spelled.
    assert env.tls.snis[before:] == ["localhost"]


def test_without_client_sni_the_upstream_sni_is_the_decided_host(env: Env) -> None:
    before = len(env.tls.snis)
    mark = marker()
    status = post_in_tunnel(
        env,
        sni=None,
        head=f"POST /v1/contacts HTTP/1.1\r\nHost: localhost:{env.tls.port}\r\n",
        mark=mark,
    )
    assert status == 200
    assert received(env.tls, mark)
    assert env.tls.snis[before:] == ["localhost"]


def test_reverse_route_refuses_absolute_form_and_foreign_forwarding_host(env: Env) -> None:
    mark = marker()
    body = f'{{"m": "{mark}"}}'.encode()
    answers = []
    for line, extra in (
        (f"POST http://127.0.0.1:{env.plain.port}/crm/v1/contacts HTTP/1.1", ""),
        ("POST /crm/v1/contacts HTTP/1.1", "X-Forwarded-Host: payments.example\r\n"),
    ):
        with raw_proxy(env.gate.reverse_port) as sock:
            sock.sendall(
                f"{line}\r\nHost: 127.0.0.1:{env.gate.reverse_port}\r\n{extra}".encode()
                + f"X-Gate-Key: {env.agent['apiKey']}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            answers.append(read_response(sock).status)
    assert answers == [400, 421]
    assert not received(env.plain, mark)
    # The same route without the tricks is forwarded, with Host naming the route target.
    with httpx.Client(timeout=10) as client:
        ok = client.post(
            f"http://127.0.0.1:{env.gate.reverse_port}/crm/v1/contacts",
            json={"m": mark + "ok"},
            headers={"X-Gate-Key": env.agent["apiKey"]},
        )
    assert ok.status_code == 200, ok.text
    (delivered,) = received(env.plain, mark + "ok")
    assert delivered.header("Host") == f"localhost:{env.plain.port}"
