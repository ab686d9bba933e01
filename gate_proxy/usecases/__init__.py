"""The gate's use cases, one module each, composed once at start (``UseCases.build``).

Both edges call these — the control API (``gate_proxy/api/``) and the proxy addons
(``gate_proxy/proxy/addons/``) — and they raise domain errors (``gate_proxy/errors.py``),
never HTTP statuses. The decision itself is ``core.decide.decide``; the use cases record
it, and every state change carries its ledger events in the same write.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gate_proxy.core.policy import Policy
from gate_proxy.keys import Signer
from gate_proxy.metrics import GateMetrics
from gate_proxy.store.base import Store
from gate_proxy.usecases.agents import Agents
from gate_proxy.usecases.events import EventBus, agent_key
from gate_proxy.usecases.executions import Executions
from gate_proxy.usecases.expiry import Expiry
from gate_proxy.usecases.fleet import Fleet
from gate_proxy.usecases.orders import Orders
from gate_proxy.usecases.proposals import Outcome, Proposals
from gate_proxy.usecases.records import Proposal, review_hash
from gate_proxy.usecases.review import Approval, Review

__all__ = [
    "Agents",
    "Approval",
    "EventBus",
    "Executions",
    "Expiry",
    "Fleet",
    "Orders",
    "Outcome",
    "Proposal",
    "Proposals",
    "Review",
    "UseCases",
    "agent_key",
    "review_hash",
]


@dataclass(frozen=True)
class UseCases:
    store: Store
    metrics: GateMetrics
    events: EventBus
    agents: Agents
    proposals: Proposals
    review: Review
    expiry: Expiry
    executions: Executions
    orders: Orders
    fleet: Fleet

    @classmethod
    def build(
        cls,
        store: Store,
        policies: Callable[[], Mapping[str, Policy]],
        signer: Signer,
        admin_key: str,
        *,
        environment: str | None = None,
        metrics: GateMetrics | None = None,
        fleet: Fleet | None = None,
    ) -> "UseCases":
        metrics = metrics or GateMetrics()
        fleet = fleet or Fleet.single()
        events = EventBus()
        agents = Agents(store, admin_key, events)
        expiry = Expiry(store, events, fleet)
        proposals = Proposals(
            store,
            policies,
            events,
            metrics,
            environment=environment,
            expiry_wakeup=expiry.wakeup,
            instance=fleet.instance,
        )
        review = Review(store, expiry, events, metrics)
        executions = Executions(store, agents, expiry, events, fleet)
        orders = Orders(store, signer, agents, review, events)
        return cls(
            store, metrics, events, agents, proposals, review, expiry, executions, orders, fleet
        )

    async def close(self) -> None:
        await self.events.close()
