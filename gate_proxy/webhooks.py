"""Signed webhooks: registration, target checks and delivery with retries.

Signature: ``X-Gate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` with
``X-Gate-Timestamp``. The secret itself never travels after registration.
"""

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gate_proxy.clock import utc_iso
from gate_proxy.errors import bad_request, forbidden
from gate_proxy.keys import random_id
from gate_proxy.metrics import GateMetrics
from gate_proxy.principal import Principal
from gate_proxy.store.base import Row, Store

log = logging.getLogger("gate.webhooks")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FIRED_ON = {"approved", "rejected", "expired", "execution_succeeded", "execution_failed"}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def address_allowed(address: str, allowed: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed):
        return True
    return ip.is_global and not ip.is_multicast


async def resolve_checked(host: str, port: int, allowed: Sequence[Network]) -> list[str]:
    """Resolve once and refuse if any answer is private, loopback or link-local."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise bad_request(
            f"webhook host does not resolve: {host}", "webhook_target_invalid"
        ) from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    refused = [a for a in addresses if not address_allowed(a, allowed)]
    if refused or not addresses:
        raise forbidden(
            f"webhook target {host} resolves to a private, loopback or link-local address "
            "(allow it with webhook_allow_cidrs in gate.yaml)",
            "webhook_target_forbidden",
        )
    return addresses


class _PinnedResolver(AbstractResolver):
    """Connect to the addresses we checked, not to whatever DNS says a moment later."""

    def __init__(self, addresses: list[str]) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
        ]

    async def close(self) -> None:
        return None


class Webhooks:
    def __init__(
        self,
        store: Store,
        metrics: GateMetrics,
        allowed: Sequence[Network],
        *,
        timeout_s: float = 5.0,
        retry_delays: Sequence[float] = (1, 2, 4, 8, 16),
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.allowed = list(allowed)
        self.timeout_s = timeout_s
        self.retry_delays = tuple(retry_delays)
        self._tasks: set[asyncio.Task[None]] = set()

    async def register(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        intent_id = body.get("intentId") or body.get("intent_id")
        url = body.get("url")
        if not isinstance(intent_id, str) or not isinstance(url, str):
            raise bad_request("intentId and url are required")
        intent = await self.store.get_intent(intent_id)
        if intent is None or not caller.can_see(intent["agent_id"]):
            raise (
                bad_request("unknown intent", "not_found")
                if intent is None
                else forbidden("only the intent's owner or a reviewer may register a webhook")
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("url must be an http(s) URL", "webhook_target_invalid")
        if parts.username or parts.password:
            raise bad_request("url must not carry credentials", "webhook_target_invalid")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await resolve_checked(parts.hostname, port, self.allowed)
        secret = body.get("secret")
        generated = secret is None
        if generated:
            secret = secrets.token_urlsafe(32)
        if not isinstance(secret, str) or len(secret) < 16:
            raise bad_request("secret must be a string of at least 16 characters")
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

    async def on_event(self, event: str, intent: Row, actor: str) -> None:
        if event not in FIRED_ON:
            return
        for hook in await self.store.webhooks_for(intent["id"]):
            task = asyncio.create_task(self._deliver(hook, event, intent, actor))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, hook: Row, event: str, intent: Row, actor: str) -> None:
        payload = {
            "intentId": intent["id"],
            "event": event,
            "status": intent["status"],
            "actor": actor,
            "destination": intent["destination"],
            "policy": intent["policy"],
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
                detail = await self._post(hook["url"], body, headers)
            except Exception as exc:  # network errors, refused targets: retry
                detail = f"attempt {attempt}: {type(exc).__name__}"
            else:
                if detail.startswith("2"):
                    self.metrics.webhook_deliveries.inc("ok")
                    await self.store.record_delivery(hook["id"], event, True, detail)
                    return
                detail = f"attempt {attempt}: HTTP {detail}"
            self.metrics.webhook_deliveries.inc("retry")
        self.metrics.webhook_deliveries.inc("failed")
        log.warning("webhook delivery failed", extra={"webhook": hook["id"], "detail": detail})
        await self.store.record_delivery(hook["id"], event, False, detail)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await resolve_checked(parts.hostname or "", port, self.allowed)
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(addresses), force_close=True)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.post(url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            return str(response.status)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
