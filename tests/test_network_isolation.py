"""Network isolation, end to end: the gate as an agent's only way out.

An agent process runs in a network namespace this test creates (`ip netns`), joined to the
host by one veth pair on a private /30. The real gate listens on the host end of that pair;
the recording upstreams listen on the host's loopback, which the namespace cannot reach (a
namespace has a loopback of its own and no route anywhere but the /30). The agent runs
deploy/examples/isolation_probe.py, the same probe that the compose and Kubernetes examples
run:

* a client that honours HTTP_PROXY reaches the upstream through the gate, and the gate's
  ledger holds the intent;
* a client that ignores HTTP_PROXY (Node's built-in fetch does) and connects straight to
  the upstream fails to connect, and the upstream records nothing, not even a connection;
* the same direct client run outside the namespace does reach the upstream, so the probe
  really can get through: only the isolation stops it.

Needs root (CAP_NET_ADMIN) and iproute2's `ip`. Without them the tests fail, saying so:
they never skip, since a skipped isolation test would look like a passing one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gate_process import REPO, TEST_ADMIN_KEY, GateProcess, prepare_root
from upstreams import Upstream, free_port

PROBE = REPO / "deploy" / "examples" / "isolation_probe.py"
SUBNET_POOL = ipaddress.ip_network("10.203.0.0/16")  # the /30s this test may use
COMMAND_TIMEOUT = 20.0

POLICIES = {
    "crm-low-risk": "id: crm-low-risk\nauto_approve_under: 100\nrequire_approval_over: 100\n",
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\n",
}


def registry(plain_port: int, tls_port: int) -> str:
    paths = """
    /v1/contacts: {method: POST, destination: hubspot.contacts, policy: crm-low-risk,
                   extract_records: inputs.length}
    /v1/refunds: {method: POST, destination: stripe.refund, policy: finance-high-risk}
"""
    return (
        f"default:\n  action: block\n"
        f'"127.0.0.1:{plain_port}":\n  paths:{paths}'
        f'"localhost:{tls_port}":\n  paths:{paths}'
    )


# -- the namespace --------------------------------------------------------------------------


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )


def ip_or_fail(*args: str) -> str:
    result = ip(*args)
    if result.returncode != 0:
        pytest.fail(
            f"network isolation test: `ip {' '.join(args)}` failed ({result.returncode}): "
            f"{result.stderr.strip()}. It needs root with CAP_NET_ADMIN and permission to "
            "create network namespaces and veth pairs (never skipped: see the module doc)."
        )
    return result.stdout


def addresses_in_use() -> set[ipaddress.IPv4Address]:
    """Every IPv4 address on the host, and every address of a routed prefix."""
    used: set[ipaddress.IPv4Address] = set()
    for line in ip_or_fail("-o", "-4", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            network = ipaddress.ip_interface(fields[fields.index("inet") + 1]).network
            if network.num_addresses <= 1024:
                used.update(network)
    for line in ip_or_fail("-4", "route", "show").splitlines():
        prefix = line.split()[0]
        if prefix != "default":
            network = ipaddress.ip_network(prefix, strict=False)
            if network.overlaps(SUBNET_POOL):
                used.update(network)
    return used


def pick_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /30 of SUBNET_POOL that nothing on this host uses (bounded search)."""
    subnets = list(SUBNET_POOL.subnets(new_prefix=30))
    used = addresses_in_use()
    for attempt in range(256):
        candidate = subnets[(seed + attempt * 7919) % len(subnets)]
        if not used.intersection(candidate):
            return candidate
    pytest.fail("network isolation test: no free /30 in 10.203.0.0/16 on this host")


@dataclass(frozen=True)
class AgentNetns:
    name: str
    host_veth: str
    agent_veth: str
    subnet: str
    host_address: str  # the gate listens here: the only address the agent can reach
    agent_address: str

    def run(
        self, argv: list[str], env: dict[str, str], timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )


def remove_namespace(ns: AgentNetns) -> None:
    """Undo everything; each step tolerates what an interrupted setup never made."""
    pids = ip("netns", "pids", ns.name).stdout.split()
    for pid in pids:  # only processes this test started can live in its namespace
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("link", "del", ns.host_veth)  # deletes its peer with it
    ip("netns", "del", ns.name)


@pytest.fixture(scope="module")
def agent_netns(request: pytest.FixtureRequest) -> AgentNetns:
    if os.geteuid() != 0:
        pytest.fail("network isolation test: needs root to create a network namespace")
    if shutil.which("ip") is None:
        pytest.fail("network isolation test: `ip` not found (Debian package iproute2)")
    tag = f"{os.getpid() % 100000}"
    subnet = pick_subnet(os.getpid())
    host_address, agent_address = (str(a) for a in subnet.hosts())
    names = (f"gate-iso-{tag}", f"gih{tag}", f"gia{tag}")
    ns = AgentNetns(*names, str(subnet), host_address, agent_address)
    request.addfinalizer(lambda: remove_namespace(ns))  # before creating anything
    remove_namespace(ns)  # a namespace of the same name left by a killed run
    ip_or_fail("netns", "add", ns.name)
    ip_or_fail("link", "add", ns.host_veth, "type", "veth", "peer", "name", ns.agent_veth)
    ip_or_fail("link", "set", ns.agent_veth, "netns", ns.name)
    ip_or_fail("addr", "add", f"{host_address}/30", "dev", ns.host_veth)
    ip_or_fail("link", "set", ns.host_veth, "up")
    ip_or_fail("-n", ns.name, "addr", "add", f"{agent_address}/30", "dev", ns.agent_veth)
    ip_or_fail("-n", ns.name, "link", "set", ns.agent_veth, "up")
    ip_or_fail("-n", ns.name, "link", "set", "lo", "up")
    return ns


# -- the gate on the veth address --------------------------------------------------------------


@dataclass
class VethGate(GateProcess):
    """The real gate, listening only on the host end of the veth pair."""

    bind: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}"


@dataclass
class Isolation:
    ns: AgentNetns
    gate: VethGate
    plain: Upstream
    tls: Upstream
    agent: dict[str, Any]

    def proxy_url(self) -> str:
        credentials = f"{self.agent['agentId']}:{self.agent['apiKey']}"
        return f"http://{credentials}@{self.ns.host_address}:{self.gate.proxy_port}"

    def agent_env(self) -> dict[str, str]:
        """What an agent's container would get: the proxy variables and the gate's CA."""
        proxy = self.proxy_url()
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "SSL_CERT_FILE": str(self.gate.certs_dir / "mitmproxy-ca-cert.pem"),
        }

    def probe(self, *args: str, inside: bool = True) -> dict[str, Any]:
        argv = [sys.executable, "-I", str(PROBE), "--timeout", "5", *args]
        if inside:
            result = self.ns.run(argv, self.agent_env())
        else:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, env=self.agent_env()
            )
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise AssertionError(
                f"probe printed no JSON (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            ) from None

    def intents(self) -> list[dict[str, Any]]:
        with self.gate.client(self.agent["apiKey"]) as client:
            response = client.get("/v1/intents", params={"limit": 200})
        assert response.status_code == 200, response.text
        return response.json()["intents"]

    def audit(self, intent_id: str) -> list[str]:
        with self.gate.admin() as admin:
            events = admin.get(f"/v1/intents/{intent_id}/audit").json()
        return [event["eventType"] for event in events]


@pytest.fixture(scope="module")
def isolation(
    agent_netns: AgentNetns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Isolation]:
    root = tmp_path_factory.mktemp("isolation")
    with Upstream() as plain, Upstream(tls=True) as tls:
        prepare_root(root, POLICIES)  # gate.yaml allows the loopback upstreams (egress)
        config = root / "config"
        (config / "destinations.yaml").write_text(registry(plain.port, tls.port))
        with (config / "gate.yaml").open("a") as gate_yaml:
            gate_yaml.write(f"upstream_ca_bundle: {tls.ca_cert_path}\n")
        gate = VethGate(
            root,
            free_port(),
            free_port(),
            free_port(),
            TEST_ADMIN_KEY,
            bind=agent_netns.host_address,
        )
        gate.start("--host", agent_netns.host_address)  # the last --host wins
        try:
            agent = gate.register(f"isolated-agent-{time.monotonic_ns()}")
            yield Isolation(agent_netns, gate, plain, tls, agent)
        finally:
            gate.stop()


def marked(upstream: Upstream, marker: str) -> list[Any]:
    return [request for request in upstream.requests if marker.encode() in request.body]


def wait_for_audit(isolation: Isolation, intent_id: str, last: str) -> list[str]:
    deadline = time.monotonic() + 10
    events = isolation.audit(intent_id)
    while events[-1:] != [last] and time.monotonic() < deadline:
        time.sleep(0.05)
        events = isolation.audit(intent_id)
    return events


def contacts(marker: str) -> str:
    return json.dumps({"inputs": [{"email": f"{marker}@example.test"}]})


# -- the tests ----------------------------------------------------------------------------------


def test_the_namespace_can_route_only_to_the_gate(agent_netns: AgentNetns) -> None:
    routes = ip_or_fail("-n", agent_netns.name, "-4", "route", "show").strip().splitlines()
    assert [route.split()[:3] for route in routes] == [
        [agent_netns.subnet, "dev", agent_netns.agent_veth]
    ], routes
    assert "default" not in ip_or_fail("-n", agent_netns.name, "-6", "route", "show")
    links = ip_or_fail("-n", agent_netns.name, "-o", "link", "show")
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()) == [
        agent_netns.agent_veth,
        "lo",
    ]


def test_a_client_honouring_the_proxy_goes_through_the_gate(isolation: Isolation) -> None:
    marker = f"proxied-{time.monotonic_ns()}"
    url = f"http://127.0.0.1:{isolation.plain.port}/v1/contacts"
    result = isolation.probe("--url", url, "--method", "POST", "--data", contacts(marker))

    assert result["proxied"]["status"] == 200, result
    received = marked(isolation.plain, marker)
    assert len(received) == 1
    # The upstream was reached by the gate on the host, never by the agent's address.
    peers = {c.peer[0] for c in isolation.plain.connections}
    assert isolation.ns.agent_address not in peers and peers <= {"127.0.0.1"}, peers
    assert received[0].header("Proxy-Authorization") is None

    [intent] = [i for i in isolation.intents() if i.get("destination") == "hubspot.contacts"]
    events = wait_for_audit(isolation, intent["intentId"], "execution_succeeded")
    assert events[:4] == ["proposed", "policy_checked", "approved", "execution_requested"]


def test_an_https_client_goes_through_the_gate_with_its_ca(isolation: Isolation) -> None:
    marker = f"tls-{time.monotonic_ns()}"
    url = f"https://localhost:{isolation.tls.port}/v1/contacts"
    result = isolation.probe("--url", url, "--method", "POST", "--data", contacts(marker))

    assert result["proxied"]["status"] == 200, result
    assert len(marked(isolation.tls, marker)) == 1


def test_a_write_the_policy_holds_is_not_forwarded(isolation: Isolation) -> None:
    marker = f"refund-{time.monotonic_ns()}"
    url = f"http://127.0.0.1:{isolation.plain.port}/v1/refunds"
    body = json.dumps({"charge": marker})
    result = isolation.probe("--url", url, "--method", "POST", "--data", body)

    assert result["proxied"]["status"] == 202, result
    assert result["proxied"]["intent_id"]
    assert marked(isolation.plain, marker) == []


def test_a_client_ignoring_the_proxy_cannot_connect(isolation: Isolation) -> None:
    marker = f"direct-{time.monotonic_ns()}"
    port = isolation.plain.port
    targets = [
        f"http://127.0.0.1:{port}/v1/contacts",  # the upstream's own address
        f"http://{isolation.ns.host_address}:{port}/v1/contacts",  # the gate's host, same port
        *(f"http://{address}:{port}/v1/contacts" for address in host_global_addresses()),
    ]
    connections_before = len(isolation.plain.connections)
    intents_before = len(isolation.intents())

    args = [arg for target in targets for arg in ("--direct", target)]
    result = isolation.probe(*args, "--method", "POST", "--data", contacts(marker))

    assert result["isolated"] is True, result
    assert [attempt["reached"] for attempt in result["direct"]] == [False] * len(targets)
    for attempt in result["direct"]:  # refused or unreachable: never a timeout that hid a reply
        assert ("Refused" in attempt["error"]) or ("unreachable" in attempt["error"]), attempt
    assert marked(isolation.plain, marker) == []
    assert len(isolation.plain.connections) == connections_before  # not even a TCP handshake
    assert len(isolation.intents()) == intents_before  # and it never touched the gate


def test_the_same_direct_client_outside_the_namespace_does_reach_the_upstream(
    isolation: Isolation,
) -> None:
    """The control: without the namespace, ignoring HTTP_PROXY is a way around the gate."""
    marker = f"escaped-{time.monotonic_ns()}"
    target = f"http://127.0.0.1:{isolation.plain.port}/v1/contacts"
    intents_before = len(isolation.intents())

    result = isolation.probe(
        "--direct", target, "--method", "POST", "--data", contacts(marker), inside=False
    )

    assert result["direct"][0]["reached"] is True, result
    assert len(marked(isolation.plain, marker)) == 1  # an ungoverned write
    assert len(isolation.intents()) == intents_before  # that the gate never saw


def host_global_addresses() -> list[str]:
    """The host's own non-loopback IPv4 addresses outside the test's pool (the namespace has
    no route to them). A lookup only: nothing is sent to them but the probe's attempts,
    which cannot leave the namespace."""
    found = []
    for line in ip_or_fail("-o", "-4", "addr", "show", "scope", "global").splitlines():
        fields = line.split()
        address = ipaddress.ip_interface(fields[fields.index("inet") + 1]).ip
        if address not in SUBNET_POOL:
            found.append(str(address))
    return found[:2]


def test_probe_file_is_the_one_the_deployments_run() -> None:
    """compose.yaml and the Kubernetes example mount this same probe."""
    compose = (REPO / "deploy" / "compose.yaml").read_text()
    assert "./examples/isolation_probe.py:/probe/isolation_probe.py" in compose
    assert Path(PROBE).is_file()
