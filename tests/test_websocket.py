"""A websocket handshake through the gate is governed like any request."""

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from gate_process import running_gate
from upstreams import free_port

POLICIES = {
    "auto": "id: auto\nrequire_approval: never\n",
    "manual": "id: manual\nrequire_approval: always\n",
}


@pytest.fixture
def ws_upstream() -> Iterator[int]:
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"echo:{message.data}")
        return ws

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/ws", echo)
        app.router.add_get("/ws-manual", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    yield port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def _tunnel(proxy_port: int, target_port: int, user: str, key: str) -> socket.socket:
    """Open a CONNECT tunnel, as browsers do for ws:// through a proxy."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    sock.sendall(
        f"CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\nHost: 127.0.0.1:{target_port}\r\n"
        f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
    )
    assert _read_head(sock).startswith(b"HTTP/1.1 200")
    return sock


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _handshake(sock: socket.socket, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return _read_head(sock)


def _send_text(sock: socket.socket, text: str) -> None:
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def _receive_text(sock: socket.socket) -> str:
    header = sock.recv(2)
    length = header[1] & 0x7F
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    return data.decode()


def test_websocket_handshake_is_governed(tmp_path: Path, ws_upstream: int) -> None:
    config = {
        "destinations.yaml": f"""
"127.0.0.1:{ws_upstream}":
  paths:
    /ws: {{method: GET, destination: chat.ws, policy: auto}}
    /ws-manual: {{method: GET, destination: chat.ws, policy: manual}}
"""
    }
    with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("ws-agent")
        with _tunnel(gate.proxy_port, ws_upstream, agent["agentId"], agent["apiKey"]) as sock:
            accepted = _handshake(sock, ws_upstream, "/ws")
            _send_text(sock, "hello")
            reply = _receive_text(sock)
        with _tunnel(gate.proxy_port, ws_upstream, agent["agentId"], agent["apiKey"]) as sock:
            pending = _handshake(sock, ws_upstream, "/ws-manual")
    assert accepted.startswith(b"HTTP/1.1 101")
    assert reply == "echo:hello"
    assert pending.startswith(b"HTTP/1.1 202")  # the handshake waits for a human
    assert b"X-Gate-Intent-Id" in pending
