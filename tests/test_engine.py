"""ProxyEngine: embedding mitmproxy in our loop, interception, bind errors, keepalive.

All traffic stays on 127.0.0.1; every wait is bounded by a client timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from mitmproxy import http
from upstreams import Upstream, free_port

from gate_proxy.proxy import (
    CaFiles,
    Listener,
    ListenerBindError,
    ProxyEngine,
    combined_trust_bundle,
    ensure_ca,
    keep_flow_alive,
)

TIMEOUT = httpx.Timeout(20.0)

MakeEngine = Callable[..., Awaitable[ProxyEngine]]


class AnswerSome:
    """Answers /answer* itself, records the listener each flow came through."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def request(self, flow: http.HTTPFlow) -> None:
        self.seen.append((type(flow.client_conn.proxy_mode).__name__, flow.request.path))
        if flow.request.path.startswith("/answer"):
            flow.response = http.Response.make(
                200, b"from-gate", {"content-type": "text/plain", "x-gate": "1"}
            )


@pytest.fixture
def gate_ca(tmp_path: Path) -> CaFiles:
    return ensure_ca(tmp_path / "gate-ca")


@pytest.fixture
def client_ssl(gate_ca: CaFiles) -> ssl.SSLContext:
    # Trust ONLY the gate CA: a successful TLS request proves it was intercepted.
    return ssl.create_default_context(cafile=str(gate_ca.cert_path))


@pytest.fixture
async def make_engine(gate_ca: CaFiles) -> AsyncIterator[MakeEngine]:
    started: list[ProxyEngine] = []

    async def make(**kw: Any) -> ProxyEngine:
        kw.setdefault("confdir", gate_ca.certs_dir)
        kw.setdefault("listeners", [Listener("forward", "regular@127.0.0.1:0")])
        kw.setdefault("addons", [])
        engine = ProxyEngine(**kw)
        started.append(engine)
        await engine.start()
        return engine

    yield make
    for e in started:
        await e.stop()


def proxied(engine: ProxyEngine, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    port = engine.bound_ports["forward"]
    return httpx.AsyncClient(
        proxy=f"http://127.0.0.1:{port}", verify=verify, timeout=TIMEOUT, trust_env=False
    )


async def test_forward_plain_http_answered_and_passed(make_engine: MakeEngine) -> None:
    addon = AnswerSome()
    with Upstream() as up:
        engine = await make_engine(addons=[addon])
        assert set(engine.bound_ports) == {"forward"}
        async with proxied(engine) as c:
            r = await c.get(up.url + "/answer")
            assert (r.status_code, r.text, r.headers["x-gate"]) == (200, "from-gate", "1")
            # lazy connection strategy: an answered request never touches the upstream
            assert up.connections == []

            r = await c.post(up.url + "/pass?q=1", content=b"payload")
            assert r.status_code == 200
            echo = r.json()
            assert (echo["method"], echo["path"], echo["body"]) == ("POST", "/pass?q=1", "payload")
        assert [q.path for q in up.requests] == ["/pass?q=1"]
        assert addon.seen == [("RegularMode", "/answer"), ("RegularMode", "/pass?q=1")]


async def test_forward_tls_interception_with_combined_bundle(
    make_engine: MakeEngine, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    with Upstream(tls=True) as up:
        assert up.ca_cert_path is not None
        bundle = combined_trust_bundle(up.ca_cert_path, tmp_path / "bundles")
        engine = await make_engine(addons=[AnswerSome()], trusted_ca_bundle=bundle)
        async with proxied(engine, verify=client_ssl) as c:
            r = await c.get(up.url + "/answer")  # https://127.0.0.1: leaf needs an IP SAN
            assert r.text == "from-gate"
            assert up.connections == []  # not even TCP to the upstream

            r = await c.get(up.url + "/pass")
            assert r.status_code == 200 and r.json()["path"] == "/pass"
            r = await c.get(up.url_localhost + "/by-name")  # DNS SAN path too
            assert r.status_code == 200 and r.json()["path"] == "/by-name"
        assert [q.path for q in up.requests] == ["/pass", "/by-name"]


async def test_upstream_with_untrusted_ca_is_refused(
    make_engine: MakeEngine, client_ssl: ssl.SSLContext
) -> None:
    with Upstream(tls=True) as up:
        engine = await make_engine()  # no extra bundle: certifi only
        async with proxied(engine, verify=client_ssl) as c:
            r = await c.get(up.url + "/x")
        assert r.status_code == 502
        assert up.requests == []


async def test_reverse_and_forward_listeners_on_port_zero(make_engine: MakeEngine) -> None:
    addon = AnswerSome()
    with Upstream() as up:
        engine = await make_engine(
            addons=[addon],
            listeners=[
                Listener("forward", "regular@127.0.0.1:0"),
                Listener("reverse", f"reverse:http://127.0.0.1:{up.port}@127.0.0.1:0"),
            ],
        )
        ports = engine.bound_ports
        assert set(ports) == {"forward", "reverse"} and ports["forward"] != ports["reverse"]
        assert all(p > 0 for p in ports.values())
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as c:
            r = await c.get(f"http://127.0.0.1:{ports['reverse']}/via-reverse")
        assert r.json()["path"] == "/via-reverse"
        assert addon.seen == [("ReverseMode", "/via-reverse")]


async def test_non_http_bytes_in_connect_tunnel_are_not_relayed(make_engine: MakeEngine) -> None:
    # mitmproxy's default rawtcp=True would pipe these bytes to the upstream untouched,
    # past every HTTP hook. The engine turns it off.
    with Upstream() as up:
        engine = await make_engine()
        reader, writer = await asyncio.open_connection("127.0.0.1", engine.bound_ports["forward"])
        try:
            target = f"127.0.0.1:{up.port}"
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            writer.write(b"\x00\x01\x02not-http-at-all\n")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(100), 1.0)
        finally:
            writer.close()
        assert up.connections == []


async def test_bind_failure_raises_and_cleans_up(make_engine: MakeEngine) -> None:
    ok_port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        with pytest.raises(ListenerBindError) as ei:
            await make_engine(
                listeners=[
                    Listener("ok", f"regular@127.0.0.1:{ok_port}"),
                    Listener("taken", f"regular@127.0.0.1:{busy_port}"),
                ]
            )
    msg = str(ei.value)
    assert "'taken'" in msg and f"127.0.0.1:{busy_port}" in msg and "'ok'" not in msg
    # The listener that did bind was closed again...
    with socket.socket() as s:
        s.bind(("127.0.0.1", ok_port))
    # ...and the process can start another engine.
    engine = await make_engine(listeners=[Listener("forward", f"regular@127.0.0.1:{ok_port}")])
    assert engine.bound_ports == {"forward": ok_port}


async def test_duplicate_listener_address_is_a_bind_error(gate_ca: CaFiles) -> None:
    port = free_port()
    engine = ProxyEngine(
        listeners=[Listener("a", f"regular@127.0.0.1:{port}"), Listener("b", f"regular@{port}")],
        addons=[],
        confdir=gate_ca.certs_dir,
    )
    with pytest.raises(ListenerBindError, match="'a' and 'b'"):
        await engine.start()  # "regular@PORT" binds listen_host, which we default to loopback


async def test_one_engine_per_process(make_engine: MakeEngine, gate_ca: CaFiles) -> None:
    await make_engine()
    second = ProxyEngine(
        listeners=[Listener("forward", "regular@127.0.0.1:0")], addons=[], confdir=gate_ca.certs_dir
    )
    with pytest.raises(RuntimeError, match="another ProxyEngine"):
        await second.start()


async def test_restart_in_same_process_same_port(make_engine: MakeEngine) -> None:
    port = free_port()
    listeners = [Listener("forward", f"regular@127.0.0.1:{port}")]
    with Upstream() as up:
        for i in range(2):
            engine = await make_engine(listeners=listeners, addons=[AnswerSome()])
            async with proxied(engine) as c:
                assert (await c.get(f"{up.url}/round{i}")).status_code == 200
            await engine.stop()
            await engine.stop()  # idempotent
            assert engine.bound_ports == {}
        assert [q.path for q in up.requests] == ["/round0", "/round1"]


async def test_aiohttp_and_engine_share_the_loop(make_engine: MakeEngine) -> None:
    loop = asyncio.get_running_loop()
    factory_before = loop.get_task_factory()
    handler_before = loop.get_exception_handler()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.path})

    async def fanout(request: web.Request) -> web.Response:
        # Tasks created while mitmproxy's eager task factory is installed.
        async def child(i: int) -> int:
            await asyncio.sleep(0.01)
            return i * 2

        tasks = [asyncio.create_task(child(i)) for i in range(5)]
        return web.json_response({"sum": sum(await asyncio.gather(*tasks))})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"chunk{i};".encode())
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/fanout", fanout)
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api_port = runner.addresses[0][1]
    api = f"http://127.0.0.1:{api_port}"
    try:
        with Upstream() as up:
            engine = await make_engine(addons=[AnswerSome()])
            async with (
                httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as direct,
                proxied(engine) as via_gate,
            ):
                results = await asyncio.gather(
                    direct.get(api + "/hello"),
                    direct.get(api + "/fanout"),
                    direct.get(api + "/stream"),
                    via_gate.get(up.url + "/through"),
                    via_gate.get(api + "/hello"),  # the gate proxying to the API in-loop
                    via_gate.get(api + "/stream"),
                )
            hello_r, fanout_r, stream_r, up_r, gated_hello, gated_stream = results
            assert hello_r.json() == {"hello": "/hello"}
            assert fanout_r.json() == {"sum": 20}
            assert stream_r.text == "chunk0;chunk1;chunk2;"
            assert up_r.json()["path"] == "/through"
            assert gated_hello.json() == {"hello": "/hello"}
            assert gated_stream.text == "chunk0;chunk1;chunk2;"

            await engine.stop()
        # The master restores the loop it borrowed, and the API keeps serving.
        assert loop.get_task_factory() is factory_before
        assert loop.get_exception_handler() is handler_before
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as direct:
            assert (await direct.get(api + "/fanout")).json() == {"sum": 20}
    finally:
        await runner.cleanup()


class Holder:
    """Holds flows by path: /single-*: 7 s in `request`; /split-*: 3.5 s in `requestheaders`
    and again 3.5 s in `request`. *-keep uses keep_flow_alive, *-nokeep does not."""

    @staticmethod
    async def _hold(flow: http.HTTPFlow, seconds: float) -> None:
        if "-nokeep" in flow.request.path:
            await asyncio.sleep(seconds)
        else:
            with keep_flow_alive(flow):
                await asyncio.sleep(seconds)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.startswith("/split"):
            await self._hold(flow, 3.5)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.startswith("/split"):
            await self._hold(flow, 3.5)
        elif flow.request.path.startswith("/single"):
            await self._hold(flow, 7.0)


async def test_keepalive_holds_flow_past_tcp_timeout(make_engine: MakeEngine) -> None:
    with Upstream() as up:
        engine = await make_engine(addons=[Holder()], extra_options={"tcp_timeout": 3})

        async def fetch(path: str) -> httpx.Response | Exception:
            async with proxied(engine) as c:  # one connection per request
                try:
                    return await c.get(up.url + path)
                except httpx.HTTPError as e:
                    return e

        single_keep, split_keep, split_nokeep = await asyncio.gather(
            fetch("/single-keep"), fetch("/split-keep"), fetch("/split-nokeep")
        )

        assert isinstance(single_keep, httpx.Response), single_keep
        assert single_keep.json()["path"] == "/single-keep"
        assert isinstance(split_keep, httpx.Response), split_keep
        assert split_keep.json()["path"] == "/split-keep"
        # Control: mitmproxy's idle watchdog kills the connection during the second hold.
        assert isinstance(split_nokeep, (httpx.RemoteProtocolError, httpx.ReadError)), split_nokeep
        await asyncio.sleep(0.5)  # the killed flow's hook is still sleeping; let it finish
        assert sorted(q.path for q in up.requests) == ["/single-keep", "/split-keep"]


@pytest.mark.parametrize("extra", [{"no_such_option": 1}, {"body_size_limit": "lots"}])
async def test_bad_options_raise_value_error(gate_ca: CaFiles, extra: dict[str, Any]) -> None:
    engine = ProxyEngine(
        listeners=[Listener("forward", "regular@127.0.0.1:0")],
        addons=[],
        confdir=gate_ca.certs_dir,
        extra_options=extra,
    )
    with pytest.raises(ValueError, match="invalid proxy options"):
        await engine.start()
    assert not engine.running
