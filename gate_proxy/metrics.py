"""A small Prometheus registry: counters, gauges and histograms with bounded labels.

/metrics is unauthenticated, so every label is declared with the values it may take
(:class:`LabelValues`); anything else is exported as ``other``. Request data (a host an
agent CONNECTs to, a destination name it made up, control characters) therefore never
reaches /metrics, and the number of series is bounded by the configuration, not by
traffic. Destination names are the ones the registry and the policies define; the gate
updates them whenever either reloads (``gate_proxy/loaders/live.py``).
"""

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping

from gate_proxy.core.intents import Status

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Labels, values: Labels, extra: str = "") -> str:
    pairs = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _bounded(allowed: tuple[LabelValues, ...], values: tuple[str, ...]) -> Labels:
    return tuple(bounds.bound(value) for bounds, value in zip(allowed, values, strict=True))


class Counter:
    kind = "counter"

    def __init__(
        self, name: str, help_text: str, labels: Mapping[str, LabelValues] | None = None
    ) -> None:
        labels = labels or {}
        self.name, self.help = name, help_text
        self.labels: Labels = tuple(labels)
        self.allowed: tuple[LabelValues, ...] = tuple(labels.values())
        self.values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        key = _bounded(self.allowed, label_values)
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def samples(self) -> Iterable[str]:
        for values, number in sorted(self.values.items()):
            yield f"{self.name}{_label_text(self.labels, values)} {number:g}"


class Gauge(Counter):
    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Mapping[str, LabelValues] | None = None,
        fn: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.fn = fn

    def set(self, value: float, *label_values: str) -> None:
        self.values[_bounded(self.allowed, label_values)] = value

    def samples(self) -> Iterable[str]:
        if self.fn is not None:
            yield f"{self.name} {self.fn():g}"
            return
        yield from super().samples()


class Histogram:
    kind = "histogram"
    DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Mapping[str, LabelValues] | None = None,
        buckets: tuple[float, ...] = (),
    ) -> None:
        labels = labels or {}
        self.name, self.help = name, help_text
        self.labels: Labels = tuple(labels)
        self.allowed: tuple[LabelValues, ...] = tuple(labels.values())
        self.buckets = buckets or self.DEFAULT_BUCKETS
        self.series: dict[Labels, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, *label_values: str) -> None:
        key = _bounded(self.allowed, label_values)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-2] += value
        series[-1] += 1

    def samples(self) -> Iterable[str]:
        for values, series in sorted(self.series.items()):
            cumulative = 0.0
            for bound, count in zip(self.buckets, series, strict=False):
                cumulative += count
                yield (
                    f"{self.name}_bucket{_label_text(self.labels, values, f'le="{bound:g}"')}"
                    f" {cumulative:g}"
                )
            cumulative += series[len(self.buckets)]
            inf = _label_text(self.labels, values, 'le="+Inf"')
            yield f"{self.name}_bucket{inf} {cumulative:g}"
            yield f"{self.name}_sum{_label_text(self.labels, values)} {series[-2]:g}"
            yield f"{self.name}_count{_label_text(self.labels, values)} {series[-1]:g}"


class Registry:
    def __init__(self) -> None:
        self.metrics: list[Counter | Histogram] = []

    def add[M: (Counter, Histogram)](self, metric: M) -> M:
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


# The values the gate's own code passes. A call site that adds a value must add it here too,
# or it is exported as `other` (visible, harmless).
DECISION_OUTCOMES = tuple(status.value for status in Status)
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
# The names given to addons.guard.fail_closed(...).
HOOKS = (
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
        # Destination names defined by the registry and the policies (set on every load).
        self.destinations = LabelValues()
        sources = LabelValues(*DECISION_SOURCES)
        add = self.registry.add
        self.decisions = add(
            Counter(
                "gate_decisions_total",
                "Decisions by outcome, destination and source.",
                {
                    "outcome": LabelValues(*DECISION_OUTCOMES),
                    "destination": self.destinations,
                    "source": sources,
                },
            )
        )
        self.decision_latency = add(
            Histogram(
                "gate_decision_latency_seconds",
                "Time from request to decision, including the ledger write.",
                {"source": sources},
            )
        )
        self.held = add(Gauge("gate_held_requests", "Requests held open waiting for approval."))
        self.upstream_errors = add(
            Counter(
                "gate_upstream_errors_total",
                "Upstream failures by kind.",
                {"kind": LabelValues(*UPSTREAM_ERROR_KINDS)},
            )
        )
        self.reviews = add(
            Counter(
                "gate_reviews_total",
                "Human approvals and rejections.",
                {"outcome": LabelValues(*REVIEW_OUTCOMES)},
            )
        )
        self.webhook_deliveries = add(
            Counter(
                "gate_webhook_deliveries_total",
                "Webhook delivery attempts.",
                {"result": LabelValues(*WEBHOOK_RESULTS)},
            )
        )
        self.internal_errors = add(
            Counter(
                "gate_internal_errors_total",
                "Errors inside the gate (fail closed).",
                {"where": LabelValues(*HOOKS)},
            )
        )
        self.config_reload_failures = add(
            Counter(
                "gate_config_reload_failures_total",
                "Rejected config reloads.",
                {"config": LabelValues(*CONFIGS)},
            )
        )
