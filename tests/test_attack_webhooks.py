"""Attacks on webhook registration and delivery, against the real `gate-proxy serve`.

An agent chooses a webhook URL; the gate then makes requests to it. These tests try to
point that request at the machine's or the cloud's insides (security issue 9, items 14
and 16): every evil target must be refused at registration with a JSON reason, a target
whose address becomes forbidden after registration must get no delivery, and intent ids
must not be probeable through registration.

Safety: no evil target is ever delivered to. Evil registrations are made on an intent
that is never decided while the gate runs, so no event fires for them; the only
deliveries go to recording receivers on 127.0.0.1.
"""

import sqlite3
import time
from pathlib import Path

import httpx
from gate_process import GateProcess, running_gate
from upstreams import Upstream

POLICIES = {"finance-high-risk": "id: finance-high-risk\nrequire_approval: always\n"}
SECRET = "whsec-attack-0123456789abcdef"
NO_EGRESS_ALLOW = "egress_allow: []\n"


def _pending(gate: GateProcess, key: str) -> str:
    with gate.client(key) as client:
        response = client.post(
            "/v1/intents",
            json={"destination": "stripe.refund", "policy": "finance-high-risk", "payload": "{}"},
        )
    assert response.status_code in (200, 201), response.text
    assert response.json()["status"] == "pending_approval"
    return response.json()["intentId"]


def _register(gate: GateProcess, key: str, intent_id: str, url: str) -> httpx.Response:
    with gate.client(key) as client:
        return client.post(
            "/v1/webhooks/register", json={"intentId": intent_id, "url": url, "secret": SECRET}
        )


def _stored_webhooks(gate: GateProcess) -> list[str]:
    with sqlite3.connect(f"file:{gate.data_dir / 'gate.db'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT url FROM webhooks")]


def _deliveries(gate: GateProcess) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{gate.data_dir / 'gate.db'}?mode=ro", uri=True) as db:
        return [(int(ok), str(detail)) for ok, detail in db.execute(
            "SELECT ok, detail FROM webhook_deliveries"
        )]  # fmt: skip


def _wait_for_delivery_record(gate: GateProcess, timeout: float = 15) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _deliveries(gate)
        if records:
            return records
        time.sleep(0.1)
    raise AssertionError(f"no delivery recorded:\n{gate.logs()[-3000:]}")


def evil_targets(port: int) -> list[tuple[str, str]]:
    """(url, the reason the gate must give). `port` is a live receiver's: nothing may reach it."""
    return [
        # IPv4 inside IPv6, which ipaddress.is_global calls global
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "link_local"),  # NAT64 metadata
        (f"http://[64:ff9b::7f00:1]:{port}/", "loopback"),  # NAT64 loopback
        ("http://[64:ff9b:1::a9fe:a9fe]/", "link_local"),  # local-use NAT64
        ("http://[::169.254.169.254]/latest/", "link_local"),  # IPv4-compatible
        ("http://[::ffff:0:a9fe:a9fe]/latest/", "link_local"),  # IPv4-translated
        (f"http://[::127.0.0.1]:{port}/", "loopback"),  # IPv4-compatible
        (f"http://[::ffff:127.0.0.1]:{port}/", "loopback"),  # IPv4-mapped
        ("http://[2002:a9fe:a9fe::1]/", "link_local"),  # 6to4
        ("http://[fec0::1]/", "site_local"),
        ("http://[fd00::1]/", "unique_local"),
        (f"http://[::1]:{port}/", "loopback"),
        # IPv4 in every spelling
        (f"http://127.0.0.1:{port}/", "loopback"),
        (f"http://2130706433:{port}/", "loopback"),
        (f"http://0x7f.1:{port}/", "loopback"),
        (f"http://127.1:{port}/", "loopback"),
        (f"http://0177.0.0.1:{port}/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link_local"),
        ("http://0xa9fea9fe/latest/meta-data/", "link_local"),
        ("http://10.0.0.1/", "private"),
        ("http://100.64.0.1/", "cgnat"),
        ("http://0.0.0.0/", "unspecified"),
        # a name that resolves to loopback
        (f"http://localhost:{port}/", "loopback"),
    ]


def test_every_evil_webhook_target_is_refused_at_registration(tmp_path: Path) -> None:
    config = {"gate.yaml": NO_EGRESS_ALLOW}
    with Upstream() as receiver, running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("attacker")
        intent_id = _pending(gate, agent["apiKey"])  # never decided: no event fires
        wrong_answers: list[str] = []
        for url, reason in evil_targets(receiver.port):
            response = _register(gate, agent["apiKey"], intent_id, url)
            body = response.json()
            if response.status_code != 400 or body.get("error") != "webhook_target_forbidden":
                wrong_answers.append(f"{url}: {response.status_code} {body}")
                continue
            assert body["egress"]["reason"] == reason, (url, body)
            assert body["message"].startswith("webhook target ") and reason in body["message"]
        assert wrong_answers == []
        assert _stored_webhooks(gate) == []
        assert receiver.connections == []


def test_the_gate_never_calls_its_own_listeners_even_when_loopback_is_allowed(
    tmp_path: Path,
) -> None:
    config = {"gate.yaml": 'egress_allow: ["127.0.0.1/32", "::1/128"]\n'}
    with running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("looper")
        intent_id = _pending(gate, agent["apiKey"])
        for port in (gate.port, gate.proxy_port, gate.reverse_port):
            response = _register(gate, agent["apiKey"], intent_id, f"http://127.0.0.1:{port}/")
            assert response.status_code == 400, response.text
            assert response.json()["egress"]["reason"] == "own_listener"
        assert _stored_webhooks(gate) == []


def test_another_agents_intent_and_an_unknown_id_answer_alike(tmp_path: Path) -> None:
    config = {"gate.yaml": 'egress_allow: ["127.0.0.1/32"]\n'}
    with Upstream() as receiver, running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        owner, prober = gate.register("owner"), gate.register("prober")
        intent_id = _pending(gate, owner["apiKey"])
        unknown_id = intent_id[:-4] + ("0000" if not intent_id.endswith("0000") else "1111")
        url = f"{receiver.url}/cb"
        someone_elses = _register(gate, prober["apiKey"], intent_id, url)
        nobodys = _register(gate, prober["apiKey"], unknown_id, url)
        assert (someone_elses.status_code, nobodys.status_code) == (404, 404)
        assert someone_elses.content == nobodys.content
        assert someone_elses.json() == {"error": "not_found", "message": "intent not found"}
        drop = {"date", "content-length"}
        assert {k: v for k, v in someone_elses.headers.items() if k not in drop} == {
            k: v for k, v in nobodys.headers.items() if k not in drop
        }
        # The target was fine: the owner registers the same URL.
        assert _register(gate, owner["apiKey"], intent_id, url).status_code == 201
        assert _stored_webhooks(gate) == [url]


def test_a_target_forbidden_after_registration_gets_no_delivery(tmp_path: Path) -> None:
    """Registered while loopback was allowed; by delivery time the policy says no (as when
    DNS changes to an internal address). The gate checks again and sends nothing."""
    allow_loopback = {"gate.yaml": 'egress_allow: ["127.0.0.1/32", "::1/128", localhost]\n'}
    with (
        Upstream() as receiver,
        running_gate(tmp_path, policies=POLICIES, config=allow_loopback) as gate,
    ):
        agent = gate.register("sleeper")
        intent_id = _pending(gate, agent["apiKey"])
        url = f"{receiver.url_localhost}/cb"  # a name that resolves to loopback
        assert _register(gate, agent["apiKey"], intent_id, url).status_code == 201
        gate.stop()
        (gate.config_dir / "gate.yaml").write_text(NO_EGRESS_ALLOW)
        gate.start()
        with gate.admin() as admin:
            decided = admin.post(f"/v1/intents/{intent_id}/approve", json={})
        assert decided.status_code == 200, decided.text
        records = _wait_for_delivery_record(gate)
        metrics = httpx.get(f"{gate.url}/metrics", timeout=10).text
        logs = gate.logs()
    assert receiver.connections == []  # not one connection, not one attempt
    assert len(records) == 1
    ok, detail = records[0]
    assert ok == 0 and "target refused" in detail and "loopback" in detail
    assert 'gate_webhook_deliveries_total{result="refused"} 1' in metrics
    assert "webhook delivery refused" in logs


def test_an_allowlisted_receiver_gets_the_signed_delivery(tmp_path: Path) -> None:
    """The positive control: egress_allow (the proxy's own allowlist) opens loopback."""
    config = {"gate.yaml": 'egress_allow: ["127.0.0.1/32"]\n'}
    with Upstream() as receiver, running_gate(tmp_path, policies=POLICIES, config=config) as gate:
        agent = gate.register("honest")
        intent_id = _pending(gate, agent["apiKey"])
        registered = _register(gate, agent["apiKey"], intent_id, f"{receiver.url}/cb")
        assert registered.status_code == 201, registered.text
        with gate.admin() as admin:
            admin.post(f"/v1/intents/{intent_id}/approve", json={})
        records = _wait_for_delivery_record(gate)
        requests = receiver.wait_for_requests(1)
    assert records == [(1, "200")]
    assert [r.path for r in requests] == ["/cb"]
    assert requests[0].header("X-Gate-Event") == "approved"
