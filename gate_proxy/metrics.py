"""The gate's Prometheus metrics (prometheus_client), with bounded labels.

/metrics is unauthenticated, so every label is declared with the values it may take
(:class:`LabelValues`); anything else is exported as ``other``. Request data (a host an
agent CONNECTs to, a destination name it made up, control characters) therefore never
reaches /metrics, and the number of series is bounded by the configuration, not by
traffic. Destination names are the ones the registry and the policies define; the gate
updates them whenever either reloads (``gate_proxy/loaders/live.py``).
"""

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest

from gate_proxy.core.intents import Status

# Counters' `_created` timestamps double the series and say nothing an operator needs.
prometheus_client.disable_created_metrics()

Labels = tuple[str, ...]

OTHER = "other"


class LabelValues:
    """The values one label may take; any other value is counted as ``other``.

    The allowed set is the union of named parts (``fixed`` from the constructor, plus e.g.
    ``registry`` and ``policies`` for destination names), each replaced as a whole when its
    source reloads. Readers see one frozenset or the next, never a half-updated one.
    """

    def __init__(self, *fixed: str) -> None:
        self._parts: dict[str, frozenset[str]] = {"fixed": frozenset(fixed)}
        self._allowed: frozenset[str] = frozenset(fixed)
        self._lock = threading.Lock()

    def set_part(self, part: str, values: Iterable[str]) -> None:
        with self._lock:
            self._parts[part] = frozenset(values)
            self._allowed = frozenset().union(*self._parts.values())

    def bound(self, value: str) -> str:
        return value if value in self._allowed else OTHER

    @property
    def allowed(self) -> frozenset[str]:
        return self._allowed


def _bounded(allowed: tuple[LabelValues, ...], values: tuple[str, ...]) -> Labels:
    return tuple(bounds.bound(value) for bounds, value in zip(allowed, values, strict=True))


class _Bounded:
    """A prometheus_client metric whose label values are bounded before they are used."""

    def __init__(self, metric: Any, labels: Mapping[str, LabelValues] | None) -> None:
        self._metric = metric
        self.labels: Labels = tuple(labels or {})
        self.allowed: tuple[LabelValues, ...] = tuple((labels or {}).values())

    def _child(self, label_values: tuple[str, ...]) -> Any:
        if not self.labels:
            return self._metric
        return self._metric.labels(*_bounded(self.allowed, label_values))

    @property
    def values(self) -> dict[Labels, float]:
        """Current value per label tuple (counters and gauges): for tests and reports."""
        out: dict[Labels, float] = {}
        for family in self._metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                out[tuple(sample.labels[name] for name in self.labels)] = sample.value
        return out


class Counter(_Bounded):
    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        help_text: str,
        labels: Mapping[str, LabelValues] | None = None,
    ) -> None:
        metric = prometheus_client.Counter(
            name.removesuffix("_total"), help_text, tuple(labels or {}), registry=registry
        )
        super().__init__(metric, labels)

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self._child(label_values).inc(amount)


class Gauge(_Bounded):
    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        help_text: str,
        labels: Mapping[str, LabelValues] | None = None,
    ) -> None:
        metric = prometheus_client.Gauge(name, help_text, tuple(labels or {}), registry=registry)
        super().__init__(metric, labels)

    def set(self, value: float, *label_values: str) -> None:
        self._child(label_values).set(value)


class Histogram(_Bounded):
    DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        help_text: str,
        labels: Mapping[str, LabelValues] | None = None,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        metric = prometheus_client.Histogram(
            name, help_text, tuple(labels or {}), registry=registry, buckets=buckets
        )
        super().__init__(metric, labels)

    def observe(self, value: float, *label_values: str) -> None:
        self._child(label_values).observe(value)


class Registry:
    """The gate's own collector registry (never the process-global one), rendered in the
    Prometheus text format by prometheus_client."""

    def __init__(self) -> None:
        self.collectors = CollectorRegistry(auto_describe=True)

    def render(self) -> str:
        return generate_latest(self.collectors).decode("utf-8")


# The values the gate's own code passes. A call site that adds a value must add it here too,
# or it is exported as `other` (visible, harmless).
# Intent statuses, plus what the proxy records for requests that make no intent.
DECISION_OUTCOMES = (*(status.value for status in Status), "passthrough", "error")
DECISION_SOURCES = ("api", "proxy", "connect")
REVIEW_OUTCOMES = ("approved", "rejected")
WEBHOOK_RESULTS = ("ok", "retry", "failed", "refused")
UPSTREAM_ERROR_KINDS = (
    "timeout",
    "client_disconnected",
    "upstream_error",
    "egress_denied",
    "bad_response_head",
    "upstream_encoding_unsupported",
    "upstream_encoding_invalid",
)
CONFIGS = ("policies", "destinations")
# Where an internal error happened: the names given to fail_closed(...), and "api".
HOOKS = (
    "api",
    "egress",
    "forward",
    "http_connect",
    "http_connect_destination",
    "identity",
    "request",
    "requestheaders",
    "response",
    "responseheaders",
    "standalone",
    "vault_guard",
    "vault_inject",
    "vault_scrub_body",
    "vault_scrub_headers",
)


class GateMetrics:
    """Every metric the gate exports, in one place."""

    def __init__(self) -> None:
        self.registry = Registry()
        collectors = self.registry.collectors
        # Destination names defined by the registry and the policies (set on every load).
        self.destinations = LabelValues()
        sources = LabelValues(*DECISION_SOURCES)
        self.decisions = Counter(
            collectors,
            "gate_decisions_total",
            "Decisions by outcome, destination and source.",
            {
                "outcome": LabelValues(*DECISION_OUTCOMES),
                "destination": self.destinations,
                "source": sources,
            },
        )
        self.decision_latency = Histogram(
            collectors,
            "gate_decision_latency_seconds",
            "Time from request to decision, including the ledger write.",
            {"source": sources},
        )
        self.held = Gauge(
            collectors, "gate_held_requests", "Requests held open waiting for approval."
        )
        self.upstream_errors = Counter(
            collectors,
            "gate_upstream_errors_total",
            "Upstream failures by kind.",
            {"kind": LabelValues(*UPSTREAM_ERROR_KINDS)},
        )
        self.reviews = Counter(
            collectors,
            "gate_reviews_total",
            "Human approvals and rejections.",
            {"outcome": LabelValues(*REVIEW_OUTCOMES)},
        )
        self.webhook_deliveries = Counter(
            collectors,
            "gate_webhook_deliveries_total",
            "Webhook delivery attempts.",
            {"result": LabelValues(*WEBHOOK_RESULTS)},
        )
        self.internal_errors = Counter(
            collectors,
            "gate_internal_errors_total",
            "Errors inside the gate (fail closed).",
            {"where": LabelValues(*HOOKS)},
        )
        self.config_reload_failures = Counter(
            collectors,
            "gate_config_reload_failures_total",
            "Rejected config reloads.",
            {"config": LabelValues(*CONFIGS)},
        )
