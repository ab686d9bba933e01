"""Latency of one policy decision with every rule kind switched on.

Run from the repository root:

    .venv/bin/python bench/bench_policy.py [--iterations N] [--rounds R]

The policy switches on every rule kind: destinations, allowed_types, 20 block terms, four
field checks, the content analyzers (PII and secrets, templates, shell and path fields, a
record check, SQL on its `query` field, which this body does not have), rate limits,
budgets with a value path, the duplicate window, thresholds, approvals and an environment
override. The ~1 KB JSON payload passes every check, so each call runs the whole pipeline
and ends in auto_approve_under.

Scenarios (each call timed alone with perf_counter_ns; rounds interleave the scenarios so
the machine's noise hits them alike; the table shows the median of the rounds' percentiles):

* ``decide()``: the request as the gate decides it, with the counts given (rate, budget
  and duplicate counts, as read in the store's transaction) and the content work done in
  the same call: JSON parse, term scan, analyzers, field checks, limits, risk, verdict.
* ``decide()`` with the analysis done ahead: what runs inside the store's write
  transaction (the proxy and the API analyse the body before taking the write lock).
* ``analyze_intent()``: that content work alone.
* ``evaluate()``, every rule on / except block_if_terms: the policy alone (issue #2's rows).
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gate_proxy.core.decide import AgentScope, Counts, DescribedRequest, decide
from gate_proxy.core.policy import IntentFacts, RateCounts, analyze_intent, evaluate
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
ANALYZERS_YAML = """
sql:
  fields: [query]
  block: [drop, truncate, alter, stacked]
  require_approval: [delete_without_where, update_without_where]
block_if_pii: [secret, card, ssn]
require_approval_if_pii: [phone, iban]
require_approval_if_template_error: true
shell_check_fields: [subject]
path_check_fields: ["attachments[*]"]
record_checks:
  - path: "contacts[*].email"
    max_empty_ratio: 0.2
    on_fail: block
dedupe_window_seconds: 60
budgets:
  per_agent: {hourly_max_value_usd: 500, daily_max_value_usd: 2000}
  per_policy: {daily_max_value_usd: 20000}
  value_path: amount
  on_exceed: block
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
        "attachments": ["label-4821.pdf"],
    }
    return json.dumps(payload)


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index] / 1000.0


def timed(call: Callable[[], object], iterations: int) -> list[int]:
    """Per-call latencies in ns, sorted. The loop is bounded by `iterations`."""
    gc.collect()
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    for _ in range(iterations):
        start = clock()
        call()
        append(clock() - start)
    samples.sort()
    return samples


def scenarios(payload: str) -> list[tuple[str, Callable[[], object]]]:
    everything = parse_policy(
        POLICY_YAML + TERMS_YAML + CHECKS_YAML + ANALYZERS_YAML, "bench-everything.yaml"
    )
    no_terms = parse_policy(POLICY_YAML + CHECKS_YAML, "bench-no-terms.yaml")
    issue2 = parse_policy(POLICY_YAML + TERMS_YAML + CHECKS_YAML, "bench-issue2.yaml")
    facts = IntentFacts(
        destination="sendgrid.send",
        payload=payload,
        record_count=3,
        estimated_value_usd=250.0,
        sensitivity_tags=("pii",),
        environment="production",
    )
    rates = RateCounts(last_hour=3, last_day=10)
    request = DescribedRequest(
        destination="sendgrid.send",
        policy="bench-everything",
        facts=facts,
        source="proxy",
        credential_destination="sendgrid.send",
    )
    scope = AgentScope(allowed_policies=("bench-everything", "other"), allowed_destinations=None)
    counts = Counts(last_hour=3, last_day=10, spent=(40.0, 120.0, 900.0, 4000.0))
    analysis = analyze_intent(everything, facts)

    verdict = decide(request, everything, scope, counts)
    ahead = decide(request, everything, scope, counts, analysis)
    if verdict != ahead or verdict.status != "approved" or verdict.rule != "auto_approve_under":
        raise SystemExit(f"the payload should pass every check, got {verdict}")
    for policy in (issue2, no_terms):
        decision = evaluate(policy, facts, rates)
        if decision.status != "approved" or decision.rule != "auto_approve_under":
            raise SystemExit(f"the payload should pass every check, got {decision}")
    return [
        ("decide(), every rule kind on", lambda: decide(request, everything, scope, counts)),
        (
            "decide(), analysis done ahead (inside the store's write)",
            lambda: decide(request, everything, scope, counts, analysis),
        ),
        ("analyze_intent(), the content work alone", lambda: analyze_intent(everything, facts)),
        ("evaluate(), every rule on (issue #2)", lambda: evaluate(issue2, facts, rates)),
        (
            "evaluate(), every rule on except block_if_terms (issue #2)",
            lambda: evaluate(no_terms, facts, rates),
        ),
    ]


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--iterations", type=int, default=20_000, help="calls per round")
    arguments.add_argument("--rounds", type=int, default=5)
    arguments.add_argument("--warmup", type=int, default=3_000)
    options = arguments.parse_args()
    if options.iterations < 1 or options.rounds < 1 or options.warmup < 0:
        arguments.error("--iterations and --rounds must be >= 1, --warmup >= 0")

    payload = build_payload()
    cases = scenarios(payload)
    for _, call in cases:
        for _ in range(options.warmup):
            call()
    rounds: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _ in cases}
    for _ in range(options.rounds):
        for name, call in cases:
            samples = timed(call, options.iterations)
            p50, p90, p99 = (percentile(samples, f) for f in (0.50, 0.90, 0.99))
            rounds[name].append((p50, p90, p99, statistics.fmean(samples) / 1000))

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    print(f"command: {command}")
    print(
        f"date: {today}  python: {platform.python_version()}  machine: {platform.machine()}, "
        f"{os.cpu_count()} cores  payload: {len(payload.encode())} B JSON  "
        f"{options.rounds} rounds x {options.iterations} calls (medians of the rounds)"
    )
    print()
    print("| benchmark | p50 µs | p90 µs | p99 µs | mean µs | p50 spread |")
    print("|---|---|---|---|---|---|")
    for name, values in rounds.items():
        p50, p90, p99, mean = (statistics.median(v[i] for v in values) for i in range(4))
        low, high = min(v[0] for v in values), max(v[0] for v in values)
        print(f"| {name} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {mean:.2f} | {low:.2f}–{high:.2f} |")


if __name__ == "__main__":
    main()
