"""SSRF-safe egress: the address table, the resolver edge, DNS rebinding, the proxy, end to end.

All traffic stays on 127.0.0.1. Public addresses appear only as answers of a fake
resolver; whenever one would be connected to, a test addon stops the connection in
`server_connect` first, so nothing ever leaves this machine.
"""

import asyncio
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow
from upstreams import Upstream

from gate_proxy.core.egress import (
    Listener,
    check_addresses,
    classify,
    parse_allow,
    parse_host_address,
    parse_ipv4_any,
)
from gate_proxy.egress_resolver import EgressResolver, allow_from_settings, own_listeners
from gate_proxy.metrics import GateMetrics
from gate_proxy.proxy import CaFiles, ProxyEngine, ensure_ca
from gate_proxy.proxy import Listener as ProxyListener
from gate_proxy.proxy.addons.egress import EgressGuard
from gate_proxy.settings import Settings

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
NO_ALLOW = parse_allow([])

# -- the address table ------------------------------------------------------------------------

DENIED = [
    # IPv4 ranges
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link_local"),  # cloud metadata
    ("169.254.0.1", "link_local"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.254", "cgnat"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.170", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("198.51.100.1", "reserved"),
    ("203.0.113.1", "reserved"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "unique_local"),
    ("fd12:3456:789a::1", "unique_local"),
    ("fe80::1", "link_local"),
    ("fe80::1%eth0", "link_local"),
    ("fec0::1", "site_local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "reserved"),
    ("100::1", "reserved"),
    ("64:ff9b:1::1", "reserved"),
    ("4000::1", "reserved"),  # outside global unicast 2000::/3
    # IPv4 embedded in IPv6: the IPv4 address is classified
    ("::ffff:127.0.0.1", "loopback"),  # mapped
    ("::ffff:7f00:1", "loopback"),  # mapped, hex spelling
    ("::ffff:169.254.169.254", "link_local"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),  # compatible
    ("::10.0.0.1", "private"),
    ("64:ff9b::127.0.0.1", "loopback"),  # NAT64
    ("64:ff9b::a9fe:a9fe", "link_local"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
    ("2001:0:c0a8:0101::1", "private"),  # Teredo server 192.168.1.1
    # deprecated transition forms are denied even around a public IPv4 address
    ("::8.8.8.8", "deprecated_transition"),
    ("2002:808:808::1", "deprecated_transition"),
    ("2001:0:808:808::f7f7:fbfb", "deprecated_transition"),  # Teredo, public v4s
    # IPv4-translated ::ffff:0:a.b.c.d (SIIT), not the mapped ::ffff:a.b.c.d
    ("::ffff:0:a9fe:a9fe", "link_local"),
    ("::ffff:0:7f00:1", "loopback"),
    ("::ffff:0:808:808", "deprecated_transition"),
    # local-use NAT64 64:ff9b:1::/48: the operator's own translator, always denied
    ("64:ff9b:1::a9fe:a9fe", "link_local"),
    ("64:ff9b:1::808:808", "local_nat64"),
]


@pytest.mark.parametrize(("address", "reason"), DENIED)
def test_denied_addresses(address: str, reason: str) -> None:
    assert classify(address) == reason
    verdict = check_addresses([address], NO_ALLOW, port=443)
    assert (verdict.allowed, verdict.reason) == (False, reason)


# What webhooks accepted when they trusted ipaddress.is_global (security issue 9, item 14).
IS_GLOBAL_LIES = [
    ("64:ff9b::a9fe:a9fe", "link_local", "nat64 embeds 169.254.169.254"),
    ("64:ff9b::7f00:1", "loopback", "nat64 embeds 127.0.0.1"),
    ("::169.254.169.254", "link_local", "ipv4_compatible embeds 169.254.169.254"),
    ("::ffff:0:a9fe:a9fe", "link_local", "ipv4_translated embeds 169.254.169.254"),
    ("::127.0.0.1", "loopback", "ipv4_compatible embeds 127.0.0.1"),
    ("fec0::1", "site_local", ""),
]


@pytest.mark.parametrize(("address", "reason", "detail"), IS_GLOBAL_LIES)
def test_addresses_python_calls_global_are_denied_with_the_embedded_reason(
    address: str, reason: str, detail: str
) -> None:
    assert ipaddress.ip_address(address).is_global  # why the table does not use it
    verdict = check_addresses([address], NO_ALLOW, port=80)
    canonical = str(ipaddress.ip_address(address))  # ::169.254.169.254 is ::a9fe:a9fe
    assert (verdict.allowed, verdict.reason, verdict.address) == (False, reason, canonical)
    assert verdict.detail.startswith(detail)
    if "169.254.169.254" in detail:
        assert "cloud metadata" in verdict.message


ALLOWED = [
    PUBLIC_V4,
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.32.0.1",  # just above RFC 1918's 172.16/12
    "192.88.98.1",
    PUBLIC_V6,
    "2606:4700::1111",
    "::ffff:8.8.8.8",  # mapped public IPv4
    "64:ff9b::808:808",  # NAT64 of a public IPv4 host
]


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed_addresses(address: str) -> None:
    assert classify(address) is None
    assert check_addresses([address], NO_ALLOW, port=443).allowed


SPELLINGS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # decimal
    ("0177.0.0.1", "127.0.0.1"),  # octal
    ("0177.0000.0000.0001", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),  # hex, short
    ("0x7F000001", "127.0.0.1"),
    ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),  # short
    ("127.0.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),
    ("10.1", "10.0.0.1"),
    ("0", "0.0.0.0"),
    ("127.0.0.1.", "127.0.0.1"),  # trailing dot
    ("[::1]", "::1"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),
]


@pytest.mark.parametrize(("host", "address"), SPELLINGS)
def test_ipv4_spellings_are_read_like_inet_aton(host: str, address: str) -> None:
    assert parse_host_address(host) == ipaddress.ip_address(address)
    assert not check_addresses([parse_host_address(host)], NO_ALLOW).allowed  # type: ignore[list-item]


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "0x", "08.1.1.1", "256.1.1.1", "1.2.3.256", "1e3", ""]
)
def test_names_and_invalid_spellings_are_not_literals(host: str) -> None:
    assert parse_ipv4_any(host) is None or host == ""


def test_one_denied_answer_denies_the_destination() -> None:
    verdict = check_addresses([PUBLIC_V4, "127.0.0.1"], NO_ALLOW, host="x.test", port=80)
    assert (verdict.allowed, verdict.reason, verdict.address) == (False, "loopback", "127.0.0.1")
    assert not check_addresses([], NO_ALLOW).allowed  # nothing resolved: denied


def test_allowed_addresses_come_back_ipv4_first() -> None:
    verdict = check_addresses([PUBLIC_V6, PUBLIC_V4, PUBLIC_V4], NO_ALLOW)
    assert verdict.addresses == (PUBLIC_V4, PUBLIC_V6)


def test_allowlist_by_cidr_and_by_host_name() -> None:
    allow = parse_allow(["10.0.0.0/8", "127.0.0.1", "::1/128", "db.internal", "*.corp.example"])
    assert check_addresses(["10.1.2.3"], allow).allowed
    assert check_addresses(["127.0.0.1"], allow).allowed
    assert check_addresses(["::ffff:127.0.0.1"], allow).allowed  # mapped form of an allowed IP
    assert check_addresses(["::1"], allow).allowed
    assert not check_addresses(["127.0.0.2"], allow).allowed
    assert not check_addresses(["192.168.0.1"], allow).allowed
    assert check_addresses(["192.168.0.1"], allow, host="db.internal").allowed
    assert check_addresses(["192.168.0.1"], allow, host="DB.Internal.").allowed
    assert check_addresses(["192.168.0.1"], allow, host="a.b.corp.example").allowed
    assert not check_addresses(["192.168.0.1"], allow, host="corp.example").allowed
    assert not check_addresses(["192.168.0.1"], allow, host="evilcorp.example").allowed


def test_own_listeners_are_denied_even_when_allowlisted() -> None:
    listeners = own_listeners("127.0.0.1", [4000, 4001])
    allow = parse_allow(["127.0.0.0/8", "0.0.0.0/0"], listeners=listeners)
    denied = check_addresses(["127.0.0.1"], allow, port=4001)
    assert (denied.allowed, denied.reason) == (False, "own_listener")
    assert not check_addresses(["0.0.0.0"], allow, port=4000).allowed  # 0.0.0.0 is local
    assert not check_addresses(["::ffff:127.0.0.1"], allow, port=4000).allowed
    assert check_addresses(["127.0.0.1"], allow, port=4002).allowed


def test_wildcard_bind_denies_loopback_and_unspecified_on_its_ports() -> None:
    listeners = own_listeners("0.0.0.0", [4001])
    networks = {lst.network for lst in listeners}
    assert ipaddress.ip_network("127.0.0.0/8") in networks
    assert ipaddress.ip_network("::1/128") in networks
    assert ipaddress.ip_network("0.0.0.0/32") in networks


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host!", "1.2.3", "a..b", "*", ""])
def test_bad_allowlist_entries_are_errors(entry: str) -> None:
    with pytest.raises(ValueError, match="egress_allow"):
        parse_allow([entry])


def test_disabled_check_allows_everything_but_still_knows_listeners() -> None:
    allow = parse_allow([], listeners=[Listener(ipaddress.ip_network("127.0.0.1/32"), 1)],
                        enabled=False)  # fmt: skip
    assert check_addresses(["127.0.0.1"], allow, port=80).allowed
    assert not check_addresses(["127.0.0.1"], allow, port=1).allowed


# -- the resolver edge ------------------------------------------------------------------------


class FakeDns:
    """A resolver that answers from a script, one answer per call (the last one repeats)."""

    def __init__(self, *answers: Sequence[str] | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_resolver_checks_every_answer_once() -> None:
    dns = FakeDns([PUBLIC_V4, "127.0.0.1"])
    verdict = await EgressResolver(NO_ALLOW, dns).check("rebind.test", 80)
    assert (verdict.allowed, verdict.reason) == (False, "loopback")
    assert dns.calls == [("rebind.test", 80)]


async def test_literal_hosts_never_reach_dns() -> None:
    dns = FakeDns([PUBLIC_V4])
    resolver = EgressResolver(NO_ALLOW, dns)
    for host in ("2130706433", "0x7f.1", "127.1", "[::ffff:7f00:1]"):
        assert not (await resolver.check(host, 80)).allowed
    assert (await resolver.check(PUBLIC_V4, 80)).addresses == (PUBLIC_V4,)
    assert dns.calls == []


async def test_resolution_errors_and_timeouts_deny() -> None:
    assert (await EgressResolver(NO_ALLOW, FakeDns(OSError("nx"))).check("x.test", 80)).reason == (
        "unresolvable"
    )

    async def hang(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(10)
        return [PUBLIC_V4]

    verdict = await EgressResolver(NO_ALLOW, hang, timeout_s=0.05).check("x.test", 80)
    assert (verdict.allowed, verdict.reason) == (False, "unresolvable")


def test_check_literal_needs_no_dns_and_leaves_names_alone() -> None:
    dns = FakeDns([PUBLIC_V4])
    resolver = EgressResolver(NO_ALLOW, dns)
    denied = resolver.check_literal("[64:ff9b::a9fe:a9fe]", 80)
    assert denied is not None and (denied.allowed, denied.reason) == (False, "link_local")
    allowed = resolver.check_literal("0x08.8.8.8", 80)
    assert allowed is not None and allowed.addresses == ("8.8.8.8",)
    assert resolver.check_literal("example.test", 80) is None
    assert dns.calls == []


def test_allow_from_settings_adds_extra_entries_and_can_ignore_the_off_switch() -> None:
    settings = Settings(port=4100, egress_allow=["10.0.0.0/8"], egress_check=False)
    allow = allow_from_settings(settings, extra_allow=["192.168.0.0/16"], always_check=True)
    assert allow.enabled
    assert check_addresses(["10.1.1.1"], allow, port=80).allowed
    assert check_addresses(["192.168.1.1"], allow, port=80).allowed
    assert not check_addresses(["127.0.0.1"], allow, port=80).allowed
    assert not allow_from_settings(settings).enabled  # the proxy's own reading is unchanged
    with pytest.raises(ValueError, match="egress_allow"):
        allow_from_settings(Settings(), extra_allow=["not a host!"])


def test_resolver_from_settings_reads_allowlist_and_ports() -> None:
    settings = Settings(port=4100, proxy_port=4101, reverse_port=4102, egress_allow=["::1/128"])
    resolver = EgressResolver.from_settings(settings)
    assert resolver.enabled
    assert {lst.port for lst in resolver.allow.listeners} == {4100, 4101, 4102}
    with pytest.raises(ValueError):
        EgressResolver.from_settings(Settings(egress_allow=["10.0.0.0/99"]))
    assert not EgressResolver.from_settings(Settings(egress_check=False)).enabled


# -- the addon: DNS rebinding -----------------------------------------------------------------


def runtime() -> SimpleNamespace:
    return SimpleNamespace(settings=Settings(), usecases=SimpleNamespace(metrics=GateMetrics()))


def flow_to(host: str, port: int) -> Any:
    flow = tflow.tflow()
    flow.request.host, flow.request.port = host, port
    return flow


def connect_data(flow: Any, host: str, port: int) -> ServerConnectionHookData:
    server = tflow.tserver_conn()
    server.address, server.via, server.error = (host, port), None, None
    return ServerConnectionHookData(server=server, client=flow.client_conn)


async def test_rebinding_answer_is_never_used_the_checked_address_is() -> None:
    """First answer public, every later answer 127.0.0.1: the connection goes to the
    address that was checked, and DNS is asked exactly once."""
    dns = FakeDns([PUBLIC_V4], ["127.0.0.1"])
    guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns))
    flow = flow_to("rebind.test", 80)
    await guard.request(flow)
    assert flow.response is None  # allowed
    data = connect_data(flow, "rebind.test", 80)
    await guard.server_connect(data)
    assert data.server.error is None
    # The address keeps the name (mitmproxy reuses connections by it); the resolution the
    # socket layer does next, in this task, answers the checked address only.
    assert data.server.address == ("rebind.test", 80)
    infos = await asyncio.get_running_loop().getaddrinfo("rebind.test", 80)
    assert [info[4][:2] for info in infos] == [(PUBLIC_V4, 80)]
    assert len(dns.calls) == 1


async def test_pinned_resolution_is_confined_to_the_connecting_task() -> None:
    dns = FakeDns([PUBLIC_V4], ["127.0.0.1"])
    guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns))
    flow = flow_to("localhost", 80)
    await guard.request(flow)
    data = connect_data(flow, "localhost", 80)

    async def connect() -> list[Any]:
        await guard.server_connect(data)
        return await asyncio.get_running_loop().getaddrinfo("localhost", 80)

    pinned = await asyncio.create_task(connect())
    assert {info[4][0] for info in pinned} == {PUBLIC_V4}
    # Another task (another client, a webhook) resolves normally.
    other = await asyncio.get_running_loop().getaddrinfo("localhost", 80)
    assert PUBLIC_V4 not in {info[4][0] for info in other}


async def test_a_peer_that_is_not_a_checked_address_is_refused() -> None:
    dns = FakeDns([PUBLIC_V4])
    guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns))
    flow = flow_to("pinned.test", 80)
    await guard.request(flow)
    data = connect_data(flow, "pinned.test", 80)
    await guard.server_connect(data)
    data.server.peername = ("127.0.0.1", 80)  # as if the pin had been bypassed
    guard.server_connected(data)
    assert data.server.error and data.server.error.startswith("egress_address_denied")


async def test_rebinding_to_loopback_is_refused_before_any_connection() -> None:
    dns = FakeDns([PUBLIC_V4, "127.0.0.1"])
    guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns))
    flow = flow_to("rebind.test", 80)
    await guard.request(flow)
    assert flow.response is not None and flow.response.status_code == 403
    body = json.loads(flow.response.content or b"{}")
    assert body["reason_code"] == "egress_address_denied"
    assert body["egress"] == {"reason": "loopback", "address": "127.0.0.1"}


async def test_unchecked_connection_is_resolved_and_refused_at_connect() -> None:
    """A connection no request hook checked (no pin) is checked in server_connect."""
    dns = FakeDns(["127.0.0.1"])
    guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns))
    flow = flow_to("other.test", 80)
    data = connect_data(flow, "other.test", 80)
    await guard.server_connect(data)
    assert data.server.error and data.server.error.startswith("egress_address_denied")
    assert data.server.address == ("other.test", 80)


async def test_guard_errors_refuse_the_connection() -> None:
    async def broken(host: str, port: int) -> Sequence[str]:
        raise RuntimeError("resolver bug")

    guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, broken))
    flow = flow_to("x.test", 80)
    data = connect_data(flow, "x.test", 80)
    await guard.server_connect(data)  # must not raise: mitmproxy would connect anyway
    assert data.server.error and "could not check" in data.server.error
    await guard.request(flow)  # fail_closed: 503, nothing forwarded
    assert flow.response is not None and flow.response.status_code == 503


# -- the addon in a real mitmproxy ------------------------------------------------------------


class StopAtConnect:
    """Records where mitmproxy is about to connect, and stops it there (test safety)."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, int]] = []

    async def server_connect(self, data: ServerConnectionHookData) -> None:
        if not data.server.error:
            # What the socket layer would connect to: the pinned resolution of the name.
            host, port = data.server.address  # type: ignore[misc]
            infos = await asyncio.get_running_loop().getaddrinfo(host, port)
            self.addresses.extend((info[4][0], port) for info in infos)
            data.server.error = "stopped by the test before connecting"


@pytest.fixture
def gate_ca(tmp_path: Path) -> CaFiles:
    return ensure_ca(tmp_path / "gate-ca")


@pytest.fixture
async def engine_with(gate_ca: CaFiles) -> AsyncIterator[Any]:
    started: list[ProxyEngine] = []

    async def make(*addons: object) -> ProxyEngine:
        engine = ProxyEngine(
            listeners=[ProxyListener("forward", "regular@127.0.0.1:0")],
            addons=list(addons),
            confdir=gate_ca.certs_dir,
        )
        started.append(engine)
        await engine.start()
        return engine

    yield make
    for engine in started:
        await engine.stop()


def through(engine: ProxyEngine) -> httpx.AsyncClient:
    port = engine.bound_ports["forward"]
    return httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}", timeout=20, trust_env=False)


async def test_proxy_refuses_a_name_that_answers_public_then_loopback(engine_with: Any) -> None:
    with Upstream() as up:
        dns = FakeDns([PUBLIC_V4, "127.0.0.1"])
        stop = StopAtConnect()
        engine = await engine_with(EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns)),
                                   stop)  # fmt: skip
        async with through(engine) as client:
            response = await client.post(f"http://rebind.test:{up.port}/x", content=b"{}")
        assert response.status_code == 403
        assert response.json()["reason_code"] == "egress_address_denied"
        assert stop.addresses == []  # mitmproxy never even tried to connect
        assert up.connections == []
        assert len(dns.calls) == 1


async def test_proxy_connects_to_the_checked_address_not_a_later_answer(engine_with: Any) -> None:
    with Upstream() as up:
        dns = FakeDns([PUBLIC_V4], ["127.0.0.1"])
        stop = StopAtConnect()
        guard = EgressGuard(runtime(), resolver=EgressResolver(NO_ALLOW, dns))
        engine = await engine_with(guard, stop)
        async with through(engine) as client:
            response = await client.get(f"http://rebind.test:{up.port}/x")
        assert response.status_code == 502  # stopped by the test addon, not connected
        assert stop.addresses == [(PUBLIC_V4, up.port)]
        assert up.connections == []
        assert len(dns.calls) == 1


async def test_proxy_allowlisted_loopback_is_reached_by_address(engine_with: Any) -> None:
    with Upstream() as up:
        dns = FakeDns(["127.0.0.1"])
        guard = EgressGuard(runtime(), resolver=EgressResolver(parse_allow(["127.0.0.1/32"]), dns))
        engine = await engine_with(guard)
        async with through(engine) as client:
            first = await client.get(f"http://internal.test:{up.port}/a")
            second = await client.get(f"http://internal.test:{up.port}/b")
        assert (first.status_code, second.status_code) == (200, 200)
        assert [r.path for r in up.requests] == ["/a", "/b"]
        assert up.requests[0].header("Host") == f"internal.test:{up.port}"  # name kept


async def test_proxy_pinned_tls_keeps_the_name_for_sni_and_certificate(
    engine_with: Any, gate_ca: CaFiles, tmp_path: Path
) -> None:
    from gate_proxy.proxy import combined_trust_bundle

    with Upstream(tls=True) as up:
        assert up.ca_cert_path is not None
        dns = FakeDns(["127.0.0.1"])
        guard = EgressGuard(runtime(), resolver=EgressResolver(parse_allow(["127.0.0.1"]), dns))
        engine = ProxyEngine(
            listeners=[ProxyListener("forward", "regular@127.0.0.1:0")],
            addons=[guard],
            confdir=gate_ca.certs_dir,
            trusted_ca_bundle=combined_trust_bundle(up.ca_cert_path, tmp_path / "bundle"),
        )
        await engine.start()
        try:
            port = engine.bound_ports["forward"]
            verify = ssl.create_default_context(cafile=gate_ca.cert_path)
            async with httpx.AsyncClient(
                proxy=f"http://127.0.0.1:{port}", verify=verify, timeout=20, trust_env=False
            ) as client:
                response = await client.get(up.url_localhost + "/tls")
        finally:
            await engine.stop()
        # The upstream's certificate names localhost, not 127.0.0.1: verification passed,
        # so SNI and the certificate check used the name while the socket used the IP.
        assert response.status_code == 200 and response.json()["path"] == "/tls"
        assert dns.calls == [("localhost", up.port)]


# -- end to end: the real `gate-proxy serve` --------------------------------------------------

POLICIES = {"open": "id: open\nrequire_approval: never\n"}


def destinations(port: int, api_port: int | None = None) -> str:
    own = (
        f"""
"127.0.0.1:{api_port}":
  paths:
    /health: {{method: GET, passthrough: true}}
"""
        if api_port
        else ""
    )
    return f"""
default:
  action: block
"localhost:{port}":
  paths:
    /v1/write: {{method: POST, destination: internal.write, policy: open}}
{own}"""


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def serve(root: Path, upstream: Upstream, gate_yaml: str) -> Any:
    config = {"destinations.yaml": destinations(upstream.port), "gate.yaml": gate_yaml}
    return running_gate(root, policies=POLICIES, config=config)


def proxied_client(gate: GateProcess, agent: dict[str, Any]) -> httpx.Client:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    return httpx.Client(proxy=proxy, timeout=30, trust_env=False)


def test_serve_refuses_a_destination_that_resolves_to_loopback(
    tmp_path: Path, upstream: Upstream
) -> None:
    with serve(tmp_path, upstream, "egress_allow: []\n") as gate:
        agent = gate.register("egress-agent")
        with proxied_client(gate, agent) as client:
            response = client.post(f"http://localhost:{upstream.port}/v1/write", json={"a": 1})
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["reason_code"] == "egress_address_denied"
        assert body["egress"]["reason"] == "loopback"
        assert upstream.connections == []  # refused before any upstream connection
        assert "the approval was not used" in body["message"]
        # The approved intent was never sent: its approval is released, not spent.
        intent_id = response.headers["X-Gate-Intent-Id"]
        deadline = time.monotonic() + 10
        events: list[str] = []
        while time.monotonic() < deadline:
            with gate.admin() as admin:
                events = [
                    e["eventType"] for e in admin.get(f"/v1/intents/{intent_id}/audit").json()
                ]
            if "execution_not_sent" in events:
                break
            time.sleep(0.1)
        assert events[-2:] == ["execution_requested", "execution_not_sent"]
        with gate.admin() as admin:
            assert admin.get(f"/v1/intents/{intent_id}").json()["status"] == "approved"


def test_serve_allows_it_with_the_operator_allowlist_but_never_its_own_ports(
    tmp_path: Path, upstream: Upstream
) -> None:
    gate_yaml = 'egress_allow: ["127.0.0.1/32", "::1/128"]\n'
    with serve(tmp_path, upstream, gate_yaml) as gate:
        agent = gate.register("egress-agent")
        with proxied_client(gate, agent) as client:
            allowed = client.post(f"http://localhost:{upstream.port}/v1/write", json={"a": 1})
            assert allowed.status_code == 200, allowed.text
            assert [r.path for r in upstream.requests] == ["/v1/write"]
            # Route the gate's own API port (known only now); the registry reloads.
            registry = gate.config_dir / "destinations.yaml"
            registry.write_text(destinations(upstream.port, gate.port))
            deadline = time.monotonic() + 15
            own = client.get(f"http://127.0.0.1:{gate.port}/health")
            while own.json().get("reason_code") != "egress_address_denied":
                assert time.monotonic() < deadline, own.text
                time.sleep(0.2)
                own = client.get(f"http://127.0.0.1:{gate.port}/health")
        assert own.status_code == 403
        assert own.json()["egress"]["reason"] == "own_listener"
