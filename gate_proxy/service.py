"""The gate's orchestration: turns requests into decisions, intents and ledger events.

Both edges call this: the control API (``api/``) and the proxy addons (``addons/``). The
decision itself is the pure ``core.policy.evaluate``; everything here is bookkeeping
around it, and every state change carries its ledger events in the same write.
"""

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gate_proxy.clock import parse_iso, utc_iso, utc_now
from gate_proxy.core.analyzers.pii import mask_pii
from gate_proxy.core.canonical import canonical_bytes
from gate_proxy.core.intents import Event, Status
from gate_proxy.core.policy import (
    Analysis,
    Counters,
    Decision,
    IntentFacts,
    Policy,
    RateCounts,
    analyze_intent,
    detect_payload_type,
    evaluate,
)
from gate_proxy.core.redact import redact_payload
from gate_proxy.errors import (
    GateError,
    NotPermitted,
    Unauthenticated,
    Unavailable,
    conflict,
    expired,
    invalid,
    not_found,
    not_permitted,
)
from gate_proxy.keys import (
    API_KEY_PREFIX,
    Signer,
    generate_api_key,
    generate_execution_token,
    hash_key,
    keys_equal,
    random_id,
)
from gate_proxy.logs import log_decision
from gate_proxy.metrics import GateMetrics
from gate_proxy.principal import Principal, Role, admin_principal
from gate_proxy.store.base import (
    Conflict,
    CountQuery,
    Counts,
    DuplicateKey,
    EventDraft,
    Row,
    Store,
)

log = logging.getLogger("gate.service")

EXECUTION_TTL = timedelta(minutes=15)
MIN_EXECUTION_WINDOW = timedelta(minutes=5)
OFF_LOOP_BYTES = 32 * 1024
ANALYSIS_TIMEOUT_S = 10.0
AUTH_CACHE_SECONDS = 2.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
EXPIRES_IN = re.compile(r"^(\d{1,5})([smhd])$")
RISK_TIERS = ("standard", "elevated", "restricted")


@dataclass(slots=True)
class ProposeInput:
    """Everything a decision needs, from the API or from a proxied request."""

    destination: str
    policy: str
    payload: str | None = None
    record_count: int | None = None
    estimated_value_usd: float | None = None
    sensitivity_tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    on_behalf_of: str | None = None
    expires_in_seconds: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    payload_type: str | None = None
    source: str = "api"
    method: str | None = None
    url: str | None = None
    fingerprint: str | None = None
    payload_size: int | None = None
    payload_sha256: str | None = None
    shadow: bool = False
    # Set by the proxy when the registry entry forces approval or a block of its own.
    force_pending: str | None = None  # the rule that forces a review
    force_pending_reason: str = "manual_review_required"
    force_block: tuple[str, str] | None = None
    # The proxy forwards an auto-approved request at once: record the write-ahead
    # execution_requested event in the same commit as the decision.
    execute_if_approved: bool = False


@dataclass(slots=True)
class Outcome:
    intent: Row
    decision: Decision | None
    duplicate_of: str | None = None


class IntentWatchers:
    """In-process notifications of intent decisions, for held proxy requests."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[str]]] = {}

    def wait(self, intent_id: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(intent_id, set()).add(future)
        future.add_done_callback(lambda f: self._discard(intent_id, f))
        return future

    def _discard(self, intent_id: str, future: asyncio.Future[str]) -> None:
        waiters = self._waiters.get(intent_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[intent_id]

    def notify(self, intent_id: str, status: str) -> None:
        for future in list(self._waiters.get(intent_id, ())):
            if not future.done():
                future.set_result(status)

    def count(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())


def parse_expires_in(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not (match := EXPIRES_IN.match(value.strip())):
        raise invalid("expiresIn must look like 30m, 1h or 2d")
    number, unit = int(match.group(1)), match.group(2)
    return max(1, number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def agent_watch_key(agent_id: str) -> str:
    """The IntentWatchers key that fires when an agent's status changes."""
    return f"agent:{agent_id}"


def review_hash(intent: Row) -> str:
    """What a reviewer approves: the exact request (proxy) or the exact payload (API)."""
    if intent.get("fingerprint"):
        return str(intent["fingerprint"])
    return hashlib.sha256(
        canonical_bytes(
            {
                "destination": intent["destination"],
                "policy": intent["policy"],
                "payload_sha256": intent.get("payload_sha256"),
                "record_count": intent.get("record_count"),
            }
        )
    ).hexdigest()


class GateService:
    def __init__(
        self,
        store: Store,
        policies: Callable[[], dict[str, Policy]],
        signer: Signer,
        admin_key: str,
        *,
        environment: str | None = None,
        metrics: GateMetrics | None = None,
        on_event: Callable[[str, Row, str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self._policies = policies
        self.signer = signer
        self._admin_key_hash = hash_key(admin_key)
        self.environment = environment
        self.metrics = metrics or GateMetrics()
        self.watchers = IntentWatchers()
        self._listeners: list[Callable[[str, Row, str], Awaitable[None]]] = []
        if on_event is not None:
            self._listeners.append(on_event)
        self._auth_cache: dict[str, tuple[float, Principal | None, str]] = {}
        self._expiry_wakeup = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    def policies(self) -> dict[str, Policy]:
        return self._policies()

    async def refresh_expiry(self, intent: Row | None) -> Row:
        """The intent as it stands now: a pending one past its expiresAt is expired first."""
        if intent is None:
            raise not_found("intent")
        return await self._expire_if_due(intent)

    # -- identity ----------------------------------------------------------------------------

    async def authenticate(self, key: str | None) -> Principal:
        """Resolve an API key; 401 for unknown keys, 403 for suspended or revoked ones."""
        if not key:
            raise Unauthenticated("unauthorized", "a valid API key is required")
        return await self.authenticate_hash(hash_key(key))

    async def authenticate_hash(self, key_hash: str) -> Principal:
        if keys_equal(key_hash, self._admin_key_hash):
            return admin_principal()
        now = time.monotonic()
        cached = self._auth_cache.get(key_hash)
        if cached is None or cached[0] < now:
            row = await self.store.get_agent_by_key_hash(key_hash)
            principal = _principal_from_row(row) if row else None
            cached = (now + AUTH_CACHE_SECONDS, principal, row["status"] if row else "unknown")
            if len(self._auth_cache) > 10_000:
                self._auth_cache.clear()
            self._auth_cache[key_hash] = cached
        _, principal, status = cached
        if principal is None:
            raise Unauthenticated("unauthorized", "unknown API key")
        if status != "active":
            raise NotPermitted(f"agent_{status}", f"this agent is {status}")
        return principal

    async def register_agent(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        if not caller.is_admin:
            raise not_permitted("registering agents needs an admin key")
        name = body.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise invalid("name is required: 1-64 letters, digits, _ . @ -")
        role = body.get("role", "agent")
        if role not in {r.value for r in Role}:
            raise invalid("role must be agent, reviewer or admin")
        risk_tier = body.get("riskTier", body.get("risk_tier", "standard"))
        if risk_tier not in RISK_TIERS:
            raise invalid("riskTier must be standard, elevated or restricted")
        allowed_policies = _string_list(body, "allowed_policies")
        allowed_destinations = _string_list(body, "allowed_destinations")
        environment = body.get("environment")
        if environment is not None and not isinstance(environment, str):
            raise invalid("environment must be a string")
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            raise invalid("metadata must be an object")
        if await self.store.get_agent_by_name(name):
            raise conflict(f"an agent named {name!r} already exists", "name_taken")
        api_key = generate_api_key()
        now = utc_iso()
        agent = {
            "id": random_id("agt_", 6),
            "name": name,
            "role": role,
            "status": "active",
            "key_hash": hash_key(api_key),
            "key_prefix": api_key[: len(API_KEY_PREFIX) + 4],
            "risk_tier": risk_tier,
            "owner": _optional_str(body, "owner"),
            "framework": _optional_str(body, "framework"),
            "environment": environment,
            "allowed_policies": allowed_policies,
            "allowed_destinations": allowed_destinations,
            "metadata": metadata,
            "created_at": now,
            "updated_at": now,
        }
        event = EventDraft(
            "agent_registered",
            None,
            caller.name,
            agent["id"],
            {"name": name, "role": role, "risk_tier": risk_tier},
        )
        try:
            await self.store.insert_agent(agent, event)
        except DuplicateKey as exc:
            raise conflict(f"an agent named {name!r} already exists", "name_taken") from exc
        return {**public_agent(agent), "apiKey": api_key}

    async def set_agent_status(self, caller: Principal, agent_id: str, status: str) -> Row:
        if not caller.is_admin:
            raise not_permitted("changing an agent's status needs an admin key")
        agent = await self.find_agent(agent_id)
        if agent["status"] == "revoked":
            raise conflict("a revoked agent cannot change status")
        event = EventDraft(f"agent_{status}", None, caller.name, agent["id"], {"status": status})
        if not await self.store.set_agent_status(agent["id"], status, event):
            raise conflict("agent status changed concurrently")
        self._auth_cache.clear()  # revocation takes effect at once in this process
        # Wake whatever is held for this agent: it re-checks the agent and refuses.
        self.watchers.notify(agent_watch_key(agent["id"]), status)
        return public_agent({**agent, "status": status})

    async def require_active_agent(self, agent_id: str) -> None:
        """Refuse (403) unless the agent is active now: read from the store, not the cache."""
        if agent_id == admin_principal().id:
            return
        agent = await self.store.get_agent(agent_id)
        status = agent["status"] if agent is not None else "unknown"
        if status != "active":
            raise NotPermitted(f"agent_{status}", f"the agent is {status}")

    async def find_agent(self, id_or_name: str) -> Row:
        agent = await self.store.get_agent(id_or_name) or await self.store.get_agent_by_name(
            id_or_name
        )
        if agent is None:
            raise not_found("agent")
        return agent

    # -- decisions ---------------------------------------------------------------------------

    async def propose(self, caller: Principal, request: ProposeInput) -> Outcome:
        started = time.perf_counter()
        try:
            outcome = await self._propose(caller, request)
        except GateError:
            raise
        except Conflict as exc:
            raise conflict(str(exc)) from exc
        intent = outcome.intent
        elapsed = time.perf_counter() - started
        self.metrics.decisions.inc(intent["status"], intent["destination"], request.source)
        self.metrics.decision_latency.observe(elapsed, request.source)
        log_decision(
            decision=intent["status"],
            agent=caller.name,
            destination=intent["destination"],
            policy=intent["policy"],
            reason=intent["reason_code"],
            intent_id=intent["id"],
            latency_ms=elapsed * 1000,
            source=request.source,
            shadow=bool(intent["shadow"]),
            risk=intent["risk_level"],
        )
        return outcome

    async def _propose(self, caller: Principal, request: ProposeInput) -> Outcome:
        if request.idempotency_key:
            original = await self.store.find_by_idempotency_key(caller.id, request.idempotency_key)
            if original is not None:
                return await self._record_duplicate(caller, request, original)
        environment = caller.environment or self.environment
        policy = self._policies().get(request.policy)
        facts = IntentFacts(
            destination=request.destination,
            payload=request.payload,
            record_count=request.record_count,
            payload_type=request.payload_type,
            estimated_value_usd=request.estimated_value_usd,
            sensitivity_tags=request.sensitivity_tags,
            environment=environment,
        )
        # The content work (parse, analyzers, terms) happens here, outside the store's
        # write lock; the decision itself runs inside the write with fresh counts.
        analysis = await analyze_off_loop(policy, facts, request.payload_size or 0)
        query = self._count_query(caller, request, policy, environment)
        decided: list[Decision] = []

        def build(counts: Counts) -> tuple[Row, list[EventDraft]]:
            decision = self._decide(caller, request, policy, facts, counts, analysis)
            decided.append(decision)
            if decision.status == Status.DUPLICATE and counts.duplicate_of is not None:
                return self._duplicate_row(
                    caller,
                    request,
                    counts.duplicate_of,
                    decision.reason_code,
                    "dedupe_window_seconds",
                )
            intent = self._intent_row(caller, request, decision, environment)
            events = self._decision_events(caller, intent, decision)
            if request.execute_if_approved and intent["status"] == Status.APPROVED:
                intent["status"] = Status.SCHEDULED
                intent["executed_at"] = intent["created_at"]
                events.append(self._execution_requested(intent, caller.name))
            return intent, events

        try:
            intent, _ = await self.store.insert_decided_intent(query, build)
        except DuplicateKey:
            # Lost a race with the same idempotency key: the other one is the original.
            original = await self.store.find_by_idempotency_key(
                caller.id, request.idempotency_key or ""
            )
            if original is None:
                raise
            return await self._record_duplicate(caller, request, original)
        if intent["status"] == Status.PENDING:
            self._expiry_wakeup.set()
        if self._listeners:
            self._publish(Event.PROPOSED, intent, caller.name)
        return Outcome(intent, decided[-1], duplicate_of=intent.get("duplicate_of"))

    def _decide(
        self,
        caller: Principal,
        request: ProposeInput,
        policy: Policy | None,
        facts: IntentFacts,
        counts: Counts,
        analysis: Analysis,
    ) -> Decision:
        """Pure: the decision for one intent, from the counts read in its transaction."""
        rates = None
        if counts.last_hour is not None and counts.last_day is not None:
            rates = RateCounts(last_hour=counts.last_hour, last_day=counts.last_day)
        counters = None
        effective = policy.for_environment(facts.environment) if policy else None
        if effective is not None and (
            effective.budgets is not None or effective.dedupe_window_seconds is not None
        ):
            spent: tuple[float | None, ...] = counts.spent or (None, None, None, None)
            window = effective.dedupe_window_seconds
            duplicate = counts.duplicate_of
            counters = Counters(
                agent_spent_hour_usd=spent[0],
                agent_spent_day_usd=spent[1],
                policy_spent_hour_usd=spent[2],
                policy_spent_day_usd=spent[3],
                duplicate_within_window=(duplicate is not None) if window is not None else None,
                duplicate_of=duplicate["id"] if duplicate is not None else None,
            )
        # The agent's own scope comes first: a key limited to some policies or
        # destinations can never reach others, whatever the policy says.
        scope_block = None
        if caller.allowed_policies is not None and request.policy not in caller.allowed_policies:
            scope_block = ("policy_not_allowed", f"Agent may not use policy {request.policy}")
        elif (
            caller.allowed_destinations is not None
            and request.destination not in caller.allowed_destinations
        ):
            scope_block = (
                "destination_not_allowed",
                f"Agent may not write to destination {request.destination}",
            )
        elif request.force_block is not None:
            scope_block = request.force_block
        decision = evaluate(policy, facts, rates, counters, analysis=analysis)
        if scope_block is not None:
            return _replace_decision(decision, "blocked", *scope_block, rule="agent_scope")
        if request.force_pending and decision.status == Status.APPROVED:
            return _replace_decision(
                decision,
                "pending_approval",
                request.force_pending_reason,
                None,
                rule=request.force_pending,
            )
        return decision

    def _count_query(
        self,
        caller: Principal,
        request: ProposeInput,
        policy: Policy | None,
        environment: str | None,
    ) -> CountQuery | None:
        """Which counts the effective policy needs: rate limits, budgets, the duplicate
        window. Computed from the intents table, so they survive a restart."""
        if policy is None:
            return None
        effective = policy.for_environment(environment)
        needs_dedupe = effective.dedupe_window_seconds is not None
        if not (effective.uses_rate_limits or effective.budgets is not None or needs_dedupe):
            return None
        now = utc_now()
        dedupe_since = None
        if needs_dedupe:
            window = timedelta(seconds=effective.dedupe_window_seconds or 0)
            dedupe_since = utc_iso(now - window)
        return CountQuery(
            agent_id=caller.id,
            policy=request.policy,
            destination=request.destination,
            fingerprint=self._dedupe_fingerprint(request),
            since_hour=utc_iso(now - timedelta(hours=1)),
            since_day=utc_iso(now - timedelta(days=1)),
            rates=effective.uses_rate_limits,
            budgets=effective.budgets is not None,
            dedupe_since=dedupe_since,
        )

    @staticmethod
    def _dedupe_fingerprint(request: ProposeInput) -> str:
        """The fingerprint _intent_row will store: the proxied request's own (method, URL,
        body, declared headers), else the API payload's review hash."""
        if request.fingerprint:
            return request.fingerprint
        payload_bytes = payload_bytes_of(request.payload)
        return review_hash(
            {
                "destination": request.destination,
                "policy": request.policy,
                "payload_sha256": request.payload_sha256
                or hashlib.sha256(payload_bytes).hexdigest(),
                "record_count": request.record_count,
            }
        )

    def _intent_row(
        self, caller: Principal, request: ProposeInput, decision: Decision, environment: str | None
    ) -> Row:
        now = utc_now()
        payload_bytes = payload_bytes_of(request.payload)
        expiry = decision.expiry_minutes * 60
        if request.expires_in_seconds is not None:
            # An agent may shorten its approval window, never stretch the policy's.
            expiry = min(expiry, request.expires_in_seconds)
        status = decision.status
        decided_by = "system" if status in (Status.APPROVED, Status.BLOCKED) else None
        intent: Row = {
            "id": random_id("int_", 8),
            "agent_id": caller.id,
            "agent_name": caller.name,
            "on_behalf_of": request.on_behalf_of,
            "source": request.source,
            "destination": request.destination,
            "policy": request.policy,
            "status": status,
            "reason_code": decision.reason_code,
            "block_reason": decision.block_reason,
            "risk_score": decision.risk_score,
            "risk_level": decision.risk_level,
            "record_count": request.record_count,
            # What the analyzers found and the value the budgets counted are part of the
            # record: the tags feed risk and the dashboard, the value later budget sums.
            "estimated_value_usd": decision.value_usd
            if decision.value_usd is not None
            else request.estimated_value_usd,
            "sensitivity_tags": list(decision.tags or request.sensitivity_tags),
            "idempotency_key": request.idempotency_key,
            "environment": environment,
            "payload_type": request.payload_type or detect_payload_type(request.payload),
            "payload_size": request.payload_size
            if request.payload_size is not None
            else len(payload_bytes),
            "payload_sha256": request.payload_sha256 or hashlib.sha256(payload_bytes).hexdigest(),
            "payload_preview": redact_payload(request.payload, mask=mask_pii),
            "method": request.method,
            "url": request.url,
            "fingerprint": request.fingerprint,
            "shadow": int(request.shadow),
            "require_approvals": decision.require_approvals,
            "metadata": request.metadata,
            "created_at": utc_iso(now),
            # Pending: the review deadline. Approved: the execution deadline (an approval
            # does not stay usable forever; docs/security.md).
            "expires_at": utc_iso(now + timedelta(seconds=expiry))
            if status in (Status.PENDING, Status.APPROVED)
            else None,
            "decided_at": utc_iso(now) if decided_by else None,
            "decided_by": decided_by,
        }
        if not intent["fingerprint"]:
            intent["fingerprint"] = review_hash(intent)
        return intent

    def _decision_events(
        self, caller: Principal, intent: Row, decision: Decision
    ) -> list[EventDraft]:
        iid, aid = intent["id"], caller.id
        proposed = {
            "agent": caller.name,
            "on_behalf_of": intent["on_behalf_of"],
            "destination": intent["destination"],
            "policy": intent["policy"],
            "source": intent["source"],
            "record_count": intent["record_count"],
            "payload_sha256": intent["payload_sha256"],
            "payload_size": intent["payload_size"],
            "fingerprint": intent["fingerprint"],
        }
        if intent["method"]:
            proposed.update(method=intent["method"], url=intent["url"])
        checked = {
            "result": decision.status,
            "reason_code": decision.reason_code,
            "rule": decision.rule,
            "risk_score": decision.risk_score,
            "risk_level": decision.risk_level,
            "environment": intent["environment"],
            "shadow": bool(intent["shadow"]),
        }
        events = [
            EventDraft(Event.PROPOSED, iid, caller.name, aid, proposed),
            EventDraft(Event.POLICY_CHECKED, iid, "system", aid, checked),
        ]
        if decision.status == Status.BLOCKED:
            events.append(
                EventDraft(
                    Event.BLOCKED,
                    iid,
                    "system",
                    aid,
                    {"reason_code": decision.reason_code, "reason": decision.block_reason},
                )
            )
        elif decision.status == Status.APPROVED:
            events.append(EventDraft(Event.APPROVED, iid, "system", aid, {"by": "policy"}))
        return events

    async def _record_duplicate(
        self,
        caller: Principal,
        request: ProposeInput,
        original: Row,
        reason_code: str = "duplicate_idempotency_key",
        rule: str = "idempotency_key",
    ) -> Outcome:
        intent, events = self._duplicate_row(caller, request, original, reason_code, rule)
        await self.store.insert_intent(intent, events)
        return Outcome(intent, None, duplicate_of=original["id"])

    def _duplicate_row(
        self,
        caller: Principal,
        request: ProposeInput,
        original: Row,
        reason_code: str,
        rule: str,
    ) -> tuple[Row, list[EventDraft]]:
        matched = "idempotency_key matched" if rule == "idempotency_key" else "same request"
        reason = f"Duplicate of {original['id']} ({matched})"
        decision = Decision(
            status=Status.DUPLICATE,
            reason_code=reason_code,
            block_reason=reason,
            risk_score=original["risk_score"],
            risk_level=original["risk_level"],
            expiry_minutes=0,
            require_approvals=1,
            rule=rule,
        )
        intent = self._intent_row(caller, request, decision, caller.environment or self.environment)
        intent["duplicate_of"] = original["id"]
        intent["decided_by"] = "system"
        intent["decided_at"] = intent["created_at"]
        events = [
            EventDraft(
                Event.PROPOSED,
                intent["id"],
                caller.name,
                caller.id,
                {
                    "destination": intent["destination"],
                    "policy": intent["policy"],
                    "idempotency_key": request.idempotency_key,
                    "source": request.source,
                },
            ),
            EventDraft(
                Event.DUPLICATE_BLOCKED,
                intent["id"],
                "system",
                caller.id,
                {"duplicate_of": original["id"]},
            ),
        ]
        return intent, events

    # -- reading -----------------------------------------------------------------------------

    async def get_intent(self, caller: Principal, intent_id: str) -> Row:
        intent = await self.store.get_intent(intent_id)
        if intent is None or not caller.can_see(intent["agent_id"]):
            raise not_found("intent")  # an agent cannot even learn that others' intents exist
        return await self._expire_if_due(intent)

    async def list_intents(self, caller: Principal, status: str | None, limit: int) -> list[Row]:
        if status is not None and status not in {s.value for s in Status}:
            raise invalid(f"unknown status {status!r}")
        agent_id = None if caller.can_review else caller.id
        return await self.store.list_intents(agent_id=agent_id, status=status, limit=limit)

    async def audit_trail(self, caller: Principal, intent_id: str) -> list[Row]:
        await self.get_intent(caller, intent_id)
        return await self.store.ledger_events(intent_id=intent_id)

    # -- review ------------------------------------------------------------------------------

    async def approve(
        self,
        caller: Principal,
        intent_id: str,
        *,
        note: str | None = None,
        expected_hash: str | None = None,
    ) -> Row:
        intent = await self._reviewable(caller, intent_id, expected_hash)
        required = int(intent.get("require_approvals") or 1)
        now = utc_iso()
        if required > 1:
            vote_event = EventDraft(
                Event.APPROVAL_VOTE,
                intent_id,
                caller.name,
                intent["agent_id"],
                {"reviewer": caller.id, "vote": "approve", "required": required},
            )
            try:
                await self.store.add_vote(
                    {
                        "intent_id": intent_id,
                        "reviewer_id": caller.id,
                        "vote": "approve",
                        "reason": note,
                        "created_at": now,
                    },
                    vote_event,
                )
            except DuplicateKey as exc:
                raise conflict("this reviewer has already voted", "already_voted") from exc
            votes = await self.store.list_votes(intent_id)
            approvals = len({v["reviewer_id"] for v in votes if v["vote"] == "approve"})
            if approvals < required:
                return {**intent, "approvals": approvals}
        # The approval is usable until the intent's deadline, and for at least
        # MIN_EXECUTION_WINDOW after it (an approval in the last minute must be usable).
        deadline = max(intent.get("expires_at") or now, utc_iso(utc_now() + MIN_EXECUTION_WINDOW))
        events = [
            EventDraft(
                Event.APPROVED,
                intent_id,
                caller.name,
                intent["agent_id"],
                {"by": caller.id, "note": note, "execute_by": deadline},
            )
        ]
        fields = {
            "decided_at": now,
            "decided_by": caller.id,
            "decision_note": note,
            "expires_at": deadline,
        }
        try:
            await self.store.transition_intent(
                intent_id, (Status.PENDING,), Status.APPROVED, fields, events
            )
        except Conflict as exc:
            raise conflict("intent is no longer pending", "not_pending") from exc
        self.metrics.reviews.inc("approved")
        updated = {**intent, **fields, "status": Status.APPROVED}
        self._after_transition(updated, Event.APPROVED, caller.name)
        return updated

    async def reject(
        self,
        caller: Principal,
        intent_id: str,
        *,
        reason: str | None,
        expected_hash: str | None = None,
    ) -> Row:
        intent = await self._reviewable(caller, intent_id, expected_hash)
        now = utc_iso()
        events = [
            EventDraft(
                Event.REJECTED,
                intent_id,
                caller.name,
                intent["agent_id"],
                {"by": caller.id, "reason": reason},
            )
        ]
        try:
            await self.store.transition_intent(
                intent_id,
                (Status.PENDING,),
                Status.REJECTED,
                {
                    "decided_at": now,
                    "decided_by": caller.id,
                    "decision_note": reason,
                    "block_reason": reason or "Rejected by reviewer",
                },
                events,
            )
        except Conflict as exc:
            raise conflict("intent is no longer pending", "not_pending") from exc
        self.metrics.reviews.inc("rejected")
        updated = {
            **intent,
            "status": Status.REJECTED,
            "decided_at": now,
            "decided_by": caller.id,
            "decision_note": reason,
        }
        self._after_transition(updated, Event.REJECTED, caller.name)
        return updated

    async def _reviewable(
        self, caller: Principal, intent_id: str, expected_hash: str | None
    ) -> Row:
        if not caller.can_review:
            raise not_permitted("approving or rejecting needs a reviewer or admin key")
        intent = await self.store.get_intent(intent_id)
        if intent is None:
            raise not_found("intent")
        if intent["agent_id"] == caller.id:
            raise not_permitted("nobody reviews an intent their own key proposed", "self_review")
        intent = await self._expire_if_due(intent)
        if intent["status"] == Status.EXPIRED:
            raise expired("the approval window has closed; the intent expired")
        agent = await self.store.get_agent(intent["agent_id"])
        if agent is not None and agent["status"] != "active":
            raise conflict(
                f"the proposing agent is {agent['status']}; its intents cannot be approved",
                "agent_inactive",
            )
        if intent["status"] != Status.PENDING:
            raise conflict(
                f"intent is {intent['status']}, not pending_approval",
                "not_pending",
                intentStatus=intent["status"],
            )
        if expected_hash is not None and not keys_equal(expected_hash, review_hash(intent)):
            raise conflict("the intent differs from what was reviewed", "review_hash_mismatch")
        return intent

    # -- expiry ------------------------------------------------------------------------------

    async def _expire_if_due(self, intent: Row) -> Row:
        """A pending intent past its review deadline, or an approved one past its execution
        deadline, expires (both are `expires_at`)."""
        if intent["status"] not in (Status.PENDING, Status.APPROVED):
            return intent
        if not intent.get("expires_at") or intent["expires_at"] > utc_iso():
            return intent
        return await self._expire(intent)

    async def _expire(self, intent: Row) -> Row:
        was = intent["status"]
        data: dict[str, Any] = {"expires_at": intent["expires_at"]}
        fields: Row = {}
        if was == Status.APPROVED:
            data["reason"] = "approved but not executed before the deadline"
        else:
            fields = {"decided_at": utc_iso(), "decided_by": "system"}
        events = [EventDraft(Event.EXPIRED, intent["id"], "system", intent["agent_id"], data)]
        try:
            await self.store.transition_intent(
                intent["id"], (Status(was),), Status.EXPIRED, fields, events
            )
        except Conflict:
            # Decided (or executed) by someone else a moment earlier: that state stands.
            return await self.store.get_intent(intent["id"]) or intent
        expired = {**intent, **fields, "status": Status.EXPIRED}
        self._after_transition(expired, Event.EXPIRED, "system")
        return expired

    async def run_expiry(self) -> None:
        """Expire pending intents at their expiresAt, sleeping exactly until the next one."""
        while True:
            try:
                for intent in await self.store.due_pending(utc_iso()):
                    await self._expire(intent)
                next_at = await self.store.next_pending_expiry()
            except Exception:
                log.exception("expiry sweep failed")
                next_at = None
            delay = 60.0
            if next_at:
                delay = max(0.0, (parse_iso(next_at) - utc_now()).total_seconds()) + 0.001
            self._expiry_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._expiry_wakeup.wait(), timeout=min(delay, 60.0))

    def subscribe(self, listener: Callable[[str, Row, str], Awaitable[None]]) -> None:
        """Be told of every new intent ("proposed") and every later transition.

        Listeners run as background tasks: a slow one never delays a decision.
        """
        self._listeners.append(listener)

    def _after_transition(self, intent: Row, event: str, actor: str) -> None:
        self.watchers.notify(intent["id"], intent["status"])
        self._publish(event, intent, actor)

    def _publish(self, event: str, intent: Row, actor: str) -> None:
        for listener in self._listeners:
            task = asyncio.create_task(listener(event, intent, actor))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # -- proxied execution (write-ahead) -------------------------------------------------------

    @staticmethod
    def _execution_requested(intent: Row, actor: str) -> EventDraft:
        return EventDraft(
            Event.EXECUTION_REQUESTED,
            intent["id"],
            actor,
            intent["agent_id"],
            {
                "mode": "proxy",
                "method": intent.get("method"),
                "url": intent.get("url"),
                "fingerprint": intent.get("fingerprint"),
            },
        )

    async def claim_execution(self, intent: Row, actor: str) -> None:
        """Turn an approval into its one execution; a second claim gets Conflict.

        Refused (GateError) when the execution deadline has passed or the agent is no
        longer active: an approval is for a live agent, within its window.
        """
        current = await self._expire_if_due(intent)
        if current["status"] == Status.EXPIRED:
            raise expired("the approval's execution window has closed; the intent expired")
        await self.require_active_agent(intent["agent_id"])
        await self.store.transition_intent(
            intent["id"],
            (Status.APPROVED,),
            Status.SCHEDULED,
            {"executed_at": utc_iso()},
            [self._execution_requested(intent, actor)],
        )

    async def reconcile_in_flight(self) -> int:
        """At start: proxied executions a previous run requested but never saw finish.

        Their `execution_requested` is on the ledger (write-ahead), their outcome is not:
        the gate stopped while the request was in flight, so whether the upstream got it
        is unknown. They become `failed` with reason `execution_unknown`, visible as such
        in the dashboard and the ledger, instead of staying `scheduled` forever. One gate
        process per store (the scale-out issue adds leases for several).
        """
        reconciled = 0
        for intent in await self.store.list_intents(status=Status.SCHEDULED, limit=1_000_000):
            if intent["source"] != "proxy":
                continue  # API executions are reported by their worker with a token
            message = (
                "execution_unknown: the gate stopped while this request was in flight; "
                "it may or may not have reached the upstream"
            )
            event = EventDraft(
                Event.EXECUTION_FAILED,
                intent["id"],
                "system",
                intent["agent_id"],
                {"error": "execution_unknown", "detail": message},
            )
            fields = {
                "completed_at": utc_iso(),
                "reason_code": "execution_unknown",
                "block_reason": message,
            }
            try:
                await self.store.transition_intent(
                    intent["id"], (Status.SCHEDULED,), Status.FAILED, fields, [event]
                )
            except Conflict:
                continue
            reconciled += 1
        if reconciled:
            log.warning(
                "reconciled executions left in flight by a previous run",
                extra={"event": "reconciled", "count": reconciled},
            )
        return reconciled

    async def record_outcome(
        self, intent_id: str, agent_id: str, ok: bool, detail: dict[str, Any]
    ) -> None:
        status = Status.SUCCEEDED if ok else Status.FAILED
        event = Event.EXECUTION_SUCCEEDED if ok else Event.EXECUTION_FAILED
        now = utc_iso()
        try:
            await self.store.transition_intent(
                intent_id,
                (Status.SCHEDULED,),
                status,
                {"completed_at": now},
                [EventDraft(event, intent_id, "proxy", agent_id, detail)],
            )
        except Conflict:
            log.warning(
                "execution outcome arrived for an intent not in flight",
                extra={"intent_id": intent_id},
            )
            return
        intent = await self.store.get_intent(intent_id)
        if intent is not None:
            self._after_transition(intent, event, "proxy")

    # -- execution orders --------------------------------------------------------------------

    async def execute(self, caller: Principal, intent_id: str) -> dict[str, Any]:
        intent = await self.get_intent(caller, intent_id)
        if intent["agent_id"] != caller.id and not caller.is_admin:
            raise not_permitted("only the proposing agent or an admin may request execution")
        if intent["status"] not in (Status.APPROVED, Status.SCHEDULED):
            raise conflict(f"intent is {intent['status']}, not approved", "not_approved")
        if intent["source"] == "proxy":
            raise conflict("proxied intents are executed by the proxy on retry", "proxy_intent")
        token = generate_execution_token()
        now = utc_now()
        execution = {
            "id": random_id("exe_", 8),
            "intent_id": intent_id,
            "agent_id": intent["agent_id"],
            "mode": "runner_exec",
            "status": "pending",
            "token_hash": hash_key(token),
            "created_at": utc_iso(now),
            "expires_at": utc_iso(now + EXECUTION_TTL),
        }
        order = {
            "executionId": execution["id"],
            "intent_id": intent_id,
            "agent_id": intent["agent_id"],
            "destination": intent["destination"],
            "policy": intent["policy"],
            "payload_sha256": intent["payload_sha256"],
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
                intent["agent_id"],
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

    async def get_execution(self, caller: Principal, execution_id: str) -> Row:
        execution = await self.store.get_execution(execution_id)
        if execution is None or not caller.can_see(execution["agent_id"]):
            raise not_found("execution")
        return execution

    async def report_execution(
        self, execution_id: str, bearer: str | None, body: dict[str, Any]
    ) -> Row:
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
            self._after_transition(intent, event, actor)
        return {**execution, "status": status, "report": report, "completed_at": now}

    async def _report_actor(self, execution: Row, bearer: str | None) -> str:
        if bearer and bearer.startswith("gex_"):
            if not keys_equal(hash_key(bearer), execution["token_hash"]):
                raise Unauthenticated("unauthorized", "invalid execution token")
            if execution["token_used"]:
                raise conflict("this execution token has already been used", "token_used")
            return "worker"
        caller = await self.authenticate(bearer)
        if caller.id != execution["agent_id"] and not caller.is_admin:
            raise not_permitted("only the owning agent, an admin or the execution token may report")
        return caller.name

    # -- metrics -----------------------------------------------------------------------------

    async def summary_metrics(self, caller: Principal) -> dict[str, Any]:
        row = await self.store.intent_metrics(None if caller.can_review else caller.id)
        latency = row["avg_approval_latency_ms"]
        return {
            "actions_attempted": row["attempted"],
            "actions_blocked": row["blocked"],
            "actions_pending": row["pending"],
            "actions_approved": row["approved"],
            "actions_succeeded": row["succeeded"],
            "actions_failed": row["failed"],
            "actions_duplicate": row["duplicate"],
            "actions_expired": row["expired"],
            "avg_approval_latency_ms": round(latency) if latency is not None else None,
        }

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()


def payload_bytes_of(payload: str | None) -> bytes:
    # A JSON string may hold a lone surrogate ("\ud800"); hash it rather than fail.
    return payload.encode("utf-8", "surrogatepass") if payload is not None else b""


async def analyze_off_loop(policy: Policy | None, facts: IntentFacts, size: int) -> Analysis:
    """The content analysis of one intent; large bodies on a worker thread.

    Analysis is CPU work bounded by the analyzers' own size limits; on the event loop a
    large body would stall every other request and /health for its duration. Small
    bodies stay on the loop: a thread hop costs more than their analysis.
    """
    if size < OFF_LOOP_BYTES and len(facts.payload or "") < OFF_LOOP_BYTES:
        return analyze_intent(policy, facts)
    try:
        async with asyncio.timeout(ANALYSIS_TIMEOUT_S):
            return await asyncio.to_thread(analyze_intent, policy, facts)
    except TimeoutError:
        # The analyzers bound their own work; this is the backstop. No decision without
        # the analysis: refuse (the thread finishes on its own and its result is dropped).
        raise Unavailable(
            "analysis_timeout", "the content checks did not finish; nothing was forwarded"
        ) from None


def _replace_decision(
    decision: Decision, status: str, reason_code: str, block_reason: str | None, *, rule: str
) -> Decision:
    return Decision(
        status=status,
        reason_code=reason_code,
        block_reason=block_reason,
        risk_score=decision.risk_score,
        risk_level=decision.risk_level,
        expiry_minutes=decision.expiry_minutes,
        require_approvals=decision.require_approvals,
        rule=rule,
    )


def _principal_from_row(row: Row) -> Principal:
    return Principal(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        environment=row.get("environment"),
        allowed_policies=tuple(row["allowed_policies"])
        if row.get("allowed_policies") is not None
        else None,
        allowed_destinations=tuple(row["allowed_destinations"])
        if row.get("allowed_destinations") is not None
        else None,
    )


def _string_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{key} must be a list of strings")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{key} must be a string")
    return value


def public_agent(agent: Row) -> dict[str, Any]:
    """An agent as the API shows it: never the key or its hash."""
    return {
        "agentId": agent["id"],
        "name": agent["name"],
        "role": agent["role"],
        "status": agent["status"],
        "riskTier": agent["risk_tier"],
        "owner": agent.get("owner"),
        "framework": agent.get("framework"),
        "environment": agent.get("environment"),
        "allowed_policies": agent.get("allowed_policies"),
        "allowed_destinations": agent.get("allowed_destinations"),
        "metadata": agent.get("metadata") or {},
        "keyPrefix": agent["key_prefix"],
        "createdAt": agent["created_at"],
    }
