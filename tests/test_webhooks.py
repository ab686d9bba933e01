"""Signed webhooks and the shared SSRF client (gate_proxy/ssrf.py).

In-process: target URLs, the check, the pinned connection (a fake resolver plays DNS; the
only real connections go to a recording receiver on 127.0.0.1). End to end: registration
and a signed delivery with retry through the real gate. Attacks: test_attack_webhooks.py.
"""

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from gate_process import GateProcess, running_gate
from upstreams import RecordedRequest, Reply, Upstream

from gate_proxy.core.egress import parse_allow
from gate_proxy.egress_resolver import EgressResolver
from gate_proxy.notify import SlackNotifier
from gate_proxy.settings import Settings
from gate_proxy.ssrf import (
    CheckedTarget,
    PinnedResolver,
    TargetRefused,
    check_target,
    outbound_resolver,
    parse_target,
    post_checked,
)

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\n",
}
SECRET = "whsec-test-0123456789abcdef"
PUBLIC_V4 = "93.184.216.34"
NO_ALLOW = parse_allow([])
LOOPBACK_V4 = parse_allow(["127.0.0.1/32"])


class FakeDns:
    """Answers from a script, one answer per call (the last one repeats)."""

    def __init__(self, *answers: Sequence[str] | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


# -- target URLs ------------------------------------------------------------------------------

PARSED = [
    ("https://hooks.example.com/x?y=1", "hooks.example.com", 443),
    ("http://hooks.example.com:8080/", "hooks.example.com", 8080),
    ("http://[64:ff9b::a9fe:a9fe]/latest", "64:ff9b::a9fe:a9fe", 80),
    ("http://HOOKS.Example.COM./", "hooks.example.com.", 80),
    ("http://exämple.com/", "xn--exmple-cua.com", 80),  # what aiohttp will resolve
]


@pytest.mark.parametrize(("url", "host", "port"), PARSED)
def test_target_is_read_the_way_aiohttp_will_connect(url: str, host: str, port: int) -> None:
    target = parse_target(url)
    assert (target.host, target.port) == (host, port)


INVALID = [
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "http:///no-host",
    "hooks.example.com/path",
    "http://user:pw@hooks.example.com/",
    "http://token@hooks.example.com/",
    "http://[fe80::1%25eth0]/",  # zone ids
    "http://%31%32%37.0.0.1/",  # escapes in the host
    "http://[::1/",
    "http://hooks.example.com:0/",
]


@pytest.mark.parametrize("url", INVALID)
def test_invalid_target_urls_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        parse_target(url)
    assert refused.value.kind == "invalid" and not refused.value.retryable


# -- the check --------------------------------------------------------------------------------

EVIL = [
    ("http://[64:ff9b::a9fe:a9fe]/", "link_local"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),
    ("http://[::169.254.169.254]/", "link_local"),
    ("http://[::ffff:0:a9fe:a9fe]/", "link_local"),
    ("http://[::127.0.0.1]/", "loopback"),
    ("http://[fec0::1]/", "site_local"),
    ("http://[::ffff:169.254.169.254]/", "link_local"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0251.0376.0251.0376/", "link_local"),
]


@pytest.mark.parametrize(("url", "reason"), EVIL)
async def test_evil_literal_targets_are_denied_without_dns(url: str, reason: str) -> None:
    dns = FakeDns([PUBLIC_V4])
    with pytest.raises(TargetRefused) as refused:
        await check_target(EgressResolver(NO_ALLOW, dns), parse_target(url))
    assert refused.value.kind == "denied" and not refused.value.retryable
    assert refused.value.egress()["reason"] == reason
    assert dns.calls == []


async def test_every_answer_of_a_name_is_checked() -> None:
    dns = FakeDns([PUBLIC_V4, "127.0.0.1"])
    with pytest.raises(TargetRefused) as refused:
        await check_target(EgressResolver(NO_ALLOW, dns), parse_target("http://hook.test/"))
    assert refused.value.egress() == {"reason": "loopback", "address": "127.0.0.1"}


async def test_allowlisted_target_and_failures_to_resolve() -> None:
    checked = await check_target(
        EgressResolver(LOOPBACK_V4, FakeDns(["127.0.0.1"])), parse_target("http://hook.test/")
    )
    assert checked.addresses == ("127.0.0.1",)
    with pytest.raises(TargetRefused) as refused:
        await check_target(
            EgressResolver(NO_ALLOW, FakeDns(OSError("nx"))), parse_target("http://x.test/")
        )
    assert refused.value.kind == "unresolvable" and refused.value.retryable


async def test_a_public_address_in_a_legacy_spelling_is_refused_as_invalid() -> None:
    # aiohttp would refuse to connect to it; better to say so at registration.
    with pytest.raises(TargetRefused) as refused:
        await check_target(EgressResolver(NO_ALLOW), parse_target("http://134744072/"))
    assert refused.value.kind == "invalid" and "8.8.8.8" in refused.value.message


def test_outbound_policy_is_the_proxy_policy_and_cannot_be_switched_off() -> None:
    settings = Settings(
        port=4100,
        egress_check=False,
        egress_allow=["10.0.0.0/8", "db.internal"],
        webhook_allow_cidrs=["192.168.0.0/16"],
    )
    allow = outbound_resolver(settings).allow
    assert allow.enabled  # egress_check: false is for proxied traffic only
    assert allow.hosts == ("db.internal",)
    assert {str(n) for n in allow.networks} == {"10.0.0.0/8", "192.168.0.0/16"}
    assert {lst.port for lst in allow.listeners} == {4100, 4001, 4002}


# -- the pinned connection --------------------------------------------------------------------


async def test_pinned_resolver_answers_only_the_checked_host() -> None:
    checked = CheckedTarget(parse_target("http://hook.test/"), ("127.0.0.1", "::1"))
    resolver = PinnedResolver(checked)
    answers = await resolver.resolve("hook.test", 80)
    assert [a["host"] for a in answers] == ["127.0.0.1", "::1"]
    v6 = await resolver.resolve("HOOK.test.", 80, family=socket.AF_INET6)
    assert [a["host"] for a in v6] == ["::1"]
    with pytest.raises(OSError, match="not checked"):
        await resolver.resolve("other.test", 80)


async def test_delivery_connects_to_the_checked_address_and_asks_dns_once() -> None:
    # hook.test does not exist: only the pinned address can have reached the receiver.
    dns = FakeDns(["127.0.0.1"], ["10.0.0.1"])
    with Upstream() as receiver:
        target = parse_target(f"http://hook.test:{receiver.port}/cb")
        response = await post_checked(
            EgressResolver(LOOPBACK_V4, dns), target, b"{}", {}, timeout_s=5
        )
        port = receiver.port
    assert response.status == 200
    assert [r.path for r in receiver.requests] == ["/cb"]
    assert receiver.requests[0].header("Host") == f"hook.test:{port}"
    assert dns.calls == [("hook.test", port)]


async def test_delivery_to_a_name_that_now_answers_loopback_is_not_made() -> None:
    with Upstream() as receiver:
        target = parse_target(f"http://hook.test:{receiver.port}/cb")
        egress = EgressResolver(NO_ALLOW, FakeDns([PUBLIC_V4], ["127.0.0.1"]))
        await check_target(egress, target)  # registration: public, accepted
        with pytest.raises(TargetRefused) as refused:  # delivery: DNS changed
            await post_checked(egress, target, b"{}", {}, timeout_s=5)
        assert refused.value.egress() == {"reason": "loopback", "address": "127.0.0.1"}
        assert receiver.connections == []


async def test_redirects_are_not_followed() -> None:
    def redirect(request: RecordedRequest) -> Reply:
        return Reply(307, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")

    with Upstream(handler=redirect) as receiver:
        target = parse_target(f"http://127.0.0.1:{receiver.port}/cb")
        response = await post_checked(EgressResolver(LOOPBACK_V4), target, b"{}", {}, timeout_s=5)
    assert response.status == 307 and len(receiver.requests) == 1


# -- Slack uses the same client ---------------------------------------------------------------


async def test_slack_denied_target_sends_nothing_and_is_not_retried() -> None:
    dns = FakeDns(["127.0.0.1"])
    with Upstream() as receiver:
        notifier = SlackNotifier(
            f"http://slack.test:{receiver.port}/services/T/B/secret",
            "http://127.0.0.1:4000",
            EgressResolver(NO_ALLOW, dns),
            timeout_s=2,
            retry_delays=(0.01, 0.01),
        )
        assert await notifier.deliver({"text": "x"}) is False
        assert receiver.connections == []
    assert len(dns.calls) == 1  # a denied address is final: no retries


async def test_slack_delivery_is_pinned_like_webhooks() -> None:
    dns = FakeDns(["127.0.0.1"], ["10.0.0.1"])
    with Upstream() as receiver:
        notifier = SlackNotifier(
            f"http://slack.test:{receiver.port}/services/T/B/secret",
            "http://127.0.0.1:4000",
            EgressResolver(LOOPBACK_V4, dns),
            timeout_s=2,
        )
        assert await notifier.deliver({"text": "x"}) is True
        assert [r.path for r in receiver.requests] == ["/services/T/B/secret"]


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::a9fe:a9fe]/services/T/B/secret",
        "http://[::ffff:0:a9fe:a9fe]/services/T/B/secret",
        "http://127.0.0.1:9/services/T/B/secret",
    ],
)
def test_slack_literal_target_denied_at_startup(url: str, caplog: pytest.LogCaptureFixture) -> None:
    assert SlackNotifier.from_settings(Settings(slack_webhook_url=url)) is None
    assert "denied" in caplog.text and "secret" not in caplog.text  # the URL is a secret
    allowed = Settings(slack_webhook_url=url, egress_allow=["127.0.0.1/32"])
    assert (SlackNotifier.from_settings(allowed) is None) == ("127.0.0.1" not in url)


# -- end to end -------------------------------------------------------------------------------


def _pending(gate: GateProcess, key: str) -> str:
    with gate.client(key) as client:
        response = client.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": "finance-high-risk", "payload": "{}"},
        )
    return response.json()["intentId"]


@pytest.fixture
def flaky_receiver() -> Iterator[Upstream]:
    calls = {"n": 0}

    def handler(request: RecordedRequest) -> Reply:
        calls["n"] += 1
        return Reply(500 if calls["n"] == 1 else 200, {}, b"ok")

    with Upstream(handler=handler) as receiver:
        yield receiver


def test_private_targets_are_refused_by_default(tmp_path: Path) -> None:
    config = {"gate.yaml": "egress_allow: []\n"}
    with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("hook-owner")
        intent_id = _pending(gate, agent["apiKey"])
        with gate.client(agent["apiKey"]) as client:
            for url, reason in (
                ("http://127.0.0.1:9/x", "loopback"),
                ("http://169.254.169.254/latest", "link_local"),
                ("http://10.0.0.1/x", "private"),
                ("http://[::1]:9/x", "loopback"),
            ):
                response = client.post(
                    "/v1/webhooks/register",
                    json={"intentId": intent_id, "url": url, "secret": SECRET},
                )
                assert response.status_code == 400, url
                body = response.json()
                assert body["error"] == "webhook_target_forbidden"
                assert body["egress"]["reason"] == reason
                assert "egress_allow" in body["message"]


def test_signed_delivery_with_retry(tmp_path: Path, flaky_receiver: Upstream) -> None:
    config = {"gate.yaml": 'egress_allow: ["127.0.0.1/32"]\n'}
    with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("hooked")
        intent_id = _pending(gate, agent["apiKey"])
        with gate.client(agent["apiKey"]) as client:
            registered = client.post(
                "/v1/webhooks/register",
                json={
                    "intentId": intent_id,
                    "url": f"{flaky_receiver.url}/gate-callback",
                    "secret": SECRET,
                },
            )
        assert registered.status_code == 201, registered.text
        assert SECRET not in registered.text
        with gate.admin() as admin:
            admin.post(f"/v1/intents/{intent_id}/approve", json={})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(flaky_receiver.requests) < 2:
            time.sleep(0.1)
        logs = gate.logs()
    attempts = flaky_receiver.requests
    assert len(attempts) == 2  # the first got 500, the retry succeeded
    delivered = attempts[-1]
    body = json.loads(delivered.body)
    assert body["intentId"] == intent_id and body["event"] == "approved"
    timestamp = delivered.header("X-Gate-Timestamp")
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + delivered.body, hashlib.sha256
    ).hexdigest()
    assert delivered.header("X-Gate-Signature") == f"v1={expected}"
    assert all(SECRET not in value for _, value in delivered.headers)
    assert SECRET not in logs


def test_legacy_webhook_allow_cidrs_still_allows_a_receiver(tmp_path: Path) -> None:
    config = {"gate.yaml": "egress_allow: []\nwebhook_allow_cidrs: [127.0.0.1/32]\n"}
    with Upstream() as receiver, running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("legacy")
        intent_id = _pending(gate, agent["apiKey"])
        with gate.client(agent["apiKey"]) as client:
            registered = client.post(
                "/v1/webhooks/register",
                json={"intentId": intent_id, "url": f"{receiver.url}/cb", "secret": SECRET},
            )
        assert registered.status_code == 201, registered.text
