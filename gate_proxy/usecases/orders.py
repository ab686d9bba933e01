"""Signed execution orders (seed 004's runner mode): an approved API intent gets a
one-time token and an Ed25519-signed order; the worker reports the outcome with it."""

from datetime import timedelta
from typing import Any

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.canonical import canonical_bytes
from gate_proxy.core.intents import Event, Status
from gate_proxy.errors import (
    Unauthenticated,
    conflict,
    expired,
    invalid,
    not_found,
    not_permitted,
)
from gate_proxy.keys import Signer, generate_execution_token, hash_key, keys_equal, random_id
from gate_proxy.principal import Principal
from gate_proxy.store.base import Conflict, EventDraft, Row, Store
from gate_proxy.usecases.agents import Agents
from gate_proxy.usecases.events import EventBus
from gate_proxy.usecases.review import Review

EXECUTION_TTL = timedelta(minutes=15)


class Orders:
    def __init__(
        self, store: Store, signer: Signer, agents: Agents, review: Review, events: EventBus
    ) -> None:
        self.store = store
        self.signer = signer
        self.agents = agents
        self.review = review
        self.events = events

    async def execute(self, caller: Principal, intent_id: str) -> dict[str, Any]:
        intent = await self.review.get_intent(caller, intent_id)
        if intent.agent_id != caller.id and not caller.is_admin:
            raise not_permitted("only the proposing agent or an admin may request execution")
        if intent.status not in (Status.APPROVED, Status.SCHEDULED):
            raise conflict(f"intent is {intent.status}, not approved", "not_approved")
        if intent.source == "proxy":
            raise conflict("proxied intents are executed by the proxy on retry", "proxy_intent")
        token = generate_execution_token()
        now = utc_now()
        execution = {
            "id": random_id("exe_", 8),
            "intent_id": intent_id,
            "agent_id": intent.agent_id,
            "mode": "runner_exec",
            "status": "pending",
            "token_hash": hash_key(token),
            "created_at": utc_iso(now),
            "expires_at": utc_iso(now + EXECUTION_TTL),
        }
        order = {
            "executionId": execution["id"],
            "intent_id": intent_id,
            "agent_id": intent.agent_id,
            "destination": intent.destination,
            "policy": intent.policy,
            "payload_sha256": intent.payload_sha256,
            "mode": execution["mode"],
            "issued_at": execution["created_at"],
            "expires_at": execution["expires_at"],
            "key_id": self.signer.key_id,
        }
        signature = self.signer.sign(canonical_bytes(order))
        events = [
            EventDraft(
                Event.EXECUTION_REQUESTED,
                intent_id,
                caller.name,
                intent.agent_id,
                {
                    "execution_id": execution["id"],
                    "mode": execution["mode"],
                    "expires_at": execution["expires_at"],
                    "order_signature": signature,
                },
            )
        ]
        try:
            await self.store.insert_execution(execution, intent_id, events)
        except Conflict as exc:
            raise conflict(str(exc), "execution_conflict") from exc
        return {
            "executionId": execution["id"],
            "execution_token": token,
            "intent_id": intent_id,
            "expires_at": execution["expires_at"],
            "mode": execution["mode"],
            "order": order,
            "signature": signature,
            "signature_alg": "Ed25519",
            "key_id": self.signer.key_id,
        }

    async def get(self, caller: Principal, execution_id: str) -> Row:
        execution = await self.store.get_execution(execution_id)
        if execution is None or not caller.can_see(execution["agent_id"]):
            raise not_found("execution")
        return execution

    async def report(self, execution_id: str, bearer: str | None, body: dict[str, Any]) -> Row:
        execution = await self.store.get_execution(execution_id)
        if execution is None:
            raise not_found("execution")
        actor = await self._report_actor(execution, bearer)
        status = body.get("status")
        if status not in ("succeeded", "failed"):
            raise invalid("status must be succeeded or failed")
        report = body.get("report", {})
        if execution["token_used"] or execution["status"] != "pending":
            raise conflict("this execution has already been reported", "already_reported")
        if execution["expires_at"] <= utc_iso():
            await self.store.expire_execution(execution_id)
            raise expired("the execution token has expired")
        event = Event.EXECUTION_SUCCEEDED if status == "succeeded" else Event.EXECUTION_FAILED
        now = utc_iso()
        events = [
            EventDraft(
                event,
                execution["intent_id"],
                actor,
                execution["agent_id"],
                {"execution_id": execution_id, "report": report},
            )
        ]
        try:
            await self.store.complete_execution(execution_id, status, report, now, status, events)
        except Conflict as exc:
            raise conflict("this execution has already been reported", "already_reported") from exc
        intent = await self.store.get_intent(execution["intent_id"])
        if intent is not None:
            self.events.transitioned(intent, event, actor)
        return {**execution, "status": status, "report": report, "completed_at": now}

    async def _report_actor(self, execution: Row, bearer: str | None) -> str:
        if bearer and bearer.startswith("gex_"):
            if not keys_equal(hash_key(bearer), execution["token_hash"]):
                raise Unauthenticated("unauthorized", "invalid execution token")
            if execution["token_used"]:
                raise conflict("this execution token has already been used", "token_used")
            return "worker"
        caller = await self.agents.authenticate(bearer)
        if caller.id != execution["agent_id"] and not caller.is_admin:
            raise not_permitted("only the owning agent, an admin or the execution token may report")
        return caller.name
