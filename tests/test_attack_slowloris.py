"""Slowloris: a client that never finishes its request head must not keep a connection open.

Three layers:

* tables: the setting and the addon option refuse what is not a finite positive timeout;
* in process: a real mitmproxy (``ProxyEngine``) with ``RequestHeaderTimeout`` on a manual
  clock, so no test waits out a timer: a dribbled head is closed at the deadline and not
  before, a held request and a websocket are never cut, keep-alive still works, and a
  CONNECT tunnel gets the same deadline for its first request;
* end to end: the real ``gate-proxy serve`` with ``request_header_timeout_s: 1``, attacked
  with raw sockets on the control API and both proxy listeners, checking what the upstream
  received. (A subprocess's clock cannot be injected: these wait about a second.)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web
from gate_process import GateProcess, running_gate
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow
from upstreams import Upstream

from gate_proxy.loaders.settings_file import load_settings
from gate_proxy.proxy import CaFiles, Listener, ProxyEngine, ensure_ca
from gate_proxy.proxy.addons.timeouts import OPTION, RequestHeaderTimeout
from gate_proxy.settings import SettingsError

TIMEOUT_S = 30.0  # in-process; the manual clock makes its length irrelevant to test time
E2E_TIMEOUT_S = 1.0
READ_S = 5.0  # bound on every real wait for bytes or EOF


# -- tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        (None, 30.0),
        ("1", 1.0),
        ("0.25", 0.25),
        ("45", 45.0),
        ("0", SettingsError),
        ("-1", SettingsError),
        (".nan", SettingsError),
        (".inf", SettingsError),
        ("soon", SettingsError),
    ],
)
def test_request_header_timeout_setting(
    tmp_path: Path, yaml_value: str | None, expected: float | type[Exception]
) -> None:
    if yaml_value is not None:
        (tmp_path / "gate.yaml").write_text(f"request_header_timeout_s: {yaml_value}\n")
    if isinstance(expected, float):
        assert load_settings(tmp_path, {}).request_header_timeout_s == expected
    else:
        with pytest.raises(expected):
            load_settings(tmp_path, {})


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (2.5, True),
        (0.0, True),  # off
        (600.0, True),
        (-1.0, False),
        (float("nan"), False),
        (float("inf"), False),
    ],
)
def test_addon_option_is_validated_in_configure(value: float, accepted: bool) -> None:
    addon = RequestHeaderTimeout(5.0)
    with taddons.context(addon) as tctx:
        if accepted:
            tctx.configure(addon, **{OPTION: value})
            assert addon.timeout_s == value
        else:
            with pytest.raises(exceptions.OptionsError):
                tctx.configure(addon, **{OPTION: value})
            assert addon.timeout_s == 5.0  # the last good value stays


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf")])
def test_addon_constructor_refuses_a_bad_timeout(value: float) -> None:
    with pytest.raises(ValueError):
        RequestHeaderTimeout(value)


# -- in process: a real mitmproxy on a manual clock -------------------------------------------


@dataclass
class _ManualTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class ManualClock:
    """Stands in for ``loop.call_later``: timers fire only when the test advances time."""

    now: float = 0.0
    timers: list[_ManualTimer] = field(default_factory=list)

    def schedule(self, delay: float, callback: Callable[[], None]) -> _ManualTimer:
        timer = _ManualTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> int:
        return sum(not t.cancelled for t in self.timers)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if not t.cancelled and t.when <= self.now]
        self.timers = [t for t in self.timers if not t.cancelled and t.when > self.now]
        for timer in sorted(due, key=lambda t: t.when):
            timer.callback()


async def test_a_failing_hook_stands_down_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mitmproxy only logs an addon's exception; ours must log it too and stop guarding
    that connection, never leave a deadline that could cut a request it lost track of."""
    clock = ManualClock()
    addon = RequestHeaderTimeout(TIMEOUT_S, schedule=clock.schedule)
    flow = tflow.tflow()
    with taddons.context(addon):
        addon.client_connected(flow.client_conn)
        assert clock.pending() == 1
        broken = SimpleNamespace(client_conn=flow.client_conn)  # no flow id: the hook fails
        with caplog.at_level(logging.ERROR, logger="gate.proxy"):
            addon.requestheaders(broken)  # type: ignore[arg-type]
        assert clock.pending() == 0
        assert any(r.__dict__.get("event") == "hook_failed" for r in caplog.records)
        addon.response(flow)  # a later exchange does not re-arm it
        assert clock.pending() == 0


class Holder:
    """Holds /hold* inside a hook until released, as X-Gate-Wait does."""

    def __init__(self) -> None:
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.startswith("/hold"):
            self.holding.set()
            await self.release.wait()


class HoldInRequest(Holder):
    async def request(self, flow: http.HTTPFlow) -> None:
        await self.hold(flow)


class HoldInRequestHeaders(Holder):
    """Registered before the timeout addon, it delays that addon's own requestheaders hook
    (addons run in sequence)."""

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        await self.hold(flow)


@dataclass
class Proxy:
    port: int
    clock: ManualClock
    addon: RequestHeaderTimeout


async def until(condition: Callable[[], bool], timeout: float = READ_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def gate_ca(tmp_path: Path) -> CaFiles:
    return ensure_ca(tmp_path / "gate-ca")


@pytest.fixture
async def start_proxy(gate_ca: CaFiles) -> AsyncIterator[Callable[..., Any]]:
    engines: list[ProxyEngine] = []

    async def start(*, before: Sequence[object] = (), after: Sequence[object] = ()) -> Proxy:
        clock = ManualClock()
        addon = RequestHeaderTimeout(TIMEOUT_S, schedule=clock.schedule)
        engine = ProxyEngine(
            listeners=[Listener("forward", "regular@127.0.0.1:0")],
            addons=[*before, addon, *after],
            confdir=gate_ca.certs_dir,
        )
        engines.append(engine)
        await engine.start()
        return Proxy(engine.bound_ports["forward"], clock, addon)

    yield start
    for engine in engines:
        await engine.stop()


async def _connect(proxy: Proxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    armed = proxy.clock.pending()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    await until(lambda: proxy.clock.pending() > armed)  # the addon saw the connection
    return reader, writer


async def _is_closed(reader: asyncio.StreamReader, wait: float = READ_S) -> bool:
    """True once the proxy closed the connection (EOF or reset) within ``wait`` seconds."""
    try:
        async with asyncio.timeout(wait):
            while True:
                if not await reader.read(4096):
                    return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def _still_open(reader: asyncio.StreamReader) -> bool:
    return not await _is_closed(reader, wait=0.2)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str, host: str
) -> bytes:
    writer.write(f"GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(READ_S):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    return head


async def test_a_head_dribbled_byte_by_byte_is_closed_at_the_deadline(
    start_proxy: Callable[..., Any],
) -> None:
    with Upstream() as up:
        proxy = await start_proxy()
        reader, writer = await _connect(proxy)
        head = f"GET {up.url}/never HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\n".encode()
        for byte in head[:29]:  # one byte a second: every byte is activity, none resets the clock
            writer.write(bytes([byte]))
            await writer.drain()
            proxy.clock.advance(1.0)
        assert await _still_open(reader)  # 29 s: not yet
        proxy.clock.advance(1.0)
        assert await _is_closed(reader)
        writer.close()
    assert up.requests == []


async def test_a_silent_connection_is_closed_and_many_are_all_closed(
    start_proxy: Callable[..., Any],
) -> None:
    proxy = await start_proxy()
    connections = [await _connect(proxy) for _ in range(60)]
    proxy.clock.advance(TIMEOUT_S)
    closed = [await _is_closed(reader) for reader, _ in connections]
    assert all(closed)
    for _, writer in connections:
        writer.close()


async def test_keep_alive_works_and_an_idle_keep_alive_connection_is_bounded(
    start_proxy: Callable[..., Any],
) -> None:
    with Upstream() as up:
        proxy = await start_proxy()
        reader, writer = await _connect(proxy)
        host = f"127.0.0.1:{up.port}"
        for i in range(3):
            head = await _exchange(reader, writer, f"{up.url}/ka{i}", host)
            assert head.startswith(b"HTTP/1.1 200")
            proxy.clock.advance(TIMEOUT_S - 1)  # idle, but under the limit
            assert await _still_open(reader)
        proxy.clock.advance(1.0)
        assert await _is_closed(reader)
        writer.close()
    assert [r.path for r in up.requests] == ["/ka0", "/ka1", "/ka2"]


@pytest.mark.parametrize("hold", [HoldInRequest, HoldInRequestHeaders])
async def test_a_held_request_is_never_cut(
    start_proxy: Callable[..., Any], hold: type[Holder]
) -> None:
    holder = hold()
    with Upstream() as up:
        # HoldInRequestHeaders runs before the timeout addon, so the addon does not know yet
        # that a request is in progress: the check of running hooks must keep it open.
        proxy = await (
            start_proxy(before=[holder])
            if hold is HoldInRequestHeaders
            else start_proxy(after=[holder])
        )
        reader, writer = await _connect(proxy)
        writer.write(f"GET {up.url}/hold HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\n\r\n".encode())
        await writer.drain()
        await asyncio.wait_for(holder.holding.wait(), READ_S)
        for _ in range(10):  # ten minutes of held time
            proxy.clock.advance(60.0)
        assert await _still_open(reader)
        holder.release.set()
        async with asyncio.timeout(READ_S):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
    assert [r.path for r in up.requests] == ["/hold"]


@pytest.fixture
async def gated_upstream() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """An upstream that sends its response head, then waits for the test before the body."""
    finish = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"first ")
        await finish.wait()
        await response.write(b"last")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1], finish
    finish.set()
    await runner.cleanup()


@pytest.mark.parametrize("slow_part", ["request body", "upstream response"])
async def test_a_request_in_progress_is_never_cut_between_hooks(
    start_proxy: Callable[..., Any],
    gated_upstream: tuple[int, asyncio.Event],
    slow_part: str,
) -> None:
    """No hook runs while a body trickles in, or while the upstream takes its time: only the
    exchange tracking keeps these open."""
    port, finish = gated_upstream
    proxy = await start_proxy()
    reader, writer = await _connect(proxy)
    writer.write(
        f"POST http://127.0.0.1:{port}/slow HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Length: 10\r\n\r\n01234".encode()
    )
    await writer.drain()
    if slow_part == "upstream response":
        writer.write(b"56789")
        await writer.drain()
    await until(lambda: proxy.clock.pending() == 0)  # the head arrived: no deadline now
    for _ in range(10):
        proxy.clock.advance(60.0)
    assert await _still_open(reader)
    if slow_part == "request body":
        writer.write(b"56789")
        await writer.drain()
    finish.set()
    async with asyncio.timeout(READ_S):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_a_connect_tunnel_gets_the_same_deadline_for_its_first_request(
    start_proxy: Callable[..., Any],
) -> None:
    with Upstream() as up:
        proxy = await start_proxy()
        target = f"127.0.0.1:{up.port}"
        connect = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()

        silent_reader, silent = await _connect(proxy)
        silent.write(connect)
        await silent.drain()
        async with asyncio.timeout(READ_S):
            assert (await silent_reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")

        prompt_reader, prompt = await _connect(proxy)
        prompt.write(connect)
        await prompt.drain()
        async with asyncio.timeout(READ_S):
            assert (await prompt_reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        proxy.clock.advance(TIMEOUT_S - 1)
        head = await _exchange(prompt_reader, prompt, "/in-tunnel", target)
        assert head.startswith(b"HTTP/1.1 200")

        proxy.clock.advance(1.0)  # the silent tunnel's deadline; the other one just answered
        assert await _is_closed(silent_reader)
        assert await _still_open(prompt_reader)
        silent.close()
        prompt.close()
    assert [r.path for r in up.requests] == ["/in-tunnel"]


async def start_ws_echo() -> tuple[web.AppRunner, int]:
    """A websocket echo server on 127.0.0.1 (path /ws); returns its runner and port."""

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"echo:{message.data}")
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def ws_echo() -> AsyncIterator[int]:
    runner, port = await start_ws_echo()
    yield port
    await runner.cleanup()


def _ws_upgrade(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET http://127.0.0.1:{port}/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _ws_text_frame(text: str) -> bytes:
    payload, mask = text.encode(), os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def test_a_websocket_is_not_closed_after_the_upgrade(
    start_proxy: Callable[..., Any], ws_echo: int
) -> None:
    proxy = await start_proxy()
    reader, writer = await _connect(proxy)
    writer.write(_ws_upgrade(ws_echo))
    await writer.drain()
    async with asyncio.timeout(READ_S):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    for _ in range(10):
        proxy.clock.advance(60.0)
    assert await _still_open(reader)
    writer.write(_ws_text_frame("still here"))
    await writer.drain()
    async with asyncio.timeout(READ_S):
        header = await reader.readexactly(2)
        assert (await reader.readexactly(header[1] & 0x7F)).decode() == "echo:still here"
    writer.close()


# -- end to end: the real gate -----------------------------------------------------------------

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\nexpiry_minutes: 15\n",
    "open": "id: open\nrequire_approval: never\n",
}


def _destinations(port: int) -> str:
    return f"""
default:
  action: block
"127.0.0.1:{port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
    /read: {{method: GET, passthrough: true}}
routes:
  - prefix: /up/
    upstream: http://127.0.0.1:{port}/
"""


@dataclass
class Env:
    gate: GateProcess
    upstream: Upstream
    agent: dict[str, Any]

    def port(self, listener: str) -> int:
        return {
            "api": self.gate.port,
            "forward": self.gate.proxy_port,
            "reverse": self.gate.reverse_port,
        }[listener]

    @property
    def proxy_auth(self) -> str:
        token = f"{self.agent['agentId']}:{self.agent['apiKey']}"
        return "Basic " + base64.b64encode(token.encode()).decode()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("slowloris")
    with Upstream() as upstream:
        config = {
            "destinations.yaml": _destinations(upstream.port),
            "gate.yaml": f"request_header_timeout_s: {E2E_TIMEOUT_S}\n",
        }
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream, gate.register("slow-agent"))


def _closed_by_peer(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def _dribble_until_closed(sock: socket.socket, data: bytes, interval: float = 0.1) -> float | None:
    """Send ``data`` one byte per ``interval``; the seconds until the peer closed, or None if
    it never did (all of ``data`` was sent)."""
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        if _closed_by_peer(sock, interval):
            return time.monotonic() - started
    return None


@pytest.mark.parametrize("listener", ["api", "forward", "reverse"])
def test_a_slow_partial_head_is_cut_off(env: Env, listener: str) -> None:
    before = len(env.upstream.requests)
    target = (
        "/health"
        if listener == "api"
        else f"http://127.0.0.1:{env.upstream.port}/read"
        if listener == "forward"
        else "/up/read"
    )
    # 100 bytes at 10 a second: 10 s if nobody cuts it off, ten times the timeout.
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".encode().ljust(100, b"a")
    with socket.create_connection(("127.0.0.1", env.port(listener)), timeout=READ_S) as sock:
        elapsed = _dribble_until_closed(sock, head)
    assert elapsed is not None, f"{listener}: the slow head was never cut off"
    assert E2E_TIMEOUT_S * 0.8 < elapsed < E2E_TIMEOUT_S + 3
    assert len(env.upstream.requests) == before


def test_many_idle_connections_on_every_listener_are_closed(env: Env) -> None:
    sockets = [
        socket.create_connection(("127.0.0.1", env.port(listener)), timeout=READ_S)
        for listener in ("api", "forward", "reverse")
        for _ in range(60)
    ]
    try:
        deadline = time.monotonic() + E2E_TIMEOUT_S + 5
        still_open = list(sockets)
        while still_open and time.monotonic() < deadline:
            still_open = [s for s in still_open if not _closed_by_peer(s, 0.01)]
            time.sleep(0.1)
        assert still_open == []
    finally:
        for sock in sockets:
            sock.close()


def test_a_silent_connect_tunnel_is_closed(env: Env) -> None:
    target = f"127.0.0.1:{env.upstream.port}"
    with socket.create_connection(("127.0.0.1", env.gate.proxy_port), timeout=READ_S) as sock:
        sock.sendall(
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
            f"Proxy-Authorization: {env.proxy_auth}\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _closed_by_peer(sock, E2E_TIMEOUT_S + 5)
        assert time.monotonic() - started < E2E_TIMEOUT_S + 3


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(READ_S)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


@pytest.mark.parametrize("listener", ["api", "forward"])
def test_a_keep_alive_client_still_works(env: Env, listener: str) -> None:
    marker = f"ka-{time.monotonic_ns()}"
    with socket.create_connection(("127.0.0.1", env.port(listener)), timeout=READ_S) as sock:
        for i in range(3):
            if listener == "api":
                request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            else:
                request = (
                    f"GET http://127.0.0.1:{env.upstream.port}/read?{marker}-{i} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{env.upstream.port}\r\n"
                    f"Proxy-Authorization: {env.proxy_auth}\r\n\r\n"
                )
            sock.sendall(request.encode())
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(E2E_TIMEOUT_S * 0.5)  # idle between requests, under the limit
    if listener == "forward":
        seen = [r.path for r in env.upstream.requests if marker in r.path]
        assert seen == [f"/read?{marker}-{i}" for i in range(3)]


def test_a_held_request_outlives_the_header_timeout(env: Env) -> None:
    marker = f"held-{time.monotonic_ns()}"
    proxy = f"http://{env.agent['agentId']}:{env.agent['apiKey']}@127.0.0.1:{env.gate.proxy_port}"
    results: list[Any] = []

    def send() -> None:
        try:
            with httpx.Client(proxy=proxy, timeout=30) as client:
                results.append(
                    client.post(
                        f"{env.upstream.url}/v1/refunds",
                        json={"m": marker},
                        headers={"X-Gate-Wait": "true"},
                    )
                )
        except httpx.HTTPError as exc:
            results.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    with env.gate.admin() as admin:
        deadline = time.monotonic() + 10
        held: list[dict[str, Any]] = []
        while not held and time.monotonic() < deadline:
            held = [
                h
                for h in admin.get("/v1/proxy/held").json()["held"]
                if h["agentId"] == env.agent["agentId"]
            ]
            time.sleep(0.05)
        assert held, "the request was never held"
        time.sleep(E2E_TIMEOUT_S * 2.5)  # held well past the header timeout
        assert thread.is_alive() and not results
        approved = admin.post(f"/v1/intents/{held[0]['intentId']}/approve", json={})
        assert approved.status_code == 200, approved.text
    thread.join(timeout=20)
    assert results and not isinstance(results[0], Exception), results
    assert results[0].status_code == 200
    assert [r for r in env.upstream.requests if marker.encode() in r.body]


@pytest.fixture
def ws_echo_thread() -> Iterator[int]:
    """The same echo server in its own thread, for the subprocess gate to reach."""
    loop = asyncio.new_event_loop()
    started: list[tuple[web.AppRunner, int]] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        started.append(loop.run_until_complete(start_ws_echo()))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(started[0][0].cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield started[0][1]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def test_a_websocket_idle_past_the_timeout_survives(tmp_path: Path, ws_echo_thread: int) -> None:
    from test_websocket import _handshake, _receive_text, _send_text, _tunnel

    ws_port = ws_echo_thread
    config = {
        "destinations.yaml": f'"127.0.0.1:{ws_port}":\n  paths:\n'
        "    /ws: {method: GET, destination: chat.ws, policy: open}\n",
        "gate.yaml": f"request_header_timeout_s: {E2E_TIMEOUT_S}\n",
    }
    with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("ws-agent")
        with _tunnel(gate.proxy_port, ws_port, agent["agentId"], agent["apiKey"]) as sock:
            assert _handshake(sock, ws_port, "/ws").startswith(b"HTTP/1.1 101")
            time.sleep(E2E_TIMEOUT_S * 2.5)  # idle after the upgrade
            _send_text(sock, "late")
            sock.settimeout(READ_S)
            assert _receive_text(sock) == "echo:late"
