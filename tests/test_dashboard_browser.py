"""The dashboard in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by
Playwright, against a real `gate-proxy serve` with a real upstream on 127.0.0.1.

Each flow signs in, watches a proxied request's intent arrive live, approves it (the held
request completes with the upstream's answer), rejects another, and checks that a secret
and an SSN never reach the page. The desktop flow takes the README's screenshot: into the
test's temporary directory, or into docs/img/dashboard.png when GATE_UPDATE_SCREENSHOT=1
(a deliberate update; a normal test run never modifies tracked files).

Chromium comes from `deploy/browser.sh` (apt). Without it these tests FAIL, never skip:
a dashboard nobody can click through is not tested.
"""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import test_dashboard as support
from test_dashboard import CARD, SECRET, SSN, Env, marker_for, start_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "dashboard.png"
WAIT_MS = 10_000  # every browser wait is bounded


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run deploy/browser.sh (installs Debian chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with start_env(tmp_path_factory.mktemp("dashboard-browser")) as value:
        yield value


def open_page(browser: Any, env: Env, width: int, height: int) -> tuple[Any, Any, list[str]]:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)

    # Loopback only: anything else the page might try is aborted, and would fail the test.
    def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return context, page, urls


def sign_in(page: Any, env: Env, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{env.gate.url}/dashboard")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#queue-view")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    expect(page.get_by_label("API key")).to_have_value("")


def card_for(page: Any, marker: str) -> Any:
    return page.locator("li.card", has_text=marker)


def held_answer(thread: Any, results: list[Any], page: Any, env: Env) -> Any:
    thread.join(timeout=30)
    if not results:  # say what the page and the gate saw, to make a failure readable
        print("queue on the page:", page.locator("#queue").inner_text())
        with env.gate.admin() as admin:
            print("held:", admin.get("/v1/proxy/held").text)
    assert results, "the held request did not finish"
    return results[0]


def assert_no_raw_secrets(page: Any) -> None:
    content = page.content()
    for raw in (SECRET, SSN, CARD):
        assert raw not in content, f"{raw!r} reached the page"


def test_review_flow_desktop(browser: Any, env: Env) -> None:
    from playwright.sync_api import expect

    context, page, urls = open_page(browser, env, 1280, 800)
    key = env.reviewer["apiKey"]
    try:
        sign_in(page, env, key)
        # The session cookie is invisible to scripts and strict about sites.
        (cookie,) = [c for c in context.cookies() if c["name"] == "gate_dashboard"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""

        wire = env.propose(
            env.agent,
            destination="bank.wire",
            policy="two-person",
            payload={"to": "ACME GmbH", "amount_eur": 18500, "account_ssn": SSN},
            recordCount=1,
            on_behalf_of="alice@example.com",
        )
        expect(page.locator(f"#intent-{wire['intentId']}")).to_contain_text("0 of 2")

        # An intent arrives live: a proxied POST held open with X-Gate-Wait.
        marker = marker_for("refund")
        results: list[Any] = []
        body = {"m": marker, "amount": 420, "api_key": SECRET, "ssn": SSN, "card": CARD}
        thread = env.held_request(body, results)
        card = card_for(page, marker)
        expect(card).to_be_visible(timeout=8_000)  # the 15 s poll cannot be what shows it
        expect(card.locator(".badge-held")).to_have_text("connection held")
        # The hold's own deadline, counting down next to the connection state.
        expect(card).to_contain_text("the hold ends in")
        expect(card.locator(".hold-countdown")).to_have_text(re.compile(r"^\d+m \d\ds$"))
        expect(card).to_contain_text("stripe.refund")
        expect(card).to_contain_text("finance-high-risk")
        expect(card).to_contain_text(f"POST {env.upstream.url}/v1/refunds")
        expect(card).to_contain_text("manual_review_required")
        preview = card.locator(".preview")
        expect(preview).to_contain_text("[REDACTED]")
        expect(preview).to_contain_text("[SSN]")
        expect(preview).to_contain_text("[CARD ending 1111]")
        assert_no_raw_secrets(page)

        # The README's picture: the held refund on top, a two-person wire below it.
        screenshot = env.gate.root / "dashboard.png"
        if os.environ.get("GATE_UPDATE_SCREENSHOT") == "1":
            screenshot = README_SCREENSHOT
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(screenshot), animations="disabled")
        assert screenshot.stat().st_size > 10_000

        # The countdown is live.
        countdown = card.locator(".countdown")
        first = countdown.text_content()
        assert first and "m" in first
        expect(countdown).not_to_have_text(first, timeout=3_000)

        # Agent data is text, never markup.
        xss = env.propose(
            env.agent,
            payload={"m": "xss"},
            on_behalf_of='<img src=x onerror="window.__xss=1">',
        )
        xss_card = page.locator(f"#intent-{xss['intentId']}")
        expect(xss_card).to_contain_text('<img src=x onerror="window.__xss=1">')
        assert xss_card.locator("img").count() == 0
        assert page.evaluate("window.__xss") is None

        # A fingerprint that differs from what is on screen is refused, and the page says so.
        def tamper(route: Any) -> None:
            data = json.loads(route.request.post_data or "{}")
            route.continue_(post_data=json.dumps({**data, "reviewHash": "0" * 64}))

        page.route("**/approve", tamper)
        xss_card.get_by_role("button", name="Approve").click()
        expect(xss_card.locator(".card-error")).to_contain_text("409")
        page.unroute("**/approve", tamper)
        expect(xss_card).to_be_visible()

        # The full audit trail, per intent.
        card.locator("summary", has_text="Audit trail").click()
        expect(card.locator(".audit-list")).to_contain_text("proposed")
        expect(card.locator(".audit-list")).to_contain_text("policy_checked")

        # Approve: the held request completes with the upstream's own response.
        card.get_by_role("button", name="Approve").click()
        answer = held_answer(thread, results, page, env)
        assert answer.status_code == 200, answer.text
        assert marker in answer.text
        expect(card).to_have_count(0)

        # Reject another, with a reason: the held request gets a 403.
        marker2 = marker_for("reject")
        results2: list[Any] = []
        thread2 = env.held_request({"m": marker2, "ssn": SSN}, results2)
        card2 = card_for(page, marker2)
        expect(card2).to_be_visible(timeout=8_000)
        card2.get_by_role("button", name="Reject…").click()
        card2.get_by_label("Reason for rejecting").fill("Refund exceeds the customer's order")
        card2.get_by_role("button", name="Reject", exact=True).click()
        answer2 = held_answer(thread2, results2, page, env)
        assert answer2.status_code == 403
        assert answer2.json()["status"] == "rejected"
        expect(card2).to_have_count(0)
        assert_no_raw_secrets(page)

        # The key was never part of any URL the page loaded.
        assert urls and not [u for u in urls if key in u]
    finally:
        context.close()


def test_review_flow_phone_with_keyboard(browser: Any, env: Env) -> None:
    from playwright.sync_api import expect

    context, page, _ = open_page(browser, env, 390, 844)
    try:
        sign_in(page, env, env.reviewer["apiKey"])
        marker = marker_for("phone")
        results: list[Any] = []
        thread = env.held_request({"m": marker, "api_key": SECRET, "ssn": SSN}, results)
        card = card_for(page, marker)
        expect(card).to_be_visible(timeout=8_000)
        expect(card.locator(".badge-held")).to_have_text("connection held")
        # The hold's own deadline, counting down next to the connection state.
        expect(card).to_contain_text("the hold ends in")
        expect(card.locator(".hold-countdown")).to_have_text(re.compile(r"^\d+m \d\ds$"))
        assert_no_raw_secrets(page)
        # Readable on a phone: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        # Keyboard only: focus Approve and press Enter.
        approve = card.get_by_role("button", name="Approve")
        approve.focus()
        expect(approve).to_be_focused()
        page.keyboard.press("Enter")
        answer = held_answer(thread, results, page, env)
        assert answer.status_code == 200 and marker in answer.text
        expect(card).to_have_count(0)

        marker2 = marker_for("phone-reject")
        results2: list[Any] = []
        thread2 = env.held_request({"m": marker2, "ssn": SSN}, results2)
        card2 = card_for(page, marker2)
        expect(card2).to_be_visible(timeout=8_000)
        card2.get_by_role("button", name="Reject…").focus()
        page.keyboard.press("Enter")
        reason = card2.get_by_label("Reason for rejecting")
        expect(reason).to_be_focused()
        page.keyboard.type("Not on a phone, thanks")
        page.keyboard.press("Tab")
        expect(card2.get_by_role("button", name="Reject", exact=True)).to_be_focused()
        page.keyboard.press("Enter")
        answer2 = held_answer(thread2, results2, page, env)
        assert answer2.status_code == 403
        expect(card2).to_have_count(0)
        assert_no_raw_secrets(page)

        # Signing out ends the session on the server, not just on the page.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        status = page.evaluate(
            "fetch('/dashboard/api/session', {credentials: 'same-origin'}).then(r => r.status)"
        )
        assert status == 401
    finally:
        context.close()


def test_agent_key_cannot_sign_in_in_the_browser(browser: Any, env: Env) -> None:
    from playwright.sync_api import expect

    context, page, urls = open_page(browser, env, 1280, 800)
    try:
        page.goto(f"{env.gate.url}/dashboard")
        page.get_by_label("API key").fill(env.agent["apiKey"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#login-error")).to_contain_text("agent keys cannot sign in")
        expect(page.locator("#queue-view")).to_be_hidden()
        assert not [c for c in context.cookies() if c["name"] == "gate_dashboard"]
        assert not [u for u in urls if env.agent["apiKey"] in u]
    finally:
        context.close()


def test_support_module_is_shared() -> None:
    # The browser tests reuse the HTTP tests' helpers; keep that import honest.
    assert support.start_env is start_env
