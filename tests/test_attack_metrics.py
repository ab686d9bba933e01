"""/metrics is unauthenticated: agents must not be able to grow it or write into it.

Every label takes only configured values (destination names from the registry and the
policies, fixed sets for outcomes, sources, kinds); anything else is exported as ``other``.
Tables for the allow-lists, an in-process flood of hostile values, and an end-to-end attack
on the real gate: 300 CONNECTs to distinct unknown hosts, requests to unknown hosts,
control characters in Host, made-up destinations on the intents API, then a registry
reload that adds a destination.
"""

import base64
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

from gate_proxy.loaders.live import policy_destination_names, registry_destination_names
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.loaders.registry_file import parse_registry_text
from gate_proxy.metrics import (
    CONFIGS,
    DECISION_OUTCOMES,
    DECISION_SOURCES,
    HOOKS,
    OTHER,
    REVIEW_OUTCOMES,
    UPSTREAM_ERROR_KINDS,
    WEBHOOK_RESULTS,
    GateMetrics,
    LabelValues,
)

HOSTILE = [
    "unknown-1.attacker.example",
    "evil.example.http",
    "",
    "a\nb",
    'x"} 1\ngate_fake_total 99',
    "back\\slash",
    "\x1b[31mred\x7f",
    "stripe.refund ",  # near miss of a real name
    "STRIPE.REFUND",
    "é" * 300,
]


# -- tables -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("stripe.refund", "stripe.refund"), ("notes.write", "notes.write")]
    + [(value, OTHER) for value in HOSTILE],
)
def test_label_values_pass_only_known_values(value: str, expected: str) -> None:
    allowed = LabelValues("stripe.refund")
    allowed.set_part("registry", ["notes.write"])
    assert allowed.bound(value) == expected


def test_a_part_is_replaced_as_a_whole() -> None:
    allowed = LabelValues("fixed.name")
    allowed.set_part("registry", ["old.name", "kept.name"])
    allowed.set_part("policies", ["policy.name"])
    allowed.set_part("registry", ["kept.name"])
    assert allowed.allowed == {"fixed.name", "kept.name", "policy.name"}
    assert allowed.bound("old.name") == OTHER


@pytest.mark.parametrize(
    ("registry_yaml", "expected"),
    [
        ("{}", set()),
        (
            "api.stripe.com:\n  paths:\n    /v1/refunds: {destination: stripe.refund, policy: p}\n",
            {"stripe.refund"},
        ),
        # a {host} template would make one label value per host an agent asks for
        (
            '"*.zendesk.com":\n  destination: "{host}.reply"\n  policy: p\n'
            "default:\n  action: evaluate\n  policy: p\n",
            set(),
        ),
        (
            "default:\n  action: evaluate\n  destination: unknown.http\n  policy: p\n"
            "api.x.com:\n  block: true\n",
            {"unknown.http"},
        ),
    ],
)
def test_registry_destination_names(registry_yaml: str, expected: set[str]) -> None:
    assert registry_destination_names(parse_registry_text(registry_yaml)) == expected


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        ({}, set()),
        ({"any": "id: any\n"}, set()),  # no list: any destination, none named
        (
            {
                "a": "id: a\ndestinations: [x.send, y.send]\n",
                "b": "id: b\ndestinations: [y.send, z.send]\n",
            },
            {"x.send", "y.send", "z.send"},
        ),
    ],
)
def test_policy_destination_names(policies: dict[str, str], expected: set[str]) -> None:
    parsed = {name: parse_policy(text, f"{name}.yaml") for name, text in policies.items()}
    assert policy_destination_names(parsed) == expected


# -- in process: a flood of hostile label values --------------------------------------------------

LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def allowed_by_label(destinations: set[str]) -> dict[str, set[str]]:
    with_other = {
        "outcome": {*DECISION_OUTCOMES, *REVIEW_OUTCOMES},
        "destination": destinations,
        "source": set(DECISION_SOURCES),
        "kind": set(UPSTREAM_ERROR_KINDS),
        "result": set(WEBHOOK_RESULTS),
        "where": set(HOOKS),
        "config": set(CONFIGS),
    }
    return {name: values | {OTHER} for name, values in with_other.items()}


def labels_outside(text: str, destinations: set[str]) -> list[str]:
    """Every label value in a /metrics text that is not allowed (``le`` is the histogram's)."""
    allowed = allowed_by_label(destinations)
    bad = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        for name, value in LABEL.findall(line):
            if name != "le" and value not in allowed.get(name, set()):
                bad.append(f"{name}={value!r}")
    return bad


def test_ten_thousand_hostile_values_add_no_series() -> None:
    metrics = GateMetrics()
    metrics.destinations.set_part("registry", ["stripe.refund"])
    metrics.decisions.inc("blocked", "stripe.refund", "proxy")
    before = metrics.registry.render()
    for i in range(10_000):
        hostile = f"{HOSTILE[i % len(HOSTILE)]}{i}"
        metrics.decisions.inc("blocked", hostile, "connect")
        metrics.decisions.inc(hostile, "stripe.refund", hostile)
        metrics.decision_latency.observe(0.01, hostile)
        metrics.upstream_errors.inc(hostile)
        metrics.internal_errors.inc(hostile)
        metrics.webhook_deliveries.inc(hostile)
        metrics.reviews.inc(hostile)
        metrics.config_reload_failures.inc(hostile)
    after = metrics.registry.render()
    series = [line for line in after.splitlines() if not line.startswith("#")]
    added = len(series) - len([ln for ln in before.splitlines() if not ln.startswith("#")])
    # One `other` series per metric and label combination at most, whatever the flood.
    assert added <= 25
    assert labels_outside(after, {"stripe.refund"}) == []
    assert "attacker" not in after and "gate_fake_total" not in after and "\x1b" not in after


# -- end to end ------------------------------------------------------------------------------------

POLICIES = {
    "finance-high-risk": (
        "id: finance-high-risk\ndestinations: [stripe.refund, quickbooks.journal]\n"
        "require_approval: always\n"
    ),
    "open": "id: open\nrequire_approval: never\n",
}


def _destinations(port: int, extra: str = "") -> str:
    return f"""
default:
  action: block
"127.0.0.1:{port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
    /v1/notes: {{method: POST, destination: notes.write, policy: open}}
{extra}"""


KNOWN = {"stripe.refund", "quickbooks.journal", "notes.write"}


@dataclass
class Env:
    gate: GateProcess
    upstream: Upstream
    agent: dict[str, Any]

    @property
    def proxy_auth(self) -> str:
        token = f"{self.agent['agentId']}:{self.agent['apiKey']}"
        return "Basic " + base64.b64encode(token.encode()).decode()

    @property
    def proxy_url(self) -> str:
        return f"http://{self.agent['agentId']}:{self.agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"

    def metrics(self) -> str:
        response = httpx.get(f"{self.gate.url}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("metrics")
    with Upstream() as upstream:
        config = {"destinations.yaml": _destinations(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream, gate.register("metrics-agent"))


def _raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def decision_series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("gate_decisions_total{")]


def test_unknown_hosts_and_hostile_names_never_reach_metrics(env: Env) -> None:
    before = len(env.upstream.requests)
    # 300 CONNECTs to distinct unknown hosts: each refused at CONNECT, each counted.
    for i in range(300):
        target = f"unknown-{i}.attacker.example:443"
        head = _raw_exchange(
            env.gate.proxy_port,
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
            f"Proxy-Authorization: {env.proxy_auth}\r\n\r\n".encode(),
        )
        assert head.startswith(b"HTTP/1.1 403"), head[:200]
    # Plain requests to unknown hosts become blocked intents named "<host>.http".
    with httpx.Client(proxy=env.proxy_url, timeout=30) as client:
        for i in range(20):
            response = client.post(f"http://evil-{i}.attacker.example/x", json={"i": i})
            assert response.status_code == 403
    # Control characters and quotes in Host, in the request target and in CONNECT.
    hostile_hosts = ['ev"il}\x01.attacker.example', "tab\tname.attacker.example", "\x7fdel"]
    for host in hostile_hosts:
        for request in (
            f"GET http://127.0.0.1:{env.upstream.port}/v1/notes HTTP/1.1\r\nHost: {host}\r\n",
            f"GET http://{host}/x HTTP/1.1\r\nHost: {host}\r\n",
            f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n",
        ):
            raw = f"{request}Proxy-Authorization: {env.proxy_auth}\r\n\r\n"
            _raw_exchange(env.gate.proxy_port, raw.encode("latin-1"))
    # Destinations an agent makes up on the intents API.
    with env.gate.client(env.agent["apiKey"]) as api:
        for name in ["made.up.destination", 'x"} 1\ngate_fake_total 99', "\x1b[31m", "é" * 200]:
            response = api.post(
                "/v1/intents", json={"destination": name, "policy": "open", "payload": "{}"}
            )
            assert response.status_code < 500, response.text

    text = env.metrics()
    assert labels_outside(text, KNOWN) == []
    for needle in ("attacker", "made.up", "gate_fake_total", "\x1b", "\x7f", "é"):
        assert needle not in text
    series = decision_series(text)
    assert len(series) <= len(DECISION_OUTCOMES) * (len(KNOWN) + 1) * (len(DECISION_SOURCES) + 1)
    connect_other = next(
        line for line in series if 'destination="other"' in line and 'source="connect"' in line
    )
    assert float(connect_other.rsplit(" ", 1)[1]) >= 300  # counted, just not named
    assert len(env.upstream.requests) == before  # and nothing of it went upstream


def test_a_destination_added_by_a_registry_reload_gets_its_own_label(env: Env) -> None:
    path = env.gate.config_dir / "destinations.yaml"
    path.write_text(
        _destinations(
            env.upstream.port,
            extra=f'"localhost:{env.upstream.port}":\n'
            "  paths:\n    /v1/fresh: {method: POST, destination: fresh.dest, policy: open}\n",
        )
    )
    url = f"http://localhost:{env.upstream.port}/v1/fresh"
    deadline = time.monotonic() + 15  # the registry is polled every second
    with httpx.Client(proxy=env.proxy_url, timeout=30) as client:
        while time.monotonic() < deadline:
            if client.post(url, json={"fresh": True}).status_code == 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the new destination was never loaded")
    text = env.metrics()
    assert 'destination="fresh.dest"' in text
    assert labels_outside(text, {*KNOWN, "fresh.dest"}) == []
