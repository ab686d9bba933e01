"""A small local stand-in for the HashiCorp Vault HTTP API (no Vault binary can be installed
here), implementing exactly the endpoints hvac calls for the gate:

* ``GET  /v1/{mount}/data/{path}``        KV v2 read
* ``POST /v1/auth/approle/login``         AppRole login (any approle mount path)
* ``GET  /v1/auth/token/lookup-self``     token TTL / renewability
* ``POST /v1/auth/token/renew-self``      token renewal

Tokens are checked from ``X-Vault-Token``; a missing, unknown, revoked or expired token gets
Vault's ``403 {"errors": ["permission denied"]}``. Every request is recorded in ``calls``.
The server binds 127.0.0.1 on a free port (port 0), optionally with TLS.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Call:
    method: str
    path: str
    token_ok: bool


@dataclass
class _Token:
    ttl: float  # 0 = never expires
    renewable: bool
    issued: float = field(default_factory=time.monotonic)
    revoked: bool = False

    def valid(self) -> bool:
        if self.revoked:
            return False
        return self.ttl == 0 or time.monotonic() - self.issued < self.ttl


class FakeVault:
    def __init__(
        self,
        *,
        role_id: str = "role-123",
        secret_id: str = "secret-456",
        token_ttl: float = 3600,
        renewable: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.role_id = role_id
        self.secret_id = secret_id
        self.token_ttl = token_ttl
        self.renewable = renewable
        self.tls = tls
        self.kv: dict[tuple[str, str], dict[str, Any]] = {}
        self.tokens: dict[str, _Token] = {}
        self.calls: list[Call] = []
        self.delay = 0.0  # seconds to stall KV reads (timeout tests)
        self._release = threading.Event()  # set on stop() so stalled handlers finish
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- setup helpers --

    def put(self, path: str, data: dict[str, Any], mount: str = "secret") -> None:
        self.kv[(mount, path.strip("/"))] = data

    def issue_token(self, ttl: float | None = None, renewable: bool | None = None) -> str:
        token = "hvs." + secrets.token_urlsafe(18)
        with self._lock:
            self.tokens[token] = _Token(
                ttl=self.token_ttl if ttl is None else ttl,
                renewable=self.renewable if renewable is None else renewable,
            )
        return token

    def revoke_all(self) -> None:
        with self._lock:
            for token in self.tokens.values():
                token.revoked = True

    def count(self, method: str, path: str) -> int:
        return sum(1 for c in self.calls if c.method == method and c.path == path)

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # -- lifecycle --

    def start(self) -> FakeVault:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._release.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling --

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        token_value = h.headers.get("X-Vault-Token")
        with self._lock:
            token = self.tokens.get(token_value or "")
            token_ok = token is not None and token.valid()
            self.calls.append(Call(method, path, token_ok))

        if method == "POST" and path.startswith("/v1/auth/") and path.endswith("/login"):
            if body.get("role_id") != self.role_id or body.get("secret_id") != self.secret_id:
                return self._send(h, 400, {"errors": ["invalid role or secret ID"]})
            new = self.issue_token()
            return self._send(
                h,
                200,
                {
                    "auth": {
                        "client_token": new,
                        "lease_duration": int(self.token_ttl),
                        "renewable": self.renewable,
                        "policies": ["default", "gate"],
                    }
                },
            )
        if not token_ok:
            return self._send(h, 403, {"errors": ["permission denied"]})
        assert token is not None and token_value is not None

        if method == "GET" and path == "/v1/auth/token/lookup-self":
            remaining = (
                0 if token.ttl == 0 else max(0, token.ttl - (time.monotonic() - token.issued))
            )
            return self._send(
                h, 200, {"data": {"ttl": int(remaining), "renewable": token.renewable}}
            )
        if method in ("POST", "PUT") and path == "/v1/auth/token/renew-self":
            if not token.renewable:
                return self._send(h, 400, {"errors": ["lease is not renewable"]})
            with self._lock:
                token.issued = time.monotonic()
            return self._send(
                h,
                200,
                {
                    "auth": {
                        "client_token": token_value,
                        "lease_duration": int(token.ttl),
                        "renewable": True,
                    }
                },
            )
        if method == "GET" and path.startswith("/v1/") and "/data/" in path:
            mount, kv_path = path[len("/v1/") :].split("/data/", 1)
            if self.delay:
                self._release.wait(self.delay)  # bounded stall; stop() ends it early
            data = self.kv.get((mount, kv_path))
            if data is None:
                return self._send(h, 404, {"errors": []})
            metadata = {"version": 1, "deletion_time": "", "destroyed": False}
            return self._send(h, 200, {"data": {"data": data, "metadata": metadata}})
        return self._send(h, 404, {"errors": [f"no handler for route {path!r}"]})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


# --------------------------------------------------------------------------- moto (AWS)


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto_server(attempts: int = 3, ready_timeout: float = 30.0) -> MotoServer:
    """Start moto's standalone server (``python -m moto.server``) on 127.0.0.1 and wait
    until it answers. The port is picked free first; a lost race is retried."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(attempts):
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = MotoServer(f"http://127.0.0.1:{port}", process)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with no_proxy.open(f"{server.url}/moto-api/", timeout=1) as response:
                    if response.status == 200:
                        return server
            except OSError:
                time.sleep(0.1)
        server.stop()
    raise RuntimeError("moto server did not start")


# Fake AWS credentials for boto3 against moto, and nothing from the machine's AWS config.
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# --------------------------------------------------------------------------- TLS material


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (the same helpers
    as the test upstreams). Returns (ca_cert, server_cert, server_key) paths."""
    from upstreams import issue_server_cert, make_test_ca

    ca = make_test_ca(directory, cn="fake vault test CA")
    cert, key = issue_server_cert(ca, names=("localhost",), ips=("127.0.0.1",), out_dir=directory)
    return ca[0], cert, key
