"""Raw HTTP/1.1 through the gate's forward proxy, for requests no well-behaved client sends.

    with raw_proxy(gate) as sock:                       # plain TCP to the proxy port
        send(sock, b"POST http://h/x HTTP/1.1\\r\\n...")
    with tunnel(gate, "localhost", 8443, sni="other", ca=...) as tls: ...

Every read is bounded by a socket timeout, so a test never hangs on a gate that stalls.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT = 10.0


def proxy_auth(agent: dict[str, Any]) -> bytes:
    token = base64.b64encode(f"{agent['agentId']}:{agent['apiKey']}".encode())
    return b"Proxy-Authorization: Basic " + token + b"\r\n"


@dataclass
class RawResponse:
    status: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None


def read_response(sock: socket.socket | ssl.SSLSocket, timeout: float = TIMEOUT) -> RawResponse:
    """One HTTP/1.1 response (Content-Length or close-delimited; no chunked needed here)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is not None:
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(status, head, body)


@contextlib.contextmanager
def raw_proxy(proxy_port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT)
    try:
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def tunnel(
    proxy_port: int,
    agent: dict[str, Any],
    host: str,
    port: int,
    *,
    sni: str | None,
    ca: Path,
    alpn: tuple[str, ...] = ("http/1.1",),
) -> Iterator[ssl.SSLSocket]:
    """CONNECT host:port, then TLS inside the tunnel with the given SNI (None: send none)."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT)
    try:
        sock.sendall(
            f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
            + proxy_auth(agent)
            + b"\r\n"
        )
        answer = read_response(sock)
        assert answer.status == 200, answer
        context = ssl.create_default_context(cafile=str(ca))
        context.check_hostname = False  # the test chooses odd SNIs; the gate's CA is trusted
        context.set_alpn_protocols(list(alpn))
        tls = context.wrap_socket(sock, server_hostname=sni)
        try:
            yield tls
        finally:
            tls.close()
    finally:
        sock.close()
