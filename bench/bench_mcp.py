"""What an MCP `tools/call` adds to a decision: the JSON-RPC parse and the tool rules.

Run from the repository root:

    .venv/bin/python bench/bench_mcp.py [--iterations N] [--warmup N]

Pure, in process, no I/O. Three rows, each timed per call with perf_counter_ns in a loop
bounded by --iterations:

* plain POST: what the proxy edge does for a plain JSON write before the store is asked
  (read the body as the upstream will, fingerprint it, `decide()` with the policy);
* MCP tools/call: the same for the JSON-RPC envelope of a call with the same arguments
  (read the body, parse it strictly, check the routing headers, the `tools:` rules, the
  call fingerprint, `decide()` on the arguments);
* MCP parse + tool rules only: the MCP-specific steps alone.

The "added" line is MCP tools/call minus plain POST at the same percentile.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gate_proxy.core.body import decode_body
from gate_proxy.core.decide import AgentScope, DescribedRequest, Verdict, decide
from gate_proxy.core.fingerprint import mcp_call_fingerprint, request_fingerprint
from gate_proxy.core.headers import BOUND_HEADERS
from gate_proxy.core.mcp import McpBody, check_routing_headers, parse_mcp_body, rule_for_tool
from gate_proxy.core.policy import IntentFacts
from gate_proxy.loaders.policy_file import parse_policy

POLICY = parse_policy(
    """id: payments-tools
require_approval: never
block_if_terms: [chargeback, "legal action", lawsuit, "wire transfer"]
field_checks:
  - {path: amount, min: 1, max: 1000}
  - {path: charge, required: true, pattern: "^ch_[A-Za-z0-9]+$"}
  - {path: reason, max_length: 500}
tools:
  read: [lookup, list_*, get_*]
  require_approval: [issue_refund_large]
  block: [delete_*, drop_*]
""",
    "payments-tools.yaml",
)
ARGUMENTS = {
    "charge": "ch_3PZ8abc123",
    "amount": 420,
    "currency": "usd",
    "reason": "duplicate charge reported by the customer; order 4821 shipped twice",
    "metadata": {"ticket": "4821", "agent": "support-bot"},
}
URL = "https://payments.example.com/mcp"
HEADERS = [
    ("Host", "payments.example.com"),
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
    ("Mcp-Session-Id", "7f9c2b1e4d"),
    ("Mcp-Protocol-Version", "2025-11-25"),
]
SCOPE = AgentScope()


def plain_decision(body: bytes) -> Verdict:
    decoded = decode_body(body, "application/json")
    fingerprint = request_fingerprint("POST", URL, body, HEADERS, BOUND_HEADERS)
    assert fingerprint
    facts = IntentFacts(destination="payments.http", payload=decoded.text, payload_type="json")
    return decide(DescribedRequest("payments.http", "payments-tools", facts), POLICY, SCOPE)


def mcp_steps(body: bytes) -> tuple[str, str, str]:
    decoded = decode_body(body, "application/json")
    parsed = parse_mcp_body(decoded.text or "")
    assert isinstance(parsed, McpBody)
    assert check_routing_headers(parsed, HEADERS) is None
    (call,) = parsed.calls
    rule = rule_for_tool(POLICY.tools, call.name)
    assert rule.refusal is None
    fingerprint = mcp_call_fingerprint(URL, call.binding, HEADERS, BOUND_HEADERS)
    return call.arguments_json, fingerprint, rule.ruling.value


def mcp_decision(body: bytes) -> Verdict:
    arguments, _, _ = mcp_steps(body)
    facts = IntentFacts(destination="payments.mcp", payload=arguments, payload_type="json")
    return decide(DescribedRequest("payments.mcp", "payments-tools", facts), POLICY, SCOPE)


def measure(run: Callable[[bytes], object], body: bytes, options: argparse.Namespace) -> list[int]:
    """Per-call latencies in ns, sorted; bounded by --warmup and --iterations."""
    for _ in range(options.warmup):
        run(body)
    gc.collect()
    clock = time.perf_counter_ns
    samples: list[int] = []
    for _ in range(options.iterations):
        start = clock()
        run(body)
        samples.append(clock() - start)
    samples.sort()
    return samples


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index] / 1000.0


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--iterations", type=int, default=20_000)
    arguments.add_argument("--warmup", type=int, default=2_000)
    options = arguments.parse_args()
    if options.iterations < 1 or options.warmup < 0:
        arguments.error("--iterations must be >= 1 and --warmup >= 0")

    plain_body = json.dumps(ARGUMENTS).encode()
    envelope = {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {"name": "issue_refund", "arguments": ARGUMENTS, "_meta": {"progressToken": 7}},
    }
    mcp_body = json.dumps(envelope).encode()
    for verdict in (plain_decision(plain_body), mcp_decision(mcp_body)):
        if verdict.status != "approved":
            raise SystemExit(f"the benchmark call should be approved, got {verdict}")

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    print(f"command: {command}")
    print(f"date: {today}  python: {platform.python_version()}  machine: {platform.machine()}")
    rows = [
        ("plain POST decision", plain_body, plain_decision),
        ("MCP tools/call decision", mcp_body, mcp_decision),
        ("MCP parse + tool rules only", mcp_body, mcp_steps),
    ]
    results: dict[str, tuple[float, float]] = {}
    print()
    print("| benchmark | body | calls | p50 µs | p99 µs |")
    print("|---|---|---|---|---|")
    for name, body, run in rows:
        samples = measure(run, body, options)
        p50, p99 = percentile(samples, 0.50), percentile(samples, 0.99)
        results[name] = (p50, p99)
        print(f"| {name} | {len(body)} B | {len(samples)} | {p50:.2f} | {p99:.2f} |")
    plain, mcp = results["plain POST decision"], results["MCP tools/call decision"]
    print()
    print(f"added per tools/call: p50 {mcp[0] - plain[0]:+.2f} µs, p99 {mcp[1] - plain[1]:+.2f} µs")


if __name__ == "__main__":
    main()
