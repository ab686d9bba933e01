"""The reviewer dashboard over HTTP, against a real `gate-proxy serve`: sign-in, cookie flags,
CSRF, sessions that die with the key, the live event stream, decisions bound to the review
hash (409 on mismatch), N-of-M, PII masking, held requests, and Slack notifications with
retries to a local receiver. Traffic goes to 127.0.0.1 only.

The helpers at the top (Env, Dashboard, sse_events, ...) are shared with
test_dashboard_browser.py, which imports this module.
"""

import asyncio
import dataclasses
import json
import random
import re
import ssl
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import RecordedRequest, Reply, Upstream, status

from gate_proxy.core.intents import Intent, Status
from gate_proxy.core.pii import mask_pii
from gate_proxy.dashboard.sessions import SessionStore
from gate_proxy.keys import load_or_create_signer
from gate_proxy.notify import SlackNotifier, pending_message
from gate_proxy.store.sqlite import SqliteStore

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\nexpiry_minutes: 15\n",
    "two-person": (
        "id: two-person\ndestinations: [bank.wire]\nrequire_approval: always\n"
        "require_approvals: 2\nexpiry_minutes: 30\n"
    ),
}


def destinations(upstream_port: int) -> str:
    return f"""
default:
  action: block
"127.0.0.1:{upstream_port}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
"""


@dataclass
class Env:
    gate: GateProcess
    upstream: Upstream
    reviewer: dict[str, Any]
    agent: dict[str, Any]
    slack: Upstream | None = None

    @property
    def ca(self) -> str:
        return str(self.gate.certs_dir / "mitmproxy-ca-cert.pem")

    def proxy_client(self, agent: dict[str, Any], timeout: float = 30) -> httpx.Client:
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        verify = ssl.create_default_context(cafile=self.ca)
        return httpx.Client(proxy=proxy, verify=verify, timeout=timeout)

    def propose(self, agent: dict[str, Any], **body: Any) -> dict[str, Any]:
        body.setdefault("destination", "stripe.refund")
        body.setdefault("policy", "finance-high-risk")
        with self.gate.client(agent["apiKey"]) as client:
            response = client.post("/v1/intents", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def held_request(self, body: dict[str, Any], results: list[Any]) -> threading.Thread:
        """POST through the forward proxy with X-Gate-Wait: true, from a thread."""

        def run() -> None:
            try:
                with self.proxy_client(self.agent, timeout=60) as client:
                    results.append(
                        client.post(
                            f"{self.upstream.url}/v1/refunds",
                            json=body,
                            headers={"X-Gate-Wait": "true"},
                        )
                    )
            except httpx.HTTPError as exc:
                results.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


class Dashboard:
    """A dashboard session as a browser would hold it: one cookie, one CSRF token."""

    def __init__(self, gate: GateProcess) -> None:
        self.client = httpx.Client(base_url=gate.url, timeout=15, follow_redirects=False)
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.principal: dict[str, Any] = {}

    def __enter__(self) -> "Dashboard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def login(self, key: str, **kwargs: Any) -> httpx.Response:
        response = self.client.post("/dashboard/login", json={"key": key}, **kwargs)
        if response.status_code == 200:
            self.cookie = response.cookies.get("gate_dashboard")
            self.csrf = response.json()["csrfToken"]
            self.principal = response.json()["principal"]
        return response

    def headers(self, csrf: bool = True, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.cookie:
            headers["Cookie"] = f"gate_dashboard={self.cookie}"
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.headers(csrf=False))

    def post(
        self, path: str, body: dict[str, Any] | None = None, *, csrf: bool = True, **headers: str
    ) -> httpx.Response:
        return self.client.post(path, json=body or {}, headers=self.headers(csrf, **headers))

    def pending(self) -> list[dict[str, Any]]:
        response = self.get("/dashboard/api/intents")
        assert response.status_code == 200, response.text
        return response.json()["intents"]

    def view(self, intent_id: str) -> dict[str, Any]:
        response = self.get(f"/dashboard/api/intents/{intent_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def decide(self, intent_id: str, action: str, **body: Any) -> httpx.Response:
        return self.post(f"/dashboard/api/intents/{intent_id}/{action}", body)


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse a text/event-stream response into (event, data) pairs."""
    event, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def next_event(
    events: Iterator[tuple[str, dict[str, Any]]],
    match: Callable[[str, dict[str, Any]], bool],
    timeout: float = 10.0,
) -> tuple[str, dict[str, Any]]:
    """The first event that matches, within a bounded time (heartbeats keep reads short)."""
    deadline = time.monotonic() + timeout
    for name, data in events:
        if match(name, data):
            return name, data
        if time.monotonic() > deadline:
            break
    raise AssertionError("expected event did not arrive in time")


def marker_for(kind: str) -> str:
    """A unique marker without long digit runs (those could look like card numbers)."""
    return f"{kind}-{''.join(random.choices(string.ascii_lowercase, k=16))}"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@contextmanager
def start_env(root: Path, extra_config: str = "") -> Iterator[Env]:
    """A gate with the dashboard policies and one proxied upstream; yields an Env."""
    with Upstream() as upstream:
        config = {
            "destinations.yaml": destinations(upstream.port),
            "gate.yaml": f"dashboard_heartbeat_s: 0.3\n{extra_config}",
        }
        with running_gate(root, policies=POLICIES, config=config) as gate:
            # A fresh gate per module: plain names read well in the screenshot.
            reviewer = gate.register("rita-reviewer", role="reviewer")
            agent = gate.register("billing-bot")
            yield Env(gate, upstream, reviewer, agent)


# -- fixtures ------------------------------------------------------------------------------------

SSN = "123-45-6789"
CARD = "4111 1111 1111 1111"
SECRET = "sk_live_51HxDashboardSecretValue"


def _slack_handler() -> Callable[[RecordedRequest], Reply]:
    """A Slack stand-in that fails the first attempt of every message: retries must happen."""
    attempts: dict[bytes, int] = {}
    lock = threading.Lock()

    def handler(request: RecordedRequest) -> Reply:
        with lock:
            attempts[request.body] = attempts.get(request.body, 0) + 1
            first = attempts[request.body] == 1
        return Reply(503 if first else 200, {"content-type": "text/plain"}, b"ok")

    return handler


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with Upstream(handler=_slack_handler()) as slack:
        extra = (
            "webhook_allow_cidrs: [127.0.0.1/32]\n"
            f"slack_webhook_url: http://127.0.0.1:{slack.port}/services/T0/B0/secret\n"
            "dashboard_url: https://gate.example.test\n"
        )
        with start_env(tmp_path_factory.mktemp("dashboard"), extra) as value:
            value.slack = slack
            yield value


@pytest.fixture
def dash(env: Env) -> Iterator[Dashboard]:
    with Dashboard(env.gate) as dashboard:
        assert dashboard.login(env.reviewer["apiKey"]).status_code == 200
        yield dashboard


def new_reviewer(env: Env, name: str = "reviewer") -> dict[str, Any]:
    return env.gate.register(f"{name}-{time.monotonic_ns()}", role="reviewer")


# -- the page ------------------------------------------------------------------------------------


def test_page_is_served_with_strict_security_headers(env: Env) -> None:
    response = httpx.get(f"{env.gate.url}/dashboard", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    # No inline script or style: everything comes from the package's static files.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html and "onclick=" not in html
    # The sign-in form posts: a key typed into it can never end up in a URL.
    assert re.search(r'<form[^>]*method="post"[^>]*action="/dashboard/login"', html)
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        asset = httpx.get(f"{env.gate.url}/dashboard/static/{name}", timeout=10)
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert asset.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{env.gate.url}/dashboard/static/app.js", timeout=10).text
    # Data reaches the DOM as text only: no HTML-parsing sinks, no eval.
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", script)
    assert "eval(" not in script and "new Function" not in script
    for bad in ("nope.js", "..%2f..%2fserver.py", "%2e%2e%2fsettings.py"):
        assert httpx.get(f"{env.gate.url}/dashboard/static/{bad}", timeout=10).status_code == 404


def test_api_and_stream_need_a_session(env: Env) -> None:
    with Dashboard(env.gate) as anonymous:
        for path in ("/dashboard/api/session", "/dashboard/api/intents", "/dashboard/events"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "not_signed_in"
        # A bearer key is not a dashboard session either.
        response = anonymous.client.get(
            "/dashboard/api/intents",
            headers={"Authorization": f"Bearer {env.reviewer['apiKey']}"},
        )
        assert response.status_code == 401
        forged = anonymous.client.get(
            "/dashboard/api/intents", headers={"Cookie": "gate_dashboard=forged-session-id"}
        )
        assert forged.status_code == 401


# -- sign-in -------------------------------------------------------------------------------------


def test_login_sets_an_httponly_samesite_strict_cookie(env: Env) -> None:
    key = env.reviewer["apiKey"]
    with Dashboard(env.gate) as dashboard:
        response = dashboard.login(key)
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("gate_dashboard=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/dashboard" in cookie
        assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would not stick
        assert "Max-Age" not in cookie and "expires" not in cookie.lower()  # a session cookie
        body = response.json()
        assert body["principal"]["role"] == "reviewer" and body["csrfToken"]
        assert key not in response.text and key not in str(response.headers)
        session = dashboard.get("/dashboard/api/session").json()
        assert session["principal"]["id"] == env.reviewer["agentId"]
        assert session["csrfToken"] == dashboard.csrf
    with Dashboard(env.gate) as behind_tls:
        response = behind_tls.login(key, headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in response.headers["set-cookie"]


def test_form_login_redirects_without_the_key(env: Env) -> None:
    key = env.reviewer["apiKey"]
    with httpx.Client(base_url=env.gate.url, timeout=10, follow_redirects=False) as client:
        ok = client.post("/dashboard/login", data={"key": key})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        assert "HttpOnly" in ok.headers["set-cookie"]
        failed = client.post("/dashboard/login", data={"key": key + "x"})
        assert failed.status_code == 303
        assert failed.headers["location"].startswith("/dashboard?login=")
        assert "set-cookie" not in failed.headers
        agent = client.post("/dashboard/login", data={"key": env.agent["apiKey"]})
        assert agent.headers["location"] == "/dashboard?login=agents_cannot_sign_in"
        for response in (ok, failed, agent):
            assert key not in response.headers["location"]
            assert env.agent["apiKey"] not in response.headers["location"]


def test_a_key_in_the_url_is_refused(env: Env) -> None:
    key = env.reviewer["apiKey"]
    with httpx.Client(base_url=env.gate.url, timeout=10) as client:
        response = client.post("/dashboard/login", params={"key": key}, json={"key": key})
        assert response.status_code == 400
        assert "set-cookie" not in response.headers
        assert key not in response.text
        page = client.get("/dashboard", params={"key": key})
        assert key not in page.text  # the page never echoes anything from the URL
    assert key not in env.gate.logs()


def test_agents_and_unknown_keys_cannot_sign_in(env: Env) -> None:
    with Dashboard(env.gate) as dashboard:
        agent = dashboard.login(env.agent["apiKey"])
        assert agent.status_code == 403
        assert agent.json()["error"] == "agents_cannot_sign_in"
        assert "set-cookie" not in agent.headers
        unknown = dashboard.login("gate_sk_not-a-real-key-at-all-0000000000")
        assert unknown.status_code == 401 and "set-cookie" not in unknown.headers
        empty = dashboard.client.post("/dashboard/login", json={})
        assert empty.status_code == 401
        admin = dashboard.login(env.gate.admin_key or "")
        assert admin.status_code == 200 and admin.json()["principal"]["role"] == "admin"


def test_cross_site_login_is_refused(env: Env) -> None:
    with Dashboard(env.gate) as dashboard:
        response = dashboard.login(
            env.reviewer["apiKey"], headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403 and "set-cookie" not in response.headers


def test_logout_ends_the_session_on_the_server(env: Env) -> None:
    with Dashboard(env.gate) as dashboard:
        dashboard.login(env.reviewer["apiKey"])
        assert dashboard.post("/dashboard/logout", csrf=False).status_code == 403
        response = dashboard.post("/dashboard/logout")
        assert response.status_code == 204
        assert 'gate_dashboard=""' in response.headers["set-cookie"]
        # The old cookie value is dead server-side, not merely forgotten by the browser.
        assert dashboard.get("/dashboard/api/session").status_code == 401


@pytest.mark.parametrize("action", ["suspend", "revoke"])
def test_a_suspended_or_revoked_reviewer_is_signed_out(env: Env, action: str) -> None:
    reviewer = new_reviewer(env, action)
    with Dashboard(env.gate) as dashboard:
        dashboard.login(reviewer["apiKey"])
        assert dashboard.get("/dashboard/api/intents").status_code == 200
        with env.gate.admin() as admin:
            assert admin.post(f"/v1/agents/{reviewer['agentId']}/{action}").status_code == 200
        response = dashboard.get("/dashboard/api/intents")
        assert response.status_code == 401
        assert response.json()["error"] == "session_ended"
        if action == "suspend":
            with env.gate.admin() as admin:
                admin.post(f"/v1/agents/{reviewer['agentId']}/reactivate")
            # The session was destroyed: reactivation does not bring it back.
            assert dashboard.get("/dashboard/api/intents").status_code == 401


# -- CSRF ----------------------------------------------------------------------------------------


def test_state_changes_need_the_csrf_token(env: Env, dash: Dashboard) -> None:
    intent = env.propose(env.agent, payload={"amount": 5})
    path = f"/dashboard/api/intents/{intent['intentId']}/approve"
    body = {"reviewHash": intent["reviewHash"]}
    missing = dash.post(path, body, csrf=False)
    assert missing.status_code == 403 and missing.json()["error"] == "csrf_failed"
    wrong = dash.client.post(
        path, json=body, headers={**dash.headers(csrf=False), "X-CSRF-Token": "A" * 43}
    )
    assert wrong.status_code == 403 and wrong.json()["error"] == "csrf_failed"
    # Another reviewer's valid token is no good with this session either.
    with Dashboard(env.gate) as other:
        other.login(new_reviewer(env)["apiKey"])
        swapped = dash.client.post(
            path, json=body, headers={**dash.headers(csrf=False), "X-CSRF-Token": other.csrf}
        )
        assert swapped.status_code == 403
    cross = dash.post(path, body, Origin="https://evil.example")
    assert cross.status_code == 403 and cross.json()["error"] == "cross_site_request"
    site = dash.post(path, body, **{"Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    form = dash.client.post(path, data=body, headers=dash.headers())
    assert form.status_code == 415  # a cross-site form cannot send JSON
    assert dash.view(intent["intentId"])["intent"]["status"] == "pending_approval"
    ok = dash.post(path, body, Origin=env.gate.url)
    assert ok.status_code == 200 and ok.json()["intent"]["status"] == "approved"


# -- decisions -----------------------------------------------------------------------------------


def test_approve_is_bound_to_the_review_hash(env: Env, dash: Dashboard) -> None:
    intent = env.propose(env.agent, payload={"amount": 10, "m": "bound"})
    (shown,) = [i for i in dash.pending() if i["intentId"] == intent["intentId"]]
    assert shown["reviewHash"] == intent["reviewHash"]
    no_hash = dash.decide(intent["intentId"], "approve")
    assert no_hash.status_code == 400
    mismatch = dash.decide(intent["intentId"], "approve", reviewHash="0" * 64)
    assert mismatch.status_code == 409
    assert mismatch.json()["error"] == "review_hash_mismatch"
    assert dash.view(intent["intentId"])["intent"]["status"] == "pending_approval"
    ok = dash.decide(intent["intentId"], "approve", reviewHash=shown["reviewHash"], note="ok")
    assert ok.status_code == 200
    assert ok.json()["intent"]["status"] == "approved"
    again = dash.decide(intent["intentId"], "approve", reviewHash=shown["reviewHash"])
    assert again.status_code == 409 and again.json()["error"] == "not_pending"
    assert intent["intentId"] not in {i["intentId"] for i in dash.pending()}


def test_reject_needs_a_reason_and_the_hash(env: Env, dash: Dashboard) -> None:
    intent = env.propose(env.agent, payload={"amount": 11})
    iid, review = intent["intentId"], intent["reviewHash"]
    assert dash.decide(iid, "reject", reviewHash=review).status_code == 400
    mismatch = dash.decide(iid, "reject", reviewHash="f" * 64, reason="no")
    assert mismatch.status_code == 409
    response = dash.decide(iid, "reject", reviewHash=review, reason="Refund too large")
    assert response.status_code == 200
    assert response.json()["intent"]["status"] == "rejected"
    detail = dash.view(iid)
    assert detail["intent"]["note"] == "Refund too large"
    rejected = [e for e in detail["audit"] if e["eventType"] == "rejected"]
    assert rejected and rejected[0]["metadata"]["reason"] == "Refund too large"
    assert rejected[0]["actor"] == env.reviewer["name"]


def test_audit_trail_is_complete_and_hash_chained(env: Env, dash: Dashboard) -> None:
    intent = env.propose(env.agent, payload={"amount": 12})
    dash.decide(intent["intentId"], "approve", reviewHash=intent["reviewHash"])
    audit = dash.view(intent["intentId"])["audit"]
    assert [e["eventType"] for e in audit] == ["proposed", "policy_checked", "approved"]
    assert all(len(e["hash"]) == 64 for e in audit)
    assert [e["seq"] for e in audit] == sorted(e["seq"] for e in audit)
    with env.gate.admin() as admin:
        api = admin.get(f"/v1/intents/{intent['intentId']}/audit").json()
    assert [e["hash"] for e in api] == [e["hash"] for e in audit]


def test_n_of_m_needs_distinct_reviewers_and_never_the_proposer(env: Env) -> None:
    first, second = new_reviewer(env, "first"), new_reviewer(env, "second")
    proposer = new_reviewer(env, "proposer")  # a reviewer-role key that proposes
    intent = env.propose(proposer, destination="bank.wire", policy="two-person", payload="x")
    assert intent["status"] == "pending_approval"
    iid, review = intent["intentId"], intent["reviewHash"]
    with Dashboard(env.gate) as a, Dashboard(env.gate) as b, Dashboard(env.gate) as own:
        a.login(first["apiKey"])
        b.login(second["apiKey"])
        own.login(proposer["apiKey"])
        (listed,) = [i for i in a.pending() if i["intentId"] == iid]
        assert listed["requireApprovals"] == 2 and listed["approvals"] == 0
        self_vote = own.decide(iid, "approve", reviewHash=review)
        assert self_vote.status_code == 403 and self_vote.json()["error"] == "self_review"
        vote = a.decide(iid, "approve", reviewHash=review)
        assert vote.status_code == 200
        assert vote.json()["intent"]["status"] == "pending_approval"
        assert vote.json()["intent"]["approvals"] == 1
        assert vote.json()["intent"]["voters"] == [first["agentId"]]
        twice = a.decide(iid, "approve", reviewHash=review)
        assert twice.status_code == 409 and twice.json()["error"] == "already_voted"
        assert b.view(iid)["intent"]["approvals"] == 1
        final = b.decide(iid, "approve", reviewHash=review)
        assert final.status_code == 200 and final.json()["intent"]["status"] == "approved"
        audit = [e["eventType"] for e in a.view(iid)["audit"]]
    assert audit.count("approval_vote") == 2 and audit[-1] == "approved"


# -- what the page shows -------------------------------------------------------------------------


def test_queue_shows_everything_a_reviewer_needs_with_pii_masked(env: Env, dash: Dashboard) -> None:
    payload = {"api_key": SECRET, "ssn": SSN, "card": CARD, "amount": 99, "note": "<b>hi</b>"}
    intent = env.propose(
        env.agent, payload=payload, recordCount=3, on_behalf_of=f"ssn {SSN}", metadata={"k": SSN}
    )
    response = dash.get("/dashboard/api/intents")
    (view,) = [i for i in response.json()["intents"] if i["intentId"] == intent["intentId"]]
    assert view["agent"] == env.agent["name"] and view["agentId"] == env.agent["agentId"]
    assert view["destination"] == "stripe.refund" and view["policy"] == "finance-high-risk"
    assert view["recordCount"] == 3
    assert view["risk_level"] in ("low", "medium", "high", "critical")
    assert isinstance(view["risk_score"], float)
    assert view["reason_code"] == "manual_review_required"
    assert view["expiresAt"] and view["held"] is False
    preview = view["payload"]["preview"]
    assert "[REDACTED]" in preview and "[SSN]" in preview and "[CARD ending 1111]" in preview
    assert "<b>hi</b>" in preview  # data, escaped by the page (textContent), not stripped here
    for raw in (SECRET, SSN, CARD, CARD.replace(" ", "")):
        assert raw not in response.text
        assert raw not in dash.get(f"/dashboard/api/intents/{intent['intentId']}").text
    assert "metadata" not in view


def test_mask_pii() -> None:
    assert mask_pii(f"ssn {SSN}.") == "ssn [SSN]."
    assert mask_pii('{"ssn": 123456789}') == '{"ssn": [SSN]}'
    assert mask_pii(f"card {CARD} and 5555-5555-5555-4444") == (
        "card [CARD ending 1111] and [CARD ending 4444]"
    )
    # Luhn-valid, but no card network starts with 8, and only Visa (4) has 13 digits.
    for number in ("8111111111111112", "5123456789010", "1234567890128"):
        assert mask_pii(f"id {number}") == f"id {number}"
    assert mask_pii("4111111111111111 5555555555554444") == (
        "[CARD ending 1111] [CARD ending 4444]"
    )
    # Not Luhn-valid, not card-shaped, or not an SSN: left alone.
    for text in ("order 4111111111111112", "id 1234567890123", "tel 555-123-4567", "000-12-3456"):
        assert mask_pii(text) == text


async def test_sessions_expire_when_idle_and_at_their_absolute_limit(tmp_path: Path) -> None:
    now = [1000.0]
    backing = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
    await backing.open()
    try:
        store = SessionStore(backing, ttl_s=100, idle_s=10, clock=lambda: now[0])
        token, session = await store.create("hash", "rev_1")
        assert session.same_as(await store.get(token))
        now[0] += 9
        assert session.same_as(await store.get(token))  # activity resets the idle clock
        now[0] += 11
        assert await store.get(token) is None  # idle too long
        token, session = await store.create("hash", "rev_1")
        for _ in range(12):
            now[0] += 9
            await store.get(token)
        assert await store.get(token) is None  # past the absolute lifetime despite activity
        token, session = await store.create("hash", "rev_1")
        assert session.csrf_matches(session.csrf_token) and not session.csrf_matches("x")
        # Another process on the same store sees the session, and its sign-out.
        other = SqliteStore(tmp_path, load_or_create_signer(tmp_path))
        await other.open()
        try:
            elsewhere = SessionStore(other, ttl_s=100, idle_s=10, clock=lambda: now[0])
            assert session.same_as(await elsewhere.get(token))
            await store.drop_key("hash")
            assert await elsewhere.get(token) is None
        finally:
            await other.close()
        # Only the id's hash is stored: the cookie value is nowhere in the database.
        stored = b"".join(path.read_bytes() for path in tmp_path.glob("gate.db*"))
        assert session.id_hash.encode() in stored and token.encode() not in stored
    finally:
        await backing.close()


# -- live updates --------------------------------------------------------------------------------


def test_event_stream_sends_new_intents_decisions_and_heartbeats(env: Env, dash: Dashboard) -> None:
    timeout = httpx.Timeout(10, read=5)
    with dash.client.stream(
        "GET", "/dashboard/events", headers=dash.headers(csrf=False), timeout=timeout
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        events = sse_events(stream)
        next_event(events, lambda name, _: name == "hello")
        intent = env.propose(env.agent, payload={"ssn": SSN, "amount": 1})
        _, data = next_event(
            events,
            lambda name, d: name == "intent" and d["intent"]["intentId"] == intent["intentId"],
        )
        assert data["event"] == "proposed"
        assert data["intent"]["status"] == "pending_approval"
        assert data["actor"] == env.agent["name"]
        assert SSN not in json.dumps(data) and "[SSN]" in data["intent"]["payload"]["preview"]
        next_event(events, lambda name, _: name == "heartbeat", timeout=5)
        dash.decide(intent["intentId"], "reject", reviewHash=intent["reviewHash"], reason="no")
        _, data = next_event(
            events,
            lambda name, d: name == "intent" and d["intent"]["intentId"] == intent["intentId"],
        )
        assert data["event"] == "rejected" and data["intent"]["status"] == "rejected"


def test_event_stream_shows_expiry_and_ends_on_logout(env: Env) -> None:
    with Dashboard(env.gate) as dashboard:
        dashboard.login(env.reviewer["apiKey"])
        with dashboard.client.stream(
            "GET",
            "/dashboard/events",
            headers=dashboard.headers(csrf=False),
            timeout=httpx.Timeout(10, read=5),
        ) as stream:
            events = sse_events(stream)
            next_event(events, lambda name, _: name == "hello")
            intent = env.propose(env.agent, payload={"amount": 2}, expiresIn="1s")
            _, data = next_event(
                events,
                lambda n, d: (
                    n == "intent"
                    and d["intent"]["intentId"] == intent["intentId"]
                    and d["event"] == "expired"
                ),
            )
            assert data["intent"]["status"] == "expired" and data["actor"] == "system"
            assert dashboard.post("/dashboard/logout").status_code == 204
            next_event(events, lambda name, _: name == "signed_out", timeout=5)


def test_event_stream_forgets_closed_clients(env: Env, dash: Dashboard) -> None:
    def open_and_count() -> int:
        with dash.client.stream(
            "GET", "/dashboard/events", headers=dash.headers(csrf=False), timeout=10
        ) as stream:
            _, hello = next_event(sse_events(stream), lambda name, _: name == "hello")
            return int(hello["liveClients"])

    open_and_count()
    open_and_count()
    # Each closed stream is noticed at its next write (a heartbeat at most 0.3 s later).
    wait_for(lambda: open_and_count() == 1, timeout=10, interval=0.5)


# -- held requests -------------------------------------------------------------------------------


def test_held_request_is_flagged_and_released_by_a_dashboard_approval(
    env: Env, dash: Dashboard
) -> None:
    marker = marker_for("held")
    results: list[Any] = []
    thread = env.held_request({"m": marker, "ssn": SSN}, results)

    def held_view() -> dict[str, Any] | None:
        return next(
            (i for i in dash.pending() if i["held"] and marker in (i["payload"]["preview"] or "")),
            None,
        )

    view = wait_for(held_view, timeout=15)
    assert view["method"] == "POST" and "/v1/refunds" in view["url"]
    # The card shows the hold's own deadline (hold_timeout_ms), not only the intent's.
    assert view["heldUntil"] and view["expiresAt"]
    with env.gate.admin() as admin:
        (held,) = [
            h
            for h in admin.get("/v1/proxy/held").json()["held"]
            if h["intentId"] == view["intentId"]
        ]
    assert held["releaseAt"] == view["heldUntil"]
    assert SSN not in json.dumps(view)
    response = dash.decide(view["intentId"], "approve", reviewHash=view["reviewHash"])
    assert response.status_code == 200, response.text
    thread.join(timeout=20)
    (answer,) = results
    assert answer.status_code == 200 and marker in answer.text  # the upstream's own echo


# -- Slack notifications -------------------------------------------------------------------------


def test_slack_message_for_new_pending_intent_is_retried(env: Env) -> None:
    assert env.slack is not None
    started = time.monotonic()
    intent = env.propose(env.agent, payload={"ssn": SSN, "amount": 3})
    assert time.monotonic() - started < 1.0  # the first delivery fails: nobody waits for it
    iid = intent["intentId"]

    def deliveries() -> list[RecordedRequest]:
        return [r for r in env.slack.requests if iid.encode() in r.body]  # type: ignore[union-attr]

    wait_for(lambda: len(deliveries()) >= 2, timeout=15)
    first, second = deliveries()[:2]
    assert first.body == second.body and second.time - first.time >= 0.9  # backed off
    assert first.header("content-type") == "application/json"
    text = json.loads(first.body)["text"]
    assert env.agent["name"] in text and "stripe.refund" in text
    assert "finance-high-risk" in text and "Risk:" in text
    assert f"<https://gate.example.test/dashboard#intent={iid}|" in text
    assert SSN not in text  # no payload in chat
    time.sleep(0.5)
    assert len(deliveries()) == 2  # the second attempt succeeded: no more
    # An auto-decided intent (here: a blocked one) sends nothing.
    blocked = env.propose(env.agent, destination="nowhere.example", policy="missing-policy")
    time.sleep(1.5)
    assert not [r for r in env.slack.requests if blocked["intentId"].encode() in r.body]
    assert "/services/T0/B0/secret" not in env.gate.logs()  # the webhook URL is a secret


def _notifier(port: int, allowed: bool = True, delays: tuple[float, ...] = (0.05,)) -> Any:
    import ipaddress

    networks = [ipaddress.ip_network("127.0.0.1/32")] if allowed else []
    return SlackNotifier(
        f"http://127.0.0.1:{port}/services/x",
        "http://127.0.0.1:4000",
        networks,
        timeout_s=2,
        retry_delays=delays,
    )


INTENT = Intent(
    id="int_0123",
    agent_name="bot <script>",
    agent_id="agt_1",
    on_behalf_of="alice",
    source="api",
    destination="stripe.refund",
    policy="finance-high-risk",
    risk_score=0.4,
    risk_level="medium",
    reason_code="manual_review_required",
    status=Status.PENDING,
    created_at="2026-01-01T00:00:00.000Z",
)


def test_slack_message_text_is_escaped_and_links_the_item() -> None:
    text = pending_message(INTENT, "https://gate.example/")["text"]
    assert "bot &lt;script&gt;" in text and "<script>" not in text
    assert "(on behalf of alice)" in text and "0.40 (medium)" in text
    assert "<https://gate.example/dashboard#intent=int_0123|Review int_0123" in text


async def test_slack_target_checks_and_no_retry_on_client_errors() -> None:
    with Upstream(handler=status(404, b"no_service")) as gone_away:
        assert await _notifier(gone_away.port).deliver({"text": "x"}) is False
        assert len(gone_away.requests) == 1  # a 4xx is final
    with Upstream() as private:
        # Loopback is private: without webhook_allow_cidrs nothing is sent at all.
        assert await _notifier(private.port, allowed=False).deliver({"text": "x"}) is False
        assert private.requests == []
    with Upstream(handler=status(503)) as down:
        started = time.monotonic()
        assert await _notifier(down.port, delays=(0.05, 0.05)).deliver({"text": "x"}) is False
        assert len(down.requests) == 3 and time.monotonic() - started < 5
    with Upstream() as fine:
        notifier = _notifier(fine.port)
        await notifier.on_event("approved", INTENT, "x")  # only new pending intents
        approved = dataclasses.replace(INTENT, status=Status.APPROVED)
        await notifier.on_event("proposed", approved, "x")
        await asyncio.sleep(0.1)
        assert fine.requests == []
        await notifier.on_event("proposed", INTENT, "x")
        assert len(fine.requests) == 1
