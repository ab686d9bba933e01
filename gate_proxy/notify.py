"""Slack-compatible incoming-webhook messages for new pending intents.

Subscribed to the event bus, so each message is sent from a background task: delivery and
its retries (with backoff) never delay a decision. The target is checked like signed
webhooks and proxied requests (``gate_proxy/ssrf.py``: one address policy, ``egress_allow``)
before every attempt, and the connection goes to the checked addresses only. A literal
address that is denied turns notifications off at startup. The webhook URL is itself a
secret, so only its host is ever logged.
"""

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Sequence
from typing import Any

from gate_proxy.core.egress import Network
from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.egress_resolver import EgressResolver
from gate_proxy.settings import Settings
from gate_proxy.ssrf import TargetRefused, as_egress, outbound_resolver, parse_target, post_checked

log = logging.getLogger("gate.notify")

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
MAX_RETRY_AFTER = 60.0


def slack_escape(text: object) -> str:
    """Slack mrkdwn needs only these three escaped; anything else is literal text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def intent_link(dashboard_url: str, intent_id: str) -> str:
    return f"{dashboard_url.rstrip('/')}/dashboard#intent={intent_id}"


def pending_message(intent: Intent, dashboard_url: str) -> dict[str, Any]:
    """The message body. No payload and no URL: they may carry data Slack should not hold."""
    agent = slack_escape(intent.agent_name or intent.agent_id)
    if intent.on_behalf_of:
        agent += f" (on behalf of {slack_escape(intent.on_behalf_of)})"
    risk = f"{float(intent.risk_score or 0):.2f} ({slack_escape(intent.risk_level)})"
    link = intent_link(dashboard_url, intent.id)
    lines = [
        f"Approval needed: *{agent}* wants to write to *{slack_escape(intent.destination)}*",
        f"Policy: {slack_escape(intent.policy)} · Risk: {risk} · "
        f"Reason: {slack_escape(intent.reason_code or 'review required')}",
        f"<{link}|Review {slack_escape(intent.id)} in the dashboard>",
    ]
    return {"text": "\n".join(lines)}


class SlackNotifier:
    def __init__(
        self,
        webhook_url: str,
        dashboard_url: str,
        egress: EgressResolver | Sequence[Network],
        *,
        timeout_s: float = 5.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        try:
            self.target = parse_target(webhook_url)
        except TargetRefused as refused:
            raise ValueError(f"slack_webhook_url: {refused.message}") from None
        self.host = self.target.host
        self.port = self.target.port
        self.dashboard_url = dashboard_url
        self.egress = as_egress(egress)
        self.timeout_s = timeout_s
        self.retry_delays = tuple(retry_delays)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SlackNotifier | None":
        """A notifier when ``slack_webhook_url`` is set; None otherwise (or if it is unusable)."""
        if not settings.slack_webhook_url:
            return None
        dashboard_url = settings.dashboard_url or f"http://{settings.host}:{settings.port}"
        try:
            notifier = cls(
                settings.slack_webhook_url,
                dashboard_url,
                outbound_resolver(settings),
                timeout_s=settings.webhook_timeout_s,
            )
            notifier.check_literal_target()
        except ValueError as exc:
            log.error("Slack notifications are off: %s", exc, extra={"event": "notify_config"})
            return None
        return notifier

    def check_literal_target(self) -> None:
        """Raise ValueError now if the URL names a denied address (names are checked later)."""
        verdict = self.egress.check_literal(self.host, self.port)
        if verdict is not None and not verdict.allowed:
            raise ValueError(
                f"slack_webhook_url target {self.target.display}: {verdict.message} "
                "(allow it deliberately with egress_allow in gate.yaml)"
            )

    async def on_event(self, event: str, intent: Intent, actor: str) -> None:
        """Event-bus listener: one message per intent that starts waiting for a human."""
        if event != Event.PROPOSED or intent.status != Status.PENDING:
            return
        await self.deliver(pending_message(intent, self.dashboard_url), intent_id=intent.id)

    async def deliver(self, message: dict[str, Any], *, intent_id: str = "") -> bool:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        detail = ""
        server_asked = 0.0  # a 429's Retry-After, honoured when longer than our backoff
        for attempt, delay in enumerate((0.0, *self.retry_delays), start=1):
            # Backoff with a little jitter, so many gates do not retry in lockstep.
            pause = max(server_asked, delay * random.uniform(1.0, 1.25))
            if pause:
                await asyncio.sleep(pause)
            server_asked = 0.0
            try:
                status, retry_after = await self._post(body)
            except TargetRefused as refused:
                detail = f"attempt {attempt}: target refused: {refused.message}"
                if refused.retryable:  # the name did not resolve: DNS may recover
                    continue
                break  # a denied address: nothing is sent, and retrying cannot help
            except Exception as exc:  # connection, timeout: retry
                detail = f"attempt {attempt}: {type(exc).__name__}"
                continue
            if 200 <= status < 300:
                log.info(
                    "Slack notification delivered",
                    extra={"event": "notify_ok", "intent_id": intent_id, "attempts": attempt},
                )
                return True
            detail = f"attempt {attempt}: HTTP {status}"
            if 400 <= status < 500 and status not in (408, 429):
                break  # a bad URL or payload: retrying cannot help
            if retry_after is not None:
                server_asked = max(0.0, min(retry_after, MAX_RETRY_AFTER))
        log.warning(
            "Slack notification failed",
            extra={
                "event": "notify_failed",
                "intent_id": intent_id,
                "host": self.host,
                "detail": detail,
            },
        )
        return False

    async def _post(self, body: bytes) -> tuple[int, float | None]:
        """One attempt: the target is checked now (DNS may have changed) and pinned."""
        response = await post_checked(
            self.egress,
            self.target,
            body,
            {"Content-Type": "application/json"},
            timeout_s=self.timeout_s,
        )
        retry_after: float | None = None
        with contextlib.suppress(ValueError):
            retry_after = float(response.headers.get("Retry-After", ""))
        return response.status, retry_after
