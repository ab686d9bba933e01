"""Signed webhooks: registration, target checks and delivery with retries.

Signature: ``X-Gate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` with
``X-Gate-Timestamp``. The secret itself never travels after registration.

Targets are checked by ``gate_proxy/ssrf.py``: the proxy's address policy and its
``egress_allow``, at registration (400 with the reason) and again before every delivery
attempt, connecting only to the addresses just checked.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from gate_proxy.clock import utc_iso
from gate_proxy.core.egress import Network
from gate_proxy.core.intents import Intent
from gate_proxy.egress_resolver import EgressResolver
from gate_proxy.errors import GateError, InvalidInput, invalid, not_found
from gate_proxy.keys import random_id
from gate_proxy.metrics import GateMetrics
from gate_proxy.principal import Principal
from gate_proxy.ssrf import (
    TargetRefused,
    as_egress,
    check_target,
    outbound_resolver,
    parse_target,
    post_checked,
)
from gate_proxy.store.base import Row, Store

log = logging.getLogger("gate.webhooks")

FIRED_ON = {"approved", "rejected", "expired", "execution_succeeded", "execution_failed"}
ALLOW_HINT = "; allow it deliberately with egress_allow in gate.yaml"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def refusal_error(refused: TargetRefused) -> GateError:
    """The 400 answer for a refused webhook target, with the reason a machine can read."""
    extra = {"egress": refused.egress()} if refused.verdict is not None else {}
    if refused.kind != "denied":
        return InvalidInput("webhook_target_invalid", f"webhook target: {refused.message}", **extra)
    # The gate's own listeners stay denied even when allowlisted: no hint to try.
    hint = "" if refused.egress()["reason"] == "own_listener" else ALLOW_HINT
    return InvalidInput(
        "webhook_target_forbidden", f"webhook target {refused.message}{hint}", **extra
    )


class Webhooks:
    def __init__(
        self,
        store: Store,
        metrics: GateMetrics,
        egress: EgressResolver | Sequence[Network],
        *,
        timeout_s: float = 5.0,
        retry_delays: Sequence[float] = (1, 2, 4, 8, 16),
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.egress = as_egress(egress)
        self.timeout_s = timeout_s
        self.retry_delays = tuple(retry_delays)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, store: Store, metrics: GateMetrics, settings: Any) -> "Webhooks":
        """Webhooks checked with the proxy's egress policy (egress_allow, own listeners)."""
        return cls(
            store, metrics, outbound_resolver(settings), timeout_s=settings.webhook_timeout_s
        )

    async def register(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        # JSON null counts as absent (seed SDKs send it); every spelling given is checked.
        spellings = [body[name] for name in ("intentId", "intent_id") if body.get(name) is not None]
        url = body.get("url")
        if not spellings or any(not isinstance(v, str) or not v for v in spellings):
            raise invalid("intentId is required (a string)")
        if len(set(spellings)) > 1:
            raise invalid("intentId and intent_id disagree")
        if not isinstance(url, str) or not url:
            raise invalid("url is required (a string)")
        intent_id = spellings[0]
        intent = await self.store.get_intent(intent_id)
        if intent is None or not caller.can_see(intent.agent_id):
            # One answer for "no such intent" and "not yours", so ids cannot be probed.
            raise not_found("intent")
        try:
            await check_target(self.egress, parse_target(url))
        except TargetRefused as refused:
            raise refusal_error(refused) from None
        secret = body.get("secret")
        generated = secret is None
        if generated:
            secret = secrets.token_urlsafe(32)
        if not isinstance(secret, str) or len(secret) < 16:
            raise invalid(
                "secret must be a string of at least 16 characters "
                "(or leave it out and the gate generates one, shown once)"
            )
        webhook = {
            "id": random_id("whk_", 8),
            "intent_id": intent_id,
            "owner_id": caller.id,
            "url": url,
            "secret": secret,
            "created_at": utc_iso(),
        }
        await self.store.insert_webhook(webhook)
        answer = {
            "webhookId": webhook["id"],
            "intentId": intent_id,
            "url": url,
            "events": sorted(FIRED_ON),
        }
        if generated:
            answer["secret"] = secret  # shown once, like an API key
        return answer

    async def on_event(self, event: str, intent: Intent, actor: str) -> None:
        if event not in FIRED_ON:
            return
        for hook in await self.store.webhooks_for(intent.id):
            task = asyncio.create_task(self._deliver(hook, event, intent, actor))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, hook: Row, event: str, intent: Intent, actor: str) -> None:
        payload = {
            "intentId": intent.id,
            "event": event,
            "status": intent.status,
            "actor": actor,
            "destination": intent.destination,
            "policy": intent.policy,
            "firedAt": utc_iso(),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery_id = random_id("dlv_", 8)
        detail = ""
        for attempt, delay in enumerate((0.0, *self.retry_delays), start=1):
            if delay:
                await asyncio.sleep(delay)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Gate-Event": event,
                "X-Gate-Delivery": delivery_id,
                "X-Gate-Timestamp": timestamp,
                "X-Gate-Signature": sign(hook["secret"], timestamp, body),
            }
            try:
                status = await self._post(hook["url"], body, headers)
            except TargetRefused as refused:
                detail = f"attempt {attempt}: target refused: {refused.message}"
                if not refused.retryable:  # a denied address stays denied: nothing is sent
                    await self._refused(hook, event, refused, detail)
                    return
            except Exception as exc:  # network errors, timeouts: retry
                detail = f"attempt {attempt}: {type(exc).__name__}"
            else:
                if 200 <= status < 300:
                    self.metrics.webhook_deliveries.inc("ok")
                    await self.store.record_delivery(hook["id"], event, True, str(status))
                    return
                detail = f"attempt {attempt}: HTTP {status}"
            self.metrics.webhook_deliveries.inc("retry")
        self.metrics.webhook_deliveries.inc("failed")
        log.warning("webhook delivery failed", extra={"webhook": hook["id"], "detail": detail})
        await self.store.record_delivery(hook["id"], event, False, detail)

    async def _refused(self, hook: Row, event: str, refused: TargetRefused, detail: str) -> None:
        self.metrics.webhook_deliveries.inc("refused")
        log.warning(
            "webhook delivery refused: target address denied",
            extra={"webhook": hook["id"], "egress": refused.egress(), "detail": detail},
        )
        await self.store.record_delivery(hook["id"], event, False, detail)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """One attempt: the target is checked now (DNS may have changed) and pinned."""
        response = await post_checked(
            self.egress, parse_target(url), body, headers, timeout_s=self.timeout_s
        )
        return response.status

    @property
    def pending(self) -> int:
        """Deliveries still being attempted (retries included)."""
        return len(self._tasks)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the deliveries under way (a short-lived process, e.g. the CLI)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
