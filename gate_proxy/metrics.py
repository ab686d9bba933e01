"""A small Prometheus registry: counters, gauges and histograms with labels.

Label values are only ever ours (outcomes, destination names, reason codes), never
request data, so no secret can reach /metrics through a label.
"""

import bisect
import threading
from collections.abc import Callable, Iterable

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Labels, values: Labels, extra: str = "") -> str:
    pairs = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Labels = ()) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        with self._lock:
            self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def samples(self) -> Iterable[str]:
        for values, number in sorted(self.values.items()):
            yield f"{self.name}{_label_text(self.labels, values)} {number:g}"


class Gauge(Counter):
    kind = "gauge"

    def __init__(
        self, name: str, help_text: str, labels: Labels = (), fn: Callable[[], float] | None = None
    ) -> None:
        super().__init__(name, help_text, labels)
        self.fn = fn

    def set(self, value: float, *label_values: str) -> None:
        self.values[label_values] = value

    def samples(self) -> Iterable[str]:
        if self.fn is not None:
            yield f"{self.name} {self.fn():g}"
            return
        yield from super().samples()


class Histogram:
    kind = "histogram"
    DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(
        self, name: str, help_text: str, labels: Labels = (), buckets: tuple[float, ...] = ()
    ) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.buckets = buckets or self.DEFAULT_BUCKETS
        self.series: dict[Labels, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, *label_values: str) -> None:
        series = self.series.get(label_values)
        if series is None:
            series = self.series[label_values] = [0.0] * (len(self.buckets) + 2)
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


class GateMetrics:
    """Every metric the gate exports, in one place."""

    def __init__(self) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.decisions = add(
            Counter(
                "gate_decisions_total",
                "Decisions by outcome, destination and source.",
                ("outcome", "destination", "source"),
            )
        )
        self.decision_latency = add(
            Histogram(
                "gate_decision_latency_seconds",
                "Time from request to decision, including the ledger write.",
                ("source",),
            )
        )
        self.held = add(Gauge("gate_held_requests", "Requests held open waiting for approval."))
        self.upstream_errors = add(
            Counter("gate_upstream_errors_total", "Upstream failures by kind.", ("kind",))
        )
        self.reviews = add(
            Counter("gate_reviews_total", "Human approvals and rejections.", ("outcome",))
        )
        self.webhook_deliveries = add(
            Counter("gate_webhook_deliveries_total", "Webhook delivery attempts.", ("result",))
        )
        self.internal_errors = add(
            Counter(
                "gate_internal_errors_total", "Errors inside the gate (fail closed).", ("where",)
            )
        )
        self.config_reload_failures = add(
            Counter("gate_config_reload_failures_total", "Rejected config reloads.", ("config",))
        )
