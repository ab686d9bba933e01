"""Proxy benchmark: direct vs bare mitmproxy vs the gate, plain and through TLS interception,
single-connection latency, and 10,000 concurrently held requests. All in one run.

Run from the repository root:

    .venv/bin/python bench/bench_proxy.py            # full: 3 rounds x 10 s per mode (~10 min)
    .venv/bin/python bench/bench_proxy.py --quick    # short: 1 round x 3 s, 2,000 holds

It starts, all on 127.0.0.1:
- an upstream: a minimal asyncio HTTP/1.1 server (plain and TLS with its own test CA) in a
  subprocess, answering every POST with a small JSON 200;
- bare mitmproxy: ``gate_proxy.proxy.engine.ProxyEngine`` (the gate's minimal mitmproxy addon
  set, the same options, the same CA code) plus one no-op addon, in a subprocess, with
  stock mitmproxy: every target compares with it. A second one with the gate's changes to
  mitmproxy itself (``proxy/speedups.py``: cached hook dispatch, no debug-only type checks)
  shows what they alone do (``--no-bare-cached`` leaves it out);
- the gate: a real ``gate-proxy serve`` subprocess with its config written to a temporary
  directory (registry entries for the upstream, the upstream's CA via ``upstream_ca_bundle``),
  an agent registered through the API, a policy that auto-approves (support-reply) and one
  that always asks (finance-high-risk, for the holds); and ``gate-proxy serve --workers N``
  (``--workers``, default 2) on its own ports, whose CPU is summed over the supervisor and
  its workers; and, with ``--compare NAME=DIR``, a gate run from another source tree (a
  before/after in one run).

Measurements (rounds interleave the modes, so a noisy neighbour hits all of them alike; the
medians of the rounds are reported, with the min–max):
- (a)(b)(c) throughput: POST of a small JSON body over 32 keep-alive connections for a fixed
  duration, with ``wrk`` (1 thread). Through a proxy, wrk sends the absolute-form target from a
  Lua script with ``Proxy-Authorization``. Without wrk on PATH a Python asyncio client is used
  instead (and the report says so).
- (d) the same through TLS interception (CONNECT, then TLS to the proxy, then TLS upstream).
  wrk cannot CONNECT, so a Python asyncio client drives these rows, and also measures the plain
  bare/gate paths so the TLS ratio compares like with like.
- (e) single-connection latency: one keep-alive connection, one request at a time, p50/p99,
  for direct, bare and gate (and both TLS paths), and the added p50 (gate - bare).
- (f) holds: a fresh gate process; N requests with ``X-Gate-Wait: true`` on a policy that always
  needs approval, opened in batches (mitmproxy's listen backlog is 100); memory per hold from
  the gate's VmRSS delta; then every intent is approved through the API (bulk approvals of
  1,000 intents per call, one call after the other; one call per intent, 32 in flight, on a
  gate without the bulk route) and the time from the first approval sent to the last held
  response received is the release time. The same is measured on bare mitmproxy whose addon
  holds the requests on one event, as the floor.

The gate's config allowlists 127.0.0.1 for its SSRF egress check (the check still runs), since
every upstream here is on loopback.

Every loop is bounded by a count and a deadline. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, background_load, fmt, header, md_table, median, percentile, spread

LOOPBACK = "127.0.0.1"
BODY = b'{"ticket":4711,"to":"customer@example.com","message":"Thanks, your order has shipped."}'
UPSTREAM_BODY = b'{"status":"ok"}'
UPSTREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(UPSTREAM_BODY), UPSTREAM_BODY)
)
ADMIN_KEY = "gate_sk_bench-admin-key-0123456789abcdefghijklmnopqrstuvw"
CONNECTIONS = 32

# Issue 13's targets, each measured against stock bare mitmproxy in the same run.
TARGET_RATIO = 0.65  # one gate process / bare mitmproxy, requests/s
LONG_TERM_RATIO = 0.90
TARGET_CPU_RATIO = 2.0  # gate / bare, proxy CPU per request
TARGET_WORKERS_RATIO = 1.25  # gate --workers 2 / one bare mitmproxy process, requests/s
TARGET_ADDED_P50_MS = 0.8
TARGET_P99_RATIO = 2.0
TARGET_HOLD_KB = 32.0
TARGET_RELEASE_S = 5.0

POLICIES = {
    # As shipped in policies/ (auto-approves a single JSON reply, scans three terms).
    "support-reply": (
        "id: support-reply\n"
        "destinations: [zendesk.reply, intercom.reply, freshdesk.reply]\n"
        "allowed_types: [text, json]\n"
        'block_if_terms: ["refund guaranteed", "legal action", "sue"]\n'
        "auto_approve_under: 1\n"
        "expiry_minutes: 30\n"
    ),
    "finance-high-risk": (
        "id: finance-high-risk\n"
        "destinations: [stripe.refund]\n"
        "require_approval: always\n"
        "expiry_minutes: 60\n"
    ),
}


def destinations_yaml(plain: int, tls: int) -> str:
    paths = (
        "    /v1/replies: {method: POST, destination: zendesk.reply, policy: support-reply}\n"
        "    /v1/refunds: {method: POST, destination: stripe.refund, policy: finance-high-risk}\n"
    )
    return (
        "default:\n  action: block\n"
        f'"127.0.0.1:{plain}":\n  paths:\n{paths}'
        f'"127.0.0.1:{tls}":\n  paths:\n{paths}'
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (an unprivileged process can't go further)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout}s")


# ============================================================================ child roles


class _UpstreamProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1 that answers every request with UPSTREAM_RESPONSE."""

    count = 0
    connections = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = bytearray()
        _UpstreamProtocol.connections += 1

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buffer) < total:
                return
            del buffer[:total]
            if head.startswith(b"get /__count"):
                body = f"{_UpstreamProtocol.count} {_UpstreamProtocol.connections}".encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                continue
            _UpstreamProtocol.count += 1
            self.transport.write(UPSTREAM_RESPONSE)


def role_upstream(args: argparse.Namespace) -> None:
    raise_nofile()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(_UpstreamProtocol, LOOPBACK, args.port, backlog=4096)
        await loop.create_server(_UpstreamProtocol, LOOPBACK, args.tls_port, ssl=ctx, backlog=4096)
        await asyncio.Event().wait()

    asyncio.run(run())


class NoOpAddon:
    """The "plus a no-op addon" of bare mitmproxy: sees every request and response."""

    def request(self, flow: Any) -> None:
        pass

    def response(self, flow: Any) -> None:
        pass


class HoldAddon:
    """Baseline for the hold test in bare mitmproxy: a request to /v1/refunds waits in its
    request hook until ``GET /__release``; ``GET /__held`` answers how many are waiting. The
    answers are made by the addon, through the proxy, like the gate's."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    async def request(self, flow: Any) -> None:
        from mitmproxy import http

        path = flow.request.path
        if path.startswith("/__held"):
            flow.response = http.Response.make(200, str(self.waiting).encode())
        elif path.startswith("/__release"):
            released, self.release = self.release, asyncio.Event()
            released.set()
            flow.response = http.Response.make(200, b"released")
        elif path.startswith("/v1/refunds"):
            self.waiting += 1
            try:
                await self.release.wait()
            finally:
                self.waiting -= 1


def role_bare(args: argparse.Namespace) -> None:
    raise_nofile()
    from gate_proxy.logs import setup_logging
    from gate_proxy.proxy.ca import combined_trust_bundle, ensure_ca
    from gate_proxy.proxy.engine import Listener, ProxyEngine
    from gate_proxy.settings import Settings

    setup_logging("INFO")  # what `gate-proxy serve` does, so logging is not the difference
    certs = Path(args.certs_dir)
    ensure_ca(certs)
    bundle = combined_trust_bundle(Path(args.ca_bundle), certs)
    defaults = Settings()

    async def run() -> None:
        engine = ProxyEngine(
            listeners=[Listener("forward", f"regular@{LOOPBACK}:{args.port}")],
            addons=[NoOpAddon(), HoldAddon()] if args.hold else [NoOpAddon()],
            confdir=certs,
            trusted_ca_bundle=bundle,
            # Stock mitmproxy dispatch unless asked: the targets compare with stock mitmproxy.
            mitmproxy_speedups=args.mitmproxy_speedups,
            extra_options={  # the options `gate-proxy serve` sets
                "body_size_limit": str(defaults.proxy_body_limit + 1),
                "tcp_timeout": defaults.tcp_timeout_s,
            },
        )
        await engine.start()
        await asyncio.Event().wait()

    asyncio.run(run())


# ============================================================================ processes


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def nofile_wrapper() -> list[str]:
    """``prlimit`` in front of a child's command, so the child (the gate above all) can hold
    10,000+ sockets whatever it inherits; children also inherit this process's raised limit."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [prlimit, f"--nofile={soft}:{hard}"]


def open_files_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return line.split()[3]
    return "?"


def spawn(name: str, command: list[str], root: Path, env: dict[str, str] | None = None) -> Child:
    log = root / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*nofile_wrapper(), *command],  # prlimit execs the command: same pid
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={**os.environ, **(env or {})},
        )
    return Child(name, proc, log)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a --workers supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(member)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def http_json(method: str, url: str, key: str, body: Any = None, timeout: float = 30) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Gate:
    child: Child
    root: Path
    api_port: int
    proxy_port: int
    agent_auth: str  # the Proxy-Authorization value
    release_mode: str = ""  # how the hold test released (bulk or one call each)

    @property
    def ca(self) -> Path:
        return self.root / "certs" / "mitmproxy-ca-cert.pem"

    def held_gauge(self) -> int:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.api_port}/metrics", timeout=10) as r:
            match = re.search(rb"^gate_held_requests (\S+)$", r.read(), re.M)
        return int(float(match.group(1))) if match else 0


def start_gate(
    root: Path,
    upstream_ca: Path,
    plain_port: int,
    tls_port: int,
    gate_yaml: str = "",
    *,
    workers: int = 1,
    source: Path = REPO,
) -> Gate:
    """A `gate-proxy serve` (``--workers N`` when N > 1) from the source tree ``source``."""
    for sub in ("policies", "config", "data", "certs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, text in POLICIES.items():
        (root / "policies" / f"{name}.yaml").write_text(text)
    (root / "config" / "destinations.yaml").write_text(destinations_yaml(plain_port, tls_port))
    # The upstreams live on loopback, which the gate's SSRF-safe egress check denies unless
    # allowlisted (docs/analyzers.md); the check itself still runs on every request.
    (root / "config" / "gate.yaml").write_text(
        f"upstream_ca_bundle: {upstream_ca}\negress_allow: [127.0.0.1/32]\n{gate_yaml}"
    )
    api, proxy, reverse = free_port(), free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "gate_proxy",
        "serve",
        "--host",
        LOOPBACK,
        "--port",
        str(api),
        "--proxy-port",
        str(proxy),
        "--reverse-port",
        str(reverse),
        "--data-dir",
        str(root / "data"),
        "--policy-dir",
        str(root / "policies"),
        "--config-dir",
        str(root / "config"),
        "--certs-dir",
        str(root / "certs"),
        *(["--workers", str(workers)] if workers > 1 else []),
    ]
    child = spawn("gate", command, root, {"GATE_ADMIN_KEY": ADMIN_KEY, "PYTHONPATH": str(source)})
    try:
        wait_port(api, child.proc)
        wait_port(proxy, child.proc)
        agent = http_json(
            "POST",
            f"http://{LOOPBACK}:{api}/v1/agents/register",
            ADMIN_KEY,
            {"name": "bench-agent", "role": "agent"},
        )
    except Exception:
        print(child.tail(), file=sys.stderr)
        child.stop()
        raise
    creds = base64.b64encode(f"{agent['agentId']}:{agent['apiKey']}".encode()).decode()
    return Gate(child, root, api, proxy, f"Basic {creds}")


# ============================================================================ requests


def origin_request(port: int, path: str = "/v1/replies", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


def proxy_request(upstream: int, auth: str, path: str = "/v1/replies", extra: str = "") -> bytes:
    return (
        f"POST http://{LOOPBACK}:{upstream}{path} HTTP/1.1\r\nHost: {LOOPBACK}:{upstream}\r\n"
        f"Proxy-Authorization: {auth}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


def connect_request(upstream: int, auth: str) -> bytes:
    return (
        f"CONNECT {LOOPBACK}:{upstream} HTTP/1.1\r\nHost: {LOOPBACK}:{upstream}\r\n"
        f"Proxy-Authorization: {auth}\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        if b"transfer-encoding: chunked" in lower:
            raise RuntimeError("unexpected chunked response")
        return status, b""
    stop = lower.find(b"\r\n", at + 2)
    body = await reader.readexactly(int(lower[at + 17 : stop]))
    return status, body


async def open_conn(
    port: int, connect: bytes | None, ssl_ctx: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port, limit=1 << 20)
    if connect is not None:
        writer.write(connect)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"CONNECT refused: {head[:80]!r}")
    if ssl_ctx is not None:
        await writer.start_tls(ssl_ctx, server_hostname=LOOPBACK)
    return reader, writer


@dataclass
class LoadResult:
    rate: float = 0.0
    completed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    bad: int = 0  # non-200 answers
    errors: int = 0
    cpu_ms_per_request: float = float("nan")  # of the proxy process, when a pid was given


async def py_load(
    port: int,
    request: bytes,
    *,
    connect: bytes | None = None,
    ssl_ctx: ssl.SSLContext | None = None,
    connections: int = CONNECTIONS,
    warmup_s: float = 1.0,
    duration_s: float = 10.0,
    max_requests: int | None = None,
    pid: int | None = None,
) -> LoadResult:
    """Closed-loop load: each connection sends one request, waits for the answer, repeats.
    Bounded by duration_s and (optionally) max_requests counted after the warm-up."""
    result = LoadResult()
    measuring = False
    stop = False
    statuses: dict[int, int] = {}

    async def worker() -> None:
        nonlocal stop
        try:
            reader, writer = await open_conn(port, connect, ssl_ctx)
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            result.errors += 1
            return
        try:
            while not stop:
                started = time.perf_counter()
                writer.write(request)
                status, _ = await read_response(reader)
                if measuring:
                    result.latencies_ms.append((time.perf_counter() - started) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1
                    if max_requests is not None and len(result.latencies_ms) >= max_requests:
                        stop = True
        except (OSError, RuntimeError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(warmup_s)
    measuring = True
    cpu0 = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    deadline = started + duration_s
    while time.perf_counter() < deadline and not stop and not all(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    measuring = False
    elapsed = time.perf_counter() - started
    cpu1 = cpu_seconds(pid) if pid else 0.0
    stop = True
    await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        task.cancel()
    result.completed = len(result.latencies_ms)
    result.rate = result.completed / elapsed if elapsed else 0.0
    if pid and result.completed:
        result.cpu_ms_per_request = (cpu1 - cpu0) / result.completed * 1000
    result.bad = sum(n for code, n in statuses.items() if code != 200)
    return result


def wrk_load(
    port: int,
    path: str,
    headers: dict[str, str],
    duration_s: float,
    root: Path,
    pid: int | None = None,
) -> LoadResult:
    lines = [
        'wrk.method = "POST"',
        f'wrk.path = "{path}"',
        f"wrk.body = '{BODY.decode()}'",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
    ]
    script = root / "wrk.lua"
    script.write_text("\n".join(lines) + "\n")
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://{LOOPBACK}:{port}/",
    ]
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60, check=False
    ).stdout
    cpu1 = cpu_seconds(pid) if pid else 0.0
    result = LoadResult()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    result.rate = float(rate.group(1))
    result.completed = int(total.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result.bad = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result.errors = sum(int(g) for g in errors.groups()) if errors else 0
    if pid and result.completed:
        result.cpu_ms_per_request = (cpu1 - cpu0) / result.completed * 1000
    return result


def upstream_count(port: int) -> tuple[int, int]:
    """(requests, connections) the upstream has seen so far."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(b"GET /__count HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    requests, connections = data.split(b"\r\n\r\n", 1)[1].split()
    return int(requests), int(connections)


# ============================================================================ holds


@dataclass
class HoldResult:
    requested: int = 0
    held: int = 0
    ramp_s: float = 0.0
    rss_before_kb: int = 0
    rss_held_kb: int = 0
    cpu_while_holding: float = 0.0  # cores used by the gate while idle-holding
    approvals_s: float = 0.0  # first approval sent -> last approval answered
    release_s: float = 0.0  # first approval sent -> last held response received
    approved: int = 0
    released_ok: int = 0
    released_other: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    note: str = ""

    @property
    def kb_per_hold(self) -> float:
        return (self.rss_held_kb - self.rss_before_kb) / self.held if self.held else float("nan")


async def _approve_all(
    api_port: int, intent_ids: list[str], workers: int, deadline: float
) -> tuple[float, float, int]:
    """Approve every intent (one API call each, `workers` keep-alive connections).
    Returns (first send time, last answer time, failures)."""
    queue = list(reversed(intent_ids))
    first_sent = 0.0
    last_answer = 0.0
    failures = 0

    async def worker() -> None:
        nonlocal first_sent, last_answer, failures
        reader, writer = await asyncio.open_connection(LOOPBACK, api_port)
        try:
            while queue and time.monotonic() < deadline:
                intent_id = queue.pop()
                if not first_sent:
                    first_sent = time.perf_counter()
                writer.write(
                    (
                        f"POST /v1/intents/{intent_id}/approve HTTP/1.1\r\n"
                        f"Host: {LOOPBACK}:{api_port}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
                        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    ).encode()
                )
                status, _ = await read_response(reader)
                last_answer = time.perf_counter()
                if status != 200:
                    failures += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return first_sent, last_answer, failures


def _answer_kind(status: int, body: bytes) -> str:
    """A short label for a response: its status and, for the gate's own answers, the reason."""
    if status == 200 and b"reason_code" not in body:
        return "200"
    try:
        parsed = json.loads(body)
        reason = parsed.get("reason_code") or parsed.get("status") or "?"
    except (ValueError, AttributeError):
        reason = "(not a gate answer)"
    return f"{status} {reason}"


@dataclass
class HoldTarget:
    """What the hold test needs to know about a proxy: where it listens, how many requests
    it holds right now, and how to release them all."""

    name: str
    proxy_port: int
    pid: int
    auth: str
    held: Callable[[], int]  # blocking; called in a thread
    # (held count) -> (first release call sent, last release call answered, calls ok, failures)
    release: Callable[[int], Awaitable[tuple[float, float, int, int]]]


BULK_LIMIT = 1000  # intents per POST /v1/intents/approve (the API's MAX_BULK_APPROVALS)


async def _approve_bulk(
    api_port: int, intent_ids: list[str], deadline: float
) -> tuple[float, float, int] | None:
    """Approve every intent with POST /v1/intents/approve, BULK_LIMIT per call, the calls
    one after another on one connection. None if the gate has no bulk route (older gate).
    Returns (first send time, last answer time, failures)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, api_port, limit=1 << 24)
    first_sent = last_answer = 0.0
    failures = 0
    try:
        for start in range(0, len(intent_ids), BULK_LIMIT):
            if time.monotonic() > deadline:
                failures += len(intent_ids) - start
                break
            chunk = intent_ids[start : start + BULK_LIMIT]
            body = json.dumps({"intents": [{"intentId": i} for i in chunk]}).encode()
            if not first_sent:
                first_sent = time.perf_counter()
            writer.write(
                (
                    f"POST /v1/intents/approve HTTP/1.1\r\nHost: {LOOPBACK}:{api_port}\r\n"
                    f"Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            status, answer = await read_response(reader)
            last_answer = time.perf_counter()
            if status in (404, 405) and start == 0:
                return None
            if status != 200:
                failures += len(chunk)
                continue
            failures += len(chunk) - int(json.loads(answer).get("approved", 0))
    finally:
        writer.close()
    return first_sent, last_answer, failures


def gate_target(gate: Gate) -> HoldTarget:
    async def release(_: int) -> tuple[float, float, int, int]:
        listing = await asyncio.to_thread(
            http_json,
            "GET",
            f"http://{LOOPBACK}:{gate.api_port}/v1/proxy/held",
            ADMIN_KEY,
            None,
            120,
        )
        ids = [h["intentId"] for h in listing["held"]]
        deadline = time.monotonic() + 120
        bulk = await _approve_bulk(gate.api_port, ids, deadline)
        if bulk is None:  # no bulk route: one approval call each
            bulk = await _approve_all(gate.api_port, ids, CONNECTIONS, deadline)
            gate.release_mode = "one approval API call each, 32 in flight"
        else:
            gate.release_mode = f"bulk approvals, {BULK_LIMIT} intents per call"
        first, last, failures = bulk
        return first, last, len(ids) - failures, failures

    return HoldTarget(
        "gate", gate.proxy_port, gate.child.pid, gate.agent_auth, gate.held_gauge, release
    )


def bare_target(port: int, pid: int, upstream_port: int) -> HoldTarget:
    def call(path: str) -> bytes:
        with socket.create_connection((LOOPBACK, port), timeout=30) as s:
            s.sendall(
                f"GET http://{LOOPBACK}:{upstream_port}{path} HTTP/1.1\r\n"
                f"Host: {LOOPBACK}:{upstream_port}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1]

    async def release(_: int) -> tuple[float, float, int, int]:
        first = time.perf_counter()
        await asyncio.to_thread(call, "/__release")
        return first, time.perf_counter(), 1, 0

    return HoldTarget("bare", port, pid, "Basic eDp5", lambda: int(call("/__held")), release)


async def hold_test(target: HoldTarget, upstream_port: int, n: int, batch: int) -> HoldResult:
    result = HoldResult(requested=n)
    request = proxy_request(upstream_port, target.auth, "/v1/refunds", "X-Gate-Wait: true\r\n")
    answers: list[tuple[float, str]] = []  # (arrival time, kind) of every response
    writers: list[asyncio.StreamWriter] = []
    overall = time.monotonic() + 300

    async def held_client() -> None:
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, target.proxy_port)
        except OSError:
            result.errors += 1
            return
        writers.append(writer)
        try:
            writer.write(request)
            await writer.drain()
            status, body = await read_response(reader)
            answers.append((time.perf_counter(), _answer_kind(status, body)))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
        finally:
            writer.close()

    # Ramp in batches: each batch is held (or answered) before the next one connects, so the
    # listen backlog (100) never overflows into SYN retries.
    tasks: list[asyncio.Task[None]] = []
    ramp_started = time.perf_counter()
    while len(tasks) < n and time.monotonic() < overall:
        for _ in range(min(batch, n - len(tasks))):
            tasks.append(asyncio.create_task(held_client()))
        batch_deadline = time.monotonic() + 15
        while time.monotonic() < batch_deadline:
            await asyncio.sleep(0.02)
            held = await asyncio.to_thread(target.held)
            if held + len(answers) + result.errors >= len(tasks):
                break
    result.ramp_s = time.perf_counter() - ramp_started
    early: dict[str, int] = {}
    for _, kind in answers:
        early[kind] = early.get(kind, 0) + 1
    if early:
        result.note = "answered instead of held: " + ", ".join(
            f"{count} × {kind}" for kind, count in sorted(early.items())
        )
    await asyncio.sleep(2)  # let the proxy settle (writes flushed, allocator quiet)
    result.held = await asyncio.to_thread(target.held)
    result.rss_held_kb = rss_kb(target.pid)
    cpu0 = cpu_seconds(target.pid)
    await asyncio.sleep(3)
    result.cpu_while_holding = (cpu_seconds(target.pid) - cpu0) / 3

    before = len(answers)
    first_sent, last_answer, approved, failures = await target.release(result.held)
    release_deadline = time.monotonic() + 120
    while len(answers) - before < result.held and time.monotonic() < release_deadline:
        await asyncio.sleep(0.01)
    released = answers[before:]
    notes = [result.note] if result.note else []
    if len(released) < result.held:
        notes.append(f"only {len(released)} of {result.held} answered within 120 s")
    if failures:
        notes.append(f"{failures} approval calls failed")
    result.approvals_s = last_answer - first_sent
    result.approved = approved
    result.release_s = max(t for t, _ in released) - first_sent if released else float("nan")
    for _, kind in released:
        if kind == "200":
            result.released_ok += 1
        else:
            result.released_other[kind] = result.released_other.get(kind, 0) + 1
    result.note = "; ".join(notes)
    for writer in writers:
        writer.close()
    await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.cancel()
    return result


# ============================================================================ main


@dataclass(frozen=True)
class Proxy:
    port: int
    pid: int  # for --workers: the supervisor (CPU is summed over it and its workers)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


class Bench:
    """The processes of one run and the measurements made on them."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.children: list[Child] = []
        self.have_wrk = shutil.which("wrk") is not None and not args.no_wrk
        self.plain_client = "wrk" if self.have_wrk else "python"
        self.targets: list[str] = []
        self.proxies: dict[str, Proxy] = {}  # mode -> where it listens, its process
        self.gate_auth: dict[str, str] = {}  # mode -> its agent's Proxy-Authorization
        self.compare: dict[str, Path] = dict(
            (name, Path(source)) for name, _, source in (c.partition("=") for c in args.compare)
        )

    # -- setup ---------------------------------------------------------------------------------

    def start(self) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from upstreams import issue_server_cert, make_test_ca

        root, args = self.root, self.args
        self.ca = make_test_ca(root / "upstream-ca")
        cert, key = issue_server_cert(self.ca, names=("localhost",), ips=(LOOPBACK,))
        self.plain_port, self.tls_port = free_port(), free_port()
        upstream = spawn(
            "upstream",
            [
                sys.executable,
                __file__,
                "--role=upstream",
                f"--port={self.plain_port}",
                f"--tls-port={self.tls_port}",
                f"--cert={cert}",
                f"--key={key}",
            ],
            root,
        )
        self.children.append(upstream)
        wait_port(self.plain_port, upstream.proc)
        wait_port(self.tls_port, upstream.proc)
        self._start_bare("bare", speedups=False)
        if args.bare_cached:
            self._start_bare("bare-cached", speedups=True)
        self.gate = start_gate(root / "gate", self.ca[0], self.plain_port, self.tls_port)
        self.children.append(self.gate.child)
        self.proxies["gate"] = Proxy(self.gate.proxy_port, self.gate.child.pid)
        if args.workers > 1:
            gate_n = start_gate(
                root / "gate-workers",
                self.ca[0],
                self.plain_port,
                self.tls_port,
                workers=args.workers,
            )
            self.children.append(gate_n.child)
            self.proxies[self.workers_mode] = Proxy(gate_n.proxy_port, gate_n.child.pid)
            self.gate_auth[self.workers_mode] = gate_n.agent_auth
        for name, source in self.compare.items():
            other = start_gate(
                root / f"gate-{name}", self.ca[0], self.plain_port, self.tls_port, source=source
            )
            self.children.append(other.child)
            self.proxies[name] = Proxy(other.proxy_port, other.child.pid)
            self.gate_auth[name] = other.agent_auth
        self.bare_ctx = self._client_ctx(root / "bare" / "certs" / "mitmproxy-ca-cert.pem")
        self.gate_ctx = self._client_ctx(self.gate.ca)

    def _start_bare(self, name: str, *, speedups: bool) -> None:
        port = free_port()
        (self.root / name).mkdir()
        bare = spawn(
            name,
            [
                sys.executable,
                __file__,
                "--role=bare",
                f"--port={port}",
                f"--certs-dir={self.root / name / 'certs'}",
                f"--ca-bundle={self.ca[0]}",
                *(["--mitmproxy-speedups"] if speedups else []),
            ],
            self.root / name,
        )
        self.children.append(bare)
        wait_port(port, bare.proc)
        self.proxies[name] = Proxy(port, bare.pid)

    @property
    def workers_mode(self) -> str:
        return f"gate-{self.args.workers}w"

    @staticmethod
    def _client_ctx(ca_file: Path) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca_file))
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # -- one measurement -----------------------------------------------------------------------

    async def run(self, mode: str, client: str, duration: float, **kw: Any) -> LoadResult:
        """One measurement of `mode` (direct, bare, bare-cached, gate, gate-Nw, a compared
        gate, bare-tls, gate-tls) with `client` ('wrk' or 'python')."""
        auth = self.gate_auth.get(mode, self.gate.agent_auth)  # bare ignores it
        conn: bytes | None = None
        ctx: ssl.SSLContext | None = None
        path, headers = "", {}
        pid: int | None = None
        if mode == "direct":
            port, req = self.plain_port, origin_request(self.plain_port)
            path = "/v1/replies"
        elif mode.endswith("-tls"):
            proxy = self.proxies[mode.removesuffix("-tls")]
            port, pid = proxy.port, proxy.pid
            req = origin_request(self.tls_port)
            conn = connect_request(self.tls_port, auth)
            ctx = self.gate_ctx if mode == "gate-tls" else self.bare_ctx
        else:
            proxy = self.proxies[mode]
            port, pid = proxy.port, proxy.pid
            path = f"http://{LOOPBACK}:{self.plain_port}/v1/replies"
            headers = {"Host": f"{LOOPBACK}:{self.plain_port}", "Proxy-Authorization": auth}
            req = proxy_request(self.plain_port, auth)
        if client == "wrk":
            if self.args.warmup:
                await asyncio.to_thread(wrk_load, port, path, headers, self.args.warmup, self.root)
            return await asyncio.to_thread(wrk_load, port, path, headers, duration, self.root, pid)
        return await py_load(port, req, connect=conn, ssl_ctx=ctx, pid=pid, **kw)

    async def sanity(self) -> None:
        """Every path answers 200 from the upstream before anything is timed."""
        for mode in ("direct", *self.proxies, "bare-tls", "gate-tls"):
            count_before, _ = upstream_count(self.plain_port)
            check = await self.run(mode, "python", 5, connections=1, warmup_s=0, max_requests=5)
            if check.bad or check.errors or check.completed < 5:
                tails = "\n".join(c.tail() for c in self.children)
                raise SystemExit(f"sanity check failed for {mode}: {check}\n{tails}")
            if upstream_count(self.plain_port)[0] < count_before + 5:
                raise SystemExit(f"sanity check: {mode} did not reach the upstream")

    # -- (a)-(d) -------------------------------------------------------------------------------

    def _series(self) -> list[tuple[str, str, str]]:
        plain_client, args = self.plain_client, self.args
        series: list[tuple[str, str, str]] = [
            ("direct", plain_client, "(a) direct to upstream"),
            ("bare", plain_client, "(b) bare mitmproxy (stock) + no-op addon"),
        ]
        if args.bare_cached:
            series.append(
                ("bare-cached", plain_client, "(b') bare mitmproxy + the gate's mitmproxy speedups")
            )
        series.append(("gate", plain_client, "(c) gate, 1 process, auto-approved forward"))
        if args.workers > 1:
            series.append((self.workers_mode, plain_client, f"(c2) gate, --workers {args.workers}"))
        series += [(name, plain_client, f"(c) gate from {name}") for name in self.compare]
        if self.have_wrk:  # the same two paths with the client that drives the TLS rows
            series += [
                ("bare", "python", "(b) bare mitmproxy (stock) + no-op addon"),
                ("gate", "python", "(c) gate, 1 process, auto-approved forward"),
            ]
        series += [
            ("bare-tls", "python", "(d) bare mitmproxy (stock), TLS interception"),
            ("gate-tls", "python", "(d) gate, TLS interception"),
        ]
        return series

    async def throughput(self) -> list[str]:
        args, plain_client = self.args, self.plain_client
        series = self._series()
        rates: dict[tuple[str, str], list[float]] = {(m, c): [] for m, c, _ in series}
        cpu: dict[tuple[str, str], list[float]] = {(m, c): [] for m, c, _ in series}
        problems: list[str] = []
        cores: dict[str, list[float]] = {}
        for round_no in range(args.rounds):
            for mode, client, _ in series:
                pid = self.proxies[mode].pid if mode in self.proxies else None
                cpu0, wall0 = (cpu_seconds(pid) if pid else 0.0), time.perf_counter()
                result = await self.run(
                    mode, client, args.duration, warmup_s=args.warmup, duration_s=args.duration
                )
                if pid and client == plain_client:
                    busy = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - wall0)
                    cores.setdefault(mode, []).append(busy)
                rates[(mode, client)].append(result.rate)
                cpu[(mode, client)].append(result.cpu_ms_per_request)
                if result.bad or result.errors:
                    problems.append(
                        f"{mode}/{client} round {round_no + 1}: {result.bad} non-200, "
                        f"{result.errors} socket errors"
                    )
                print(
                    f"  round {round_no + 1} {mode:11s} {client:6s} {result.rate:10,.0f} req/s"
                    f"  ({result.completed} requests, {result.bad} non-200, "
                    f"{result.errors} errors, {result.cpu_ms_per_request:.3f} CPU ms/req)",
                    file=sys.stderr,
                )

        def med(mode: str, client: str) -> float:
            return median(rates[(mode, client)])

        def cpu_med(mode: str, client: str) -> float:
            return median(cpu[(mode, client)])

        def per_round(mode: str, base: str, client: str) -> str:
            pairs = zip(rates[(mode, client)], rates[(base, client)], strict=True)
            return ", ".join(f"{a / b:.2f}" for a, b in pairs)

        rows = []
        for mode, client, label in series:
            values = rates[(mode, client)]
            if mode == "direct":
                vs = "-"
            elif mode == "bare":
                vs = "1.00× bare"
            elif mode == "bare-tls":
                vs = f"{med(mode, client) / med('bare', 'python'):.2f}× bare plain (same client)"
            elif mode == "gate-tls":
                vs = f"**{med('gate-tls', client) / med('bare-tls', client):.2f}× bare TLS**"
            elif mode == "bare-cached":
                vs = f"{med(mode, client) / med('bare', client):.2f}× bare"
            else:
                vs = f"**{med(mode, client) / med('bare', client):.2f}× bare**"
            client_label = "wrk" if client == "wrk" else "Python"
            cpu_ms = cpu_med(mode, client)
            rows.append(
                [
                    label,
                    client_label,
                    fmt(median(values), 0),
                    spread(values),
                    vs,
                    "-" if mode == "direct" else f"{cpu_ms:.2f}",
                ]
            )
        cpu_ratio = cpu_med("gate", plain_client) / cpu_med("bare", plain_client)
        out = [
            "### Throughput (requests/s, medians of the rounds)",
            "",
            md_table(
                ["path", "client", "req/s", "min–max", "ratio", "proxy CPU ms / request"], rows
            ),
            "",
            "Gate / bare per round: "
            f"{per_round('gate', 'bare', plain_client)} ({plain_client}); "
            f"{per_round('gate', 'bare', 'python')} (Python); "
            f"{per_round('gate-tls', 'bare-tls', 'python')} (TLS). Proxy CPU per request "
            "(process CPU time / requests answered; for --workers the supervisor and its "
            "workers together) is the noise-robust view: gate / bare = "
            f"{cpu_ratio:.2f}× the CPU for the same request.",
            "",
            f"Direct is {med('direct', plain_client) / med('bare', plain_client):.0f}× bare "
            "mitmproxy: the proxy process (one core) is the bottleneck in every proxied row. "
            "Cores used during the "
            f"{plain_client} runs: "
            + ", ".join(f"{mode} {median(values):.2f}" for mode, values in cores.items())
            + ".",
        ]
        if args.bare_cached:
            out += [
                "",
                "(b') is stock mitmproxy with the changes the gate makes to mitmproxy itself "
                "(gate_proxy/proxy/speedups.py: cached hook dispatch, no debug-only type "
                "checks): "
                f"{med('bare-cached', plain_client) / med('bare', plain_client):.2f}× the "
                f"requests/s and {cpu_med('bare-cached', plain_client):.2f} vs "
                f"{cpu_med('bare', plain_client):.2f} CPU ms per request. Every ratio above "
                "compares with stock (b).",
            ]
        if problems:
            out += ["", "Problems: " + "; ".join(problems)]
        out.append("")
        ratio = med("gate", plain_client) / med("bare", plain_client)
        ratio_py = med("gate", "python") / med("bare", "python")
        ratio_tls = med("gate-tls", "python") / med("bare-tls", "python")
        self.targets.append(
            f"- one gate process ≥ {TARGET_RATIO:.2f}× stock bare mitmproxy: "
            f"{verdict(ratio >= TARGET_RATIO)} ({ratio:.2f}× with {plain_client}; "
            f"{ratio_py:.2f}× with the Python client; through TLS {ratio_tls:.2f}×; the "
            f"long-term goal is {LONG_TERM_RATIO:.2f}×)"
        )
        self.targets.append(
            f"- proxy CPU per request ≤ {TARGET_CPU_RATIO:.0f}× bare's: "
            f"{verdict(cpu_ratio <= TARGET_CPU_RATIO)} ({cpu_ratio:.2f}×: "
            f"{cpu_med('gate', plain_client):.2f} vs {cpu_med('bare', plain_client):.2f} ms)"
        )
        if args.workers > 1:
            ratio_n = med(self.workers_mode, plain_client) / med("bare", plain_client)
            self.targets.append(
                f"- --workers {args.workers} ≥ {TARGET_WORKERS_RATIO:.2f}× one stock bare "
                f"mitmproxy process: {verdict(ratio_n >= TARGET_WORKERS_RATIO)} "
                f"({ratio_n:.2f}× with {plain_client})"
            )
        return out

    # -- (e) -----------------------------------------------------------------------------------

    async def latency(self) -> list[str]:
        args = self.args
        modes = ["direct", "bare", "gate", "bare-tls", "gate-tls"]
        p50s: dict[str, list[float]] = {m: [] for m in modes}
        p99s: dict[str, list[float]] = {m: [] for m in modes}
        added: list[float] = []
        for _ in range(args.rounds):
            for mode in modes:
                result = await self.run(
                    mode,
                    "python",
                    30,
                    connections=1,
                    warmup_s=0.5,
                    duration_s=30,
                    max_requests=args.latency_requests,
                )
                p50s[mode].append(percentile(result.latencies_ms, 50))
                p99s[mode].append(percentile(result.latencies_ms, 99))
            added.append(p50s["gate"][-1] - p50s["bare"][-1])
        rows = [
            [mode, fmt(median(p50s[mode]), 3), fmt(median(p99s[mode]), 3), spread(p50s[mode])]
            for mode in modes
        ]
        added_tls = median(p50s["gate-tls"]) - median(p50s["bare-tls"])
        p99_ratio = median(p99s["gate"]) / median(p99s["bare"])
        self.targets.append(
            f"- single-connection p50 added ≤ {TARGET_ADDED_P50_MS} ms: "
            f"{verdict(median(added) <= TARGET_ADDED_P50_MS)} ({median(added):.3f} ms)"
        )
        self.targets.append(
            f"- single-connection p99 ≤ {TARGET_P99_RATIO:.0f}× bare's: "
            f"{verdict(p99_ratio <= TARGET_P99_RATIO)} ({p99_ratio:.2f}×: "
            f"{median(p99s['gate']):.3f} vs {median(p99s['bare']):.3f} ms)"
        )
        return [
            "### Single-connection latency (ms; one keep-alive connection, one request at a "
            f"time, {args.latency_requests} requests per round, Python client)",
            "",
            md_table(["path", "p50", "p99", "p50 min–max"], rows),
            "",
            f"Added p50, gate − bare: **{median(added):.3f} ms** plain (per round: "
            f"{', '.join(f'{a:.3f}' for a in added)}), {added_tls:.3f} ms through TLS.",
            "",
        ]

    # -- (f) -----------------------------------------------------------------------------------

    async def _run_holds(self, target: HoldTarget, warm: Awaitable[Any]) -> HoldResult:
        await warm
        await hold_test(target, self.plain_port, min(200, self.args.holds), 100)  # warm-up
        await asyncio.sleep(1)
        rss_before = rss_kb(target.pid)
        hold = await hold_test(target, self.plain_port, self.args.holds, self.args.hold_batch)
        hold.rss_before_kb = rss_before
        return hold

    async def holds(self) -> list[str]:
        args = self.args
        # A fresh gate, nothing left over from the load, and no other proxy running.
        for child in [c for c in self.children if c.name != "upstream"]:
            child.stop()
            self.children.remove(child)
        # Baseline: bare mitmproxy holding the same requests in an addon's request hook.
        port = free_port()
        (self.root / "bare-hold").mkdir()
        bare = spawn(
            "bare-hold",
            [
                sys.executable,
                __file__,
                "--role=bare",
                "--hold",
                f"--port={port}",
                f"--certs-dir={self.root / 'bare-hold' / 'certs'}",
                f"--ca-bundle={self.ca[0]}",
            ],
            self.root / "bare-hold",
        )
        self.children.append(bare)
        wait_port(port, bare.proc)
        request = proxy_request(self.plain_port, "Basic eDp5")
        base = await self._run_holds(
            bare_target(port, bare.pid, self.plain_port),
            py_load(port, request, connections=4, warmup_s=0, duration_s=2),
        )
        bare_nofile = open_files_limit(bare.pid)
        bare.stop()
        self.children.remove(bare)

        gate = start_gate(self.root / "gate-holds", self.ca[0], self.plain_port, self.tls_port)
        self.children.append(gate.child)
        hold = await self._run_holds(
            gate_target(gate),
            py_load(
                gate.proxy_port,
                proxy_request(self.plain_port, gate.agent_auth),
                connections=4,
                warmup_s=0,
                duration_s=2,
            ),
        )

        def released(h: HoldResult) -> str:
            text = f"{h.released_ok:,}"
            if h.released_other:
                text += "; instead: " + ", ".join(
                    f"{count} × {kind}" for kind, count in sorted(h.released_other.items())
                )
            if h.errors:
                text += f", {h.errors} client errors"
            return text

        def release_calls(h: HoldResult, gate_side: bool) -> str:
            if not gate_side:
                return "one `GET /__release` (sets one event)"
            if h.approvals_s <= 0:
                return "-"
            return (
                f"{h.approvals_s:.2f} s ({h.approved / h.approvals_s:,.0f} approvals/s; "
                f"{gate.release_mode})"
            )

        rows = []
        for label, fn in (
            ("held at once", lambda h, g: f"{h.held:,}"),
            (
                f"ramp (batches of {args.hold_batch} new connections)",
                lambda h, g: f"{h.ramp_s:.1f} s ({h.held / h.ramp_s:,.0f} holds/s)",
            ),
            (
                "VmRSS before → while holding",
                lambda h, g: f"{h.rss_before_kb / 1024:,.1f} → {h.rss_held_kb / 1024:,.1f} MiB",
            ),
            ("**memory per held request**", lambda h, g: f"**{h.kb_per_hold:.1f} KB**"),
            ("CPU while holding, no other traffic", lambda h, g: f"{h.cpu_while_holding:.2f}"),
            ("release calls (gate: the approval API)", release_calls),
            (
                "**first release call sent → last held response received**",
                lambda h, g: f"**{h.release_s:.2f} s**",
            ),
            ("answered with the upstream's 200", lambda h, g: released(h)),
        ):
            rows.append([label, fn(base, False), fn(hold, True)])
        rows.append(
            ["open-files limit of the process", bare_nofile, open_files_limit(gate.child.pid)]
        )
        out = [
            f"### {args.holds:,} concurrently held requests",
            "",
            "Gate: `X-Gate-Wait: true` on policy finance-high-risk, a fresh gate process. "
            "Baseline: bare mitmproxy (same engine and options) whose addon awaits one "
            "`asyncio.Event` in the request hook. Memory per hold = VmRSS delta / held.",
            "",
            md_table(["measure", "bare mitmproxy + hold addon", "gate"], rows),
            "",
        ]
        for name, h in (("bare", base), ("gate", hold)):
            if h.note:
                out += [f"Note ({name}): {h.note}", ""]
        self.targets.append(
            f"- ≤ {TARGET_HOLD_KB:.0f} KB per held request: "
            f"{verdict(hold.kb_per_hold <= TARGET_HOLD_KB)} ({hold.kb_per_hold:.1f} KB; bare "
            f"mitmproxy holding alone: {base.kb_per_hold:.1f} KB)"
        )
        all_released = hold.released_ok == hold.held == args.holds
        self.targets.append(
            f"- all {args.holds:,} released within {TARGET_RELEASE_S:.0f} s: "
            f"{verdict(all_released and hold.release_s <= TARGET_RELEASE_S)} "
            f"({hold.released_ok:,} of {args.holds:,} released with the upstream's answer, the "
            f"last response after {hold.release_s:.2f} s; bare mitmproxy releases its "
            f"{base.held:,} in {base.release_s:.2f} s)"
        )
        return out


async def main_async(args: argparse.Namespace) -> str:
    nofile = raise_nofile()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    out = [header("Proxy (bench/bench_proxy.py)")]
    out.append(f"- background: {background_load()}")
    out.append(f"- RLIMIT_NOFILE {nofile} (the hard limit) for this process and its children")
    root = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    bench = Bench(args, root)
    if not bench.have_wrk:
        out.append("- **wrk not found: the plain-HTTP throughput rows use the Python client**")
    loader = "wrk, 1 thread" if bench.have_wrk else "Python asyncio client"
    out.append(
        f"- throughput: {CONNECTIONS} keep-alive connections, POST of a {len(BODY)}-byte JSON "
        f"body, {args.duration:g} s per run after a {args.warmup:g} s warm-up, {args.rounds} "
        f"interleaved round(s); plain rows: {loader}; TLS rows: Python asyncio client (wrk "
        "cannot CONNECT)"
    )
    out.append("")
    try:
        bench.start()
        await bench.sanity()
        if "throughput" in parts:
            out += await bench.throughput()
        if "latency" in parts:
            out += await bench.latency()
        if "holds" in parts:
            out += await bench.holds()
        out += ["### Targets (issue #13)", "", *bench.targets]
        return "\n".join(out)
    finally:
        bench.stop()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short run (~1.5 min)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per throughput run (10, quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each run (2, quick 1)")
    parser.add_argument("--latency-requests", type=int, help="requests per latency run")
    parser.add_argument("--holds", type=int, help="held requests (default 10,000; quick 2,000)")
    parser.add_argument("--hold-batch", type=int, default=100, help="new connections per batch")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python client everywhere")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also measure `gate-proxy serve --workers N` (default 2; 1 leaves it out)",
    )
    parser.add_argument(
        "--no-bare-cached",
        dest="bare_cached",
        action="store_false",
        help="leave out bare mitmproxy with the gate's mitmproxy speedups",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure a gate run from another source tree (before/after in one run)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, ledgers)")
    parser.add_argument(
        "--parts",
        default="throughput,latency,holds",
        help="comma-separated subset of throughput,latency,holds (default: all)",
    )
    # Internal: the same file runs the upstream and bare-mitmproxy subprocesses.
    parser.add_argument("--role", choices=["upstream", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tls-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--certs-dir", help=argparse.SUPPRESS)
    parser.add_argument("--ca-bundle", help=argparse.SUPPRESS)
    parser.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mitmproxy-speedups", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "upstream":
        role_upstream(args)
        return
    if args.role == "bare":
        role_bare(args)
        return
    quick = args.quick
    args.rounds = max(1, min(args.rounds or (1 if quick else 3), 10))
    args.duration = max(1.0, min(args.duration or (3.0 if quick else 10.0), 120.0))
    warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.warmup = max(0.0, min(warmup, 30.0))
    args.latency_requests = max(100, min(args.latency_requests or (500 if quick else 2000), 50_000))
    args.holds = max(10, min(args.holds or (2000 if quick else 10_000), 15_000))
    args.hold_batch = max(1, min(args.hold_batch, 100))
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
