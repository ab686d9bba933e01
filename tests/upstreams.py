"""Reusable test upstreams: a recording HTTP(S) server in a background thread, plus a tiny
test CA for it (separate from the gate's own CA).

    with Upstream() as up:                       # plain HTTP on 127.0.0.1:<random>
        httpx.get(up.url + "/x")
        up.requests[0].method, up.connections    # what it saw, thread-safe copies

    with Upstream(tls=True) as up:               # HTTPS; up.ca_cert_path signed its cert
        ...

    with Upstream(handler=sse([b"data: 1\\n\\n", b"data: 2\\n\\n"], interval=0.5)) as up: ...
    with Upstream(routes={"/slow": slow(3), "/fail": status(503)}) as up: ...

A handler takes a RecordedRequest and returns a Reply. The default echoes the request as JSON.
Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import itertools
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
MAX_BODY = 64 * 1024 * 1024  # refuse absurd bodies instead of reading forever


_handed_out: set[int] = set()
_handed_lock = threading.Lock()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (racy by nature), never one this test
    process handed out before: the kernel may give a just-closed port again, and a gate
    started with the same port for two listeners cannot start (seen once in CI)."""
    with _handed_lock:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no TCP port left that was not handed out already")


# --------------------------------------------------------------------------- test CA

TestCa = tuple[Path, ec.EllipticCurvePrivateKey]  # (ca_cert_path, ca_key)
_serial = itertools.count(1)


def make_test_ca(directory: Path, cn: str = "Upstream Test CA") -> TestCa:
    """A throwaway CA for test upstreams. Writes ``<directory>/upstream-ca.pem`` (cert only)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    path = directory / "upstream-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key


def issue_server_cert(
    ca: TestCa,
    names: Sequence[str] = ("localhost",),
    ips: Sequence[str] = (LOOPBACK,),
    out_dir: Path | None = None,
) -> tuple[Path, Path]:
    """A server cert signed by ``ca`` (from make_test_ca). Returns (cert_path, key_path),
    written next to the CA cert unless ``out_dir`` is given."""
    ca_cert_path, ca_key = ca
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    out = Path(out_dir) if out_dir else ca_cert_path.parent
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    now = datetime.datetime.now(datetime.UTC)
    cn = names[0] if names else ips[0]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    n = next(_serial)
    cert_path = out / f"server-{n}.pem"
    key_path = out / f"server-{n}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedConnection:
    id: int
    peer: tuple[str, int]
    time: float
    tls: bool


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]  # as received: order and case preserved
    body: bytes
    connection_id: int
    time: float
    http_version: str

    def header(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name`` (case-insensitive)."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}

    def to_json(self) -> dict[str, Any]:
        try:
            body: dict[str, str] = {"body": self.body.decode()}
        except UnicodeDecodeError:
            body = {"body_b64": base64.b64encode(self.body).decode()}
        return {
            "method": self.method,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers],
            "connection_id": self.connection_id,
            "http_version": self.http_version,
            **body,
        }


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: Iterable[bytes] | None = None  # if set: sent with chunked encoding, one by one
    chunk_interval: float = 0.0  # pause before each chunk after the first
    delay: float = 0.0  # pause before the status line
    reason: str | None = None  # HTTP/1 reason phrase; None: the standard one for the status


Handler = Callable[[RecordedRequest], Reply]


# --------------------------------------------------------------------------- handlers


def echo_json(req: RecordedRequest) -> Reply:
    """Default handler: 200 with a JSON description of what was received."""
    return Reply(
        200,
        {"content-type": "application/json"},
        json.dumps(req.to_json()).encode(),
    )


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def handler(req: RecordedRequest) -> Reply:
        return Reply(code, dict(headers or {}), body)

    return handler


def slow(seconds: float, then: Handler = echo_json) -> Handler:
    """Wait ``seconds`` before sending anything."""

    def handler(req: RecordedRequest) -> Reply:
        r = then(req)
        r.delay += seconds
        return r

    return handler


def sse(events: Sequence[bytes], interval: float = 0.5) -> Handler:
    """text/event-stream; each item of ``events`` is sent as its own chunk, ``interval`` apart.
    Items are sent verbatim, so include the ``data: ...\\n\\n`` framing."""

    def handler(req: RecordedRequest) -> Reply:
        return Reply(
            200,
            {"content-type": "text/event-stream", "cache-control": "no-cache"},
            chunks=list(events),
            chunk_interval=interval,
        )

    return handler


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        super().__init__((LOOPBACK, 0), _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Recorded at accept time, before any TLS or HTTP: "saw nothing" means nothing.
        conn_id = self.upstream._record_connection(sock, addr)
        sock.settimeout(30)  # a stuck client must not pin a thread forever
        return _TaggedSocket(sock, conn_id), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        tagged: _TaggedSocket = request
        if self.upstream.ssl_context is not None:
            raw = tagged.sock
            try:  # the handshake runs in the per-connection thread, not the accept loop
                tagged.sock = self.upstream.ssl_context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                return  # shutdown_request closes it
            finally:
                self.upstream._replace_socket(raw, tagged.sock)
        handler = _RequestHandler.__new__(_RequestHandler)
        handler.conn_id = tagged.conn_id  # needed before __init__, which handles the request
        _RequestHandler.__init__(handler, tagged.sock, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        sock = request.sock if isinstance(request, _TaggedSocket) else request
        super().shutdown_request(sock)
        self.upstream._forget_socket(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client resets are normal in proxy tests; don't spam stderr


class _TaggedSocket:
    def __init__(self, sock: socket.socket, conn_id: int) -> None:
        self.sock = sock
        self.conn_id = conn_id

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    conn_id: int

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def __getattr__(self, name: str) -> Any:
        # Any method (GET, POST, PROPFIND, ...) goes to the same dispatcher.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        up = self.server.upstream
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_error(400)
            return
        req = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=tuple((k, v) for k, v in self.headers.items()),
            body=body,
            connection_id=self.conn_id,
            time=time.time(),
            http_version=self.request_version,
        )
        up._record_request(req)
        try:
            reply = up._handler_for(req.path)(req)
        except Exception as e:  # a broken test handler should show up as a 500, not a hang
            reply = Reply(500, {"content-type": "text/plain"}, f"handler error: {e!r}".encode())
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status, reply.reason)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        no_body = self.command == "HEAD" or reply.status in (204, 304) or reply.status < 200
        if reply.chunks is not None and not no_body:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i, chunk in enumerate(reply.chunks):
                if i and reply.chunk_interval:
                    time.sleep(reply.chunk_interval)
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        if "content-length" not in {k.lower() for k in reply.headers} and not no_body:
            self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        if not no_body and reply.body:
            self.wfile.write(reply.body)
        self.wfile.flush()


class Upstream:
    """A recording HTTP/1.1 server on 127.0.0.1:<random port> in a background thread."""

    def __init__(
        self,
        *,
        tls: bool = False,
        handler: Handler | None = None,
        routes: dict[str, Handler] | None = None,
        cert: tuple[Path, Path] | None = None,
        ca: TestCa | None = None,
        alpn: Sequence[str] = ("http/1.1",),
    ) -> None:
        """``routes`` maps a path prefix to a handler (longest prefix wins); ``handler`` is the
        fallback. With ``tls=True`` and no ``cert``, a cert for localhost/127.0.0.1 is issued
        by ``ca`` (or a fresh test CA), exposed as ``ca_cert_path``."""
        self.tls = tls
        self._default = handler or echo_json
        self._routes = sorted((routes or {}).items(), key=lambda kv: -len(kv[0]))
        self._cert = cert
        self._ca = ca
        self._alpn = list(alpn)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._connections: list[RecordedConnection] = []
        self._snis: list[str | None] = []  # the TLS server name of each handshake
        self._open_socks: set[socket.socket] = set()
        self._cond = threading.Condition(self._lock)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.ssl_context: ssl.SSLContext | None = None
        self.ca_cert_path: Path | None = ca[0] if ca else None

    # -- lifecycle

    def start(self) -> Upstream:
        if self.tls:
            if self._cert is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="upstream-")
                if self._ca is None:
                    self._ca = make_test_ca(Path(self._tmp.name))
                self.ca_cert_path = self._ca[0]
                self._cert = issue_server_cert(self._ca, out_dir=Path(self._tmp.name))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(self._cert[0]), str(self._cert[1]))
            if self._alpn:
                ctx.set_alpn_protocols(self._alpn)
            ctx.sni_callback = self._record_sni
            self.ssl_context = ctx
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # stops the accept loop (bounded by poll_interval)
            self._server.server_close()
            with self._lock:
                socks = list(self._open_socks)
            for s in socks:  # end keep-alive connections so their threads exit
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        assert self._server is not None, "upstream not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def url_localhost(self) -> str:
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    # -- what it saw (copies, safe to read from any thread)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[RecordedConnection]:
        with self._lock:
            return list(self._connections)

    @property
    def snis(self) -> list[str | None]:
        """The server name (SNI) each TLS handshake asked for, None when it sent none."""
        with self._lock:
            return list(self._snis)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connections.clear()
            self._snis.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"upstream saw {len(self._requests)} of {n} requests")
                self._cond.wait(left)
            return list(self._requests)

    # -- internals, called from server threads

    def _handler_for(self, path: str) -> Handler:
        for prefix, h in self._routes:
            if path.startswith(prefix):
                return h
        return self._default

    def _record_connection(self, sock: socket.socket, addr: tuple[str, int]) -> int:
        with self._cond:
            conn_id = len(self._connections) + 1
            self._connections.append(RecordedConnection(conn_id, addr, time.time(), self.tls))
            self._open_socks.add(sock)
            self._cond.notify_all()
            return conn_id

    def _record_sni(self, sock: Any, server_name: str | None, context: Any) -> None:
        with self._lock:
            self._snis.append(server_name)

    def _replace_socket(self, old: socket.socket, new: socket.socket) -> None:
        with self._lock:
            self._open_socks.discard(old)
            self._open_socks.add(new)

    def _forget_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_socks.discard(sock)

    def _record_request(self, req: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()
