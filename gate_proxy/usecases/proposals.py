"""Proposing a write: the decision (core.decide) and its record, in one transaction."""

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from gate_proxy.clock import utc_iso, utc_now
from gate_proxy.core.decide import (
    AgentScope,
    Counts,
    DescribedRequest,
    Verdict,
    decide,
)
from gate_proxy.core.intents import Event, Intent, Status
from gate_proxy.core.policy import Analysis, IntentFacts, Policy, analyze_intent
from gate_proxy.errors import GateError, Unavailable, conflict
from gate_proxy.metrics import GateMetrics
from gate_proxy.principal import Principal
from gate_proxy.store.base import Conflict, CountQuery, DuplicateKey, EventDraft, Store
from gate_proxy.usecases.events import EventBus
from gate_proxy.usecases.records import (
    Proposal,
    decision_events,
    dedupe_fingerprint,
    duplicate_record,
    execution_requested,
    new_intent,
)

OFF_LOOP_BYTES = 32 * 1024
ANALYSIS_TIMEOUT_S = 10.0

Policies = Mapping[str, Policy]


@dataclass(slots=True)
class Outcome:
    intent: Intent | None  # None for a passthrough: nothing is recorded
    verdict: Verdict


class Proposals:
    def __init__(
        self,
        store: Store,
        policies: Callable[[], Policies],
        events: EventBus,
        metrics: GateMetrics,
        *,
        environment: str | None = None,
        expiry_wakeup: asyncio.Event | None = None,
        instance: str = "",
    ) -> None:
        self.store = store
        self._policies = policies
        self.events = events
        self.metrics = metrics
        self.environment = environment
        self._expiry_wakeup = expiry_wakeup
        self.instance = instance  # the gate process that carries what it auto-approves

    async def propose(
        self, caller: Principal, proposal: Proposal, policies: Policies | None = None
    ) -> Outcome:
        """Decide and record one write. `policies` is the caller's config snapshot (the
        proxy reads one per request); without it, the current one."""
        started = time.perf_counter()
        try:
            outcome = await self._propose(caller, proposal, policies or self._policies())
        except Conflict as exc:
            raise conflict(str(exc)) from exc
        status = outcome.verdict.status
        self.metrics.decisions.inc(status, proposal.destination, proposal.source)
        self.metrics.decision_latency.observe(time.perf_counter() - started, proposal.source)
        return outcome

    async def _propose(self, caller: Principal, proposal: Proposal, policies: Policies) -> Outcome:
        environment = caller.environment or self.environment
        if proposal.idempotency_key and not proposal.passthrough:
            original = await self.store.find_by_idempotency_key(caller.id, proposal.idempotency_key)
            if original is not None:
                return await self._record_duplicate(caller, proposal, original, environment)
        policy = policies.get(proposal.policy)
        described = describe(proposal, environment)
        scope = AgentScope(caller.allowed_policies, caller.allowed_destinations)
        if described.passthrough and described.refusal is None:
            # Nothing to count, nothing to record: the registry says forward as it is.
            verdict = decide(described, None, scope)
            if not verdict.records_intent:
                return Outcome(None, verdict)
        # The content work (parse, analyzers, terms) happens here, outside the store's
        # write lock; the decision itself runs inside the write with fresh counts.
        analysis = await analyze_off_loop(policy, described.facts, proposal.payload_size or 0)
        query = count_query(caller, proposal, policy, environment)
        verdicts: list[Verdict] = []

        def build(counts: Counts) -> tuple[Intent, list[EventDraft]]:
            verdict = decide(described, policy, scope, counts, analysis)
            if verdict.status == Status.DUPLICATE and counts.duplicate_of is not None:
                intent, events, verdict = duplicate_record(
                    caller,
                    proposal,
                    counts.duplicate_of,
                    environment,
                    verdict.reason_code,
                    "dedupe_window_seconds",
                )
                verdicts.append(verdict)
                return intent, events
            verdicts.append(verdict)
            intent = new_intent(caller, proposal, verdict, environment)
            events = decision_events(caller, intent, verdict)
            if (
                proposal.execute_if_approved
                and intent.status == Status.APPROVED
                and not verdict.shadow
            ):
                intent = intent.with_status(Status.SCHEDULED, executed_at=intent.created_at)
                events.append(execution_requested(intent, caller.name, self.instance))
            return intent, events

        try:
            intent, _ = await self.store.insert_decided_intent(query, build)
        except DuplicateKey:
            # Lost a race with the same idempotency key: the other one is the original.
            original = await self.store.find_by_idempotency_key(
                caller.id, proposal.idempotency_key or ""
            )
            if original is None:
                raise
            return await self._record_duplicate(caller, proposal, original, environment)
        if intent.status == Status.PENDING and self._expiry_wakeup is not None:
            self._expiry_wakeup.set()
        if self.events.listening(Event.PROPOSED):
            self.events.publish(Event.PROPOSED, intent, caller.name)
        return Outcome(intent, verdicts[-1])

    async def _record_duplicate(
        self, caller: Principal, proposal: Proposal, original: Intent, environment: str | None
    ) -> Outcome:
        intent, events, verdict = duplicate_record(caller, proposal, original, environment)
        await self.store.insert_intent(intent, events)
        return Outcome(intent, verdict)


def describe(proposal: Proposal, environment: str | None) -> DescribedRequest:
    """The proposal as the decider sees it."""
    facts = IntentFacts(
        destination=proposal.destination,
        payload=proposal.payload,
        record_count=proposal.record_count,
        payload_type=proposal.payload_type,
        estimated_value_usd=proposal.estimated_value_usd,
        sensitivity_tags=proposal.sensitivity_tags,
        environment=environment,
    )
    return DescribedRequest(
        destination=proposal.destination,
        policy=proposal.policy,
        facts=facts,
        source=proposal.source,
        registry_block=proposal.registry_block,
        passthrough=proposal.passthrough,
        require_approval=proposal.require_approval,
        refusal=proposal.refusal,
        review_reason=proposal.review_reason,
        shadow=proposal.shadow,
        credential_destination=proposal.credential_destination,
    )


def count_query(
    caller: Principal, proposal: Proposal, policy: Policy | None, environment: str | None
) -> CountQuery | None:
    """Which counts the effective policy needs: rate limits, budgets, the duplicate window.
    Computed from the intents table, so they survive a restart."""
    if policy is None:
        return None
    effective = policy.for_environment(environment)
    needs_dedupe = effective.dedupe_window_seconds is not None
    if not (effective.uses_rate_limits or effective.budgets is not None or needs_dedupe):
        return None
    now = utc_now()
    dedupe_since = None
    if needs_dedupe:
        dedupe_since = utc_iso(now - timedelta(seconds=effective.dedupe_window_seconds or 0))
    return CountQuery(
        agent_id=caller.id,
        policy=proposal.policy,
        destination=proposal.destination,
        fingerprint=dedupe_fingerprint(proposal),
        since_hour=utc_iso(now - timedelta(hours=1)),
        since_day=utc_iso(now - timedelta(days=1)),
        rates=effective.uses_rate_limits,
        budgets=effective.budgets is not None,
        dedupe_since=dedupe_since,
    )


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


__all__ = ["GateError", "Outcome", "Proposal", "Proposals", "analyze_off_loop", "describe"]
