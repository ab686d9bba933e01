"""Latency of one `evaluate()` call with every policy rule switched on.

Run from the repository root:

    .venv/bin/python bench/bench_policy.py [--iterations N]

The payload (~1 KB JSON) passes every check, so each call runs the whole pipeline:
environment merge lookup, destination allowlist, payload type, a ~20-term scan of the full
payload, four field checks, rate limits, thresholds and the risk score. Each call is timed
on its own with perf_counter_ns; the loop is bounded by --iterations.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gate_proxy.core.policy import (
    IntentFacts,
    Policy,
    RateCounts,
    evaluate,
)
from gate_proxy.loaders.policy_file import parse_policy

POLICY_YAML = """
id: bench-everything
description: every rule kind switched on
destinations: [sendgrid.send, loops.send, zendesk.reply]
allowed_types: [json, text]
"""
TERMS_YAML = """
block_if_terms:
  - "refund guaranteed"
  - "legal action"
  - "sue"
  - "lawsuit"
  - "attorney"
  - "chargeback"
  - "wire transfer"
  - "gift card"
  - "social security"
  - "password"
  - "confidential"
  - "internal only"
  - "bitcoin"
  - "crypto wallet"
  - "bank account"
  - "routing number"
  - "api key"
  - "private key"
  - "guaranteed returns"
  - "act now"
"""
CHECKS_YAML = """
field_checks:
  - path: "to"
    required: true
    pattern: "^[^@]+@[^@]+\\\\.[^@]+$"
  - path: "amount"
    min: 1
    max: 100
  - path: "subject"
    max_length: 200
  - path: "contacts.0.email"
    required: true
    max_length: 254
rate_limits:
  per_agent_per_hour: 50
  per_agent_per_day: 200
auto_approve_under: 10
require_approval_over: 10
expiry_minutes: 30
environments:
  production:
    auto_approve_under: 5
    require_approval_over: 5
    expiry_minutes: 15
"""

_SUPPORT_REPLY = (
    "thanks for reaching out we have looked into your order and the shipping label was "
    "reprinted so the parcel should arrive within three business days please reply if the "
    "tracking page does not update by friday"
)


def build_payload() -> str:
    words = _SUPPORT_REPLY.split(" ")
    body = " ".join(words[i % len(words)] for i in range(120))
    payload = {
        "to": "customer@example.com",
        "subject": "Re: your ticket 4821",
        "amount": 42,
        "body": body,
        "contacts": [{"email": f"person{i}@example.com", "name": f"Person {i}"} for i in range(4)],
        "tags": ["support", "shipping"],
    }
    return json.dumps(payload)


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index] / 1000.0


def measure(policy: Policy, facts: IntentFacts, rates: RateCounts, options: Any) -> list[int]:
    """Per-call latencies in ns, sorted. The loop is bounded by --iterations."""
    decision = evaluate(policy, facts, rates)
    if decision.status != "approved" or decision.rule != "auto_approve_under":
        raise SystemExit(f"benchmark payload should pass every check, got {decision}")
    for _ in range(options.warmup):
        evaluate(policy, facts, rates)
    gc.collect()
    clock = time.perf_counter_ns
    samples: list[int] = []
    for _ in range(options.iterations):
        start = clock()
        evaluate(policy, facts, rates)
        samples.append(clock() - start)
    samples.sort()
    return samples


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--iterations", type=int, default=50_000)
    arguments.add_argument("--warmup", type=int, default=5_000)
    options = arguments.parse_args()
    if options.iterations < 1 or options.warmup < 0:
        arguments.error("--iterations must be >= 1 and --warmup >= 0")

    payload = build_payload()
    payload_bytes = len(payload.encode())
    facts = IntentFacts(
        destination="sendgrid.send",
        payload=payload,
        record_count=3,
        estimated_value_usd=250.0,
        sensitivity_tags=("pii",),
        environment="production",
    )
    rates = RateCounts(last_hour=3, last_day=10)
    scenarios = [
        ("evaluate(), every rule on", POLICY_YAML + TERMS_YAML + CHECKS_YAML),
        ("evaluate(), every rule on except block_if_terms", POLICY_YAML + CHECKS_YAML),
    ]

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    print(f"command: {command}")
    print(f"date: {today}  python: {platform.python_version()}  machine: {platform.machine()}")
    rows: list[str] = []
    for name, policy_yaml in scenarios:
        policy = parse_policy(policy_yaml, "bench-everything.yaml")
        samples = measure(policy, facts, rates, options)
        p50, p90, p99 = (percentile(samples, f) for f in (0.50, 0.90, 0.99))
        mean = statistics.fmean(samples) / 1000
        print(
            f"{name}: {payload_bytes} B JSON, {len(policy.block_if_terms)} terms, "
            f"{len(samples)} calls, mean {mean:.2f} µs, "
            f"p50 {p50:.2f} µs, p90 {p90:.2f} µs, p99 {p99:.2f} µs"
        )
        rows.append(
            f"| {name} | {payload_bytes} B JSON | {len(policy.block_if_terms)} "
            f"| {len(samples)} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {today} | `{command}` |"
        )
    print()
    print("| benchmark | payload | terms | calls | p50 µs | p90 µs | p99 µs | date | command |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
