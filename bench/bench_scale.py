"""Cost per request against the size of the configuration: destinations, policies, agents.

Run from the repository root:

    .venv/bin/python bench/bench_scale.py [--quick] [--agents N ...] [--rounds R]

Two parts, each measured at a small and a large size in the same run, rounds interleaved
(the median of the rounds' medians is shown, and the large/small ratio: 1.0 is flat):

* **registry match + decision**: ``Registry.match`` (host, port, method, path), the policy
  lookup, ``decide()`` with counts given (a small JSON body, its content checks included),
  with 10 and 1,000 destinations and as many policies, in five shapes: one destination per
  host; many paths on one host (the request names the last); the same with a block rule
  on the host (blocks are sticky, so every candidate used to be checked); wildcard hosts;
  reverse-proxy route prefixes.
* **authentication**: ``Agents.authenticate`` on a real ``SqliteStore`` in a temporary
  directory with 10 and 10,000 registered agents: from the short auth cache (the same key
  again) and from the store (the cache dropped before each call).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fmt, header, md_table

from gate_proxy.core.decide import AgentScope, Counts, DescribedRequest, decide
from gate_proxy.core.policy import IntentFacts, Policy
from gate_proxy.core.registry import Registry, build_registry
from gate_proxy.keys import load_or_create_signer
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.principal import admin_principal
from gate_proxy.store.sqlite import SqliteStore
from gate_proxy.usecases.agents import Agents
from gate_proxy.usecases.events import EventBus

BODY = '{"to": "customer@example.com", "subject": "Re: ticket 4821", "amount": 42}'
SHAPES = ("hosts", "paths", "paths + a host block", "wildcard hosts", "reverse routes")


def policy_yaml(index: int) -> str:
    return (
        f"id: policy{index}\n"
        f"destinations: [dest{index}.write]\n"
        'block_if_terms: ["wire transfer", "gift card"]\n'
        "field_checks:\n  - {path: amount, max: 100}\n"
        "rate_limits: {per_agent_per_hour: 100}\n"
        "auto_approve_under: 10\n"
    )


@dataclass
class Setup:
    registry: Registry
    policies: dict[str, Policy]
    host: str
    path: str
    reverse: bool = False


def registry_data(shape: str, size: int) -> tuple[dict[str, Any], str, str]:
    """Registry data with `size` destinations, and the (host, path) of the last one."""
    last = size - 1
    entry = lambda i: {"method": "POST", "destination": f"dest{i}.write", "policy": f"policy{i}"}  # noqa: E731
    if shape == "hosts":
        data = {f"api{i}.example.com": {"paths": {"/v1/send": entry(i)}} for i in range(size)}
        return data, f"api{last}.example.com", "/v1/send"
    if shape.startswith("paths"):
        paths = {f"/v1/resource{i}": entry(i) for i in range(size)}
        if shape == "paths + a host block":
            paths["/admin"] = {"block": True}
        return {"api.example.com": {"paths": paths}}, "api.example.com", f"/v1/resource{last}"
    if shape == "wildcard hosts":
        data = {f"*.tenant{i}.example.com": {"paths": {"/v1/send": entry(i)}} for i in range(size)}
        return data, f"eu.tenant{last}.example.com", "/v1/send"
    routes = [
        {"prefix": f"/svc{i}/", "upstream": f"https://svc{i}.internal.example.com/"}
        for i in range(size)
    ]
    data = {"routes": routes}
    data.update({f"svc{i}.internal.example.com": {"paths": {"/v1": entry(i)}} for i in range(size)})
    return data, f"svc{last}.internal.example.com", f"/svc{last}/v1/send"


def build_setup(shape: str, size: int, policies: dict[str, Policy]) -> Setup:
    data, host, path = registry_data(shape, size)
    registry = build_registry({"default": {"action": "block"}, **data}, source="bench")
    return Setup(registry, policies, host, path, reverse=shape == "reverse routes")


def one_request(setup: Setup) -> Callable[[], object]:
    registry, policies = setup.registry, setup.policies
    scope = AgentScope()
    counts = Counts(last_hour=3, last_day=10)

    def call() -> object:
        host, path = setup.host, setup.path
        if setup.reverse:
            target = registry.match_route(path)
            assert target is not None
            host, path = target.host, target.path
        match = registry.match(host, 443, "POST", path)
        assert match.policy is not None and match.destination is not None
        policy = policies.get(match.policy)
        facts = IntentFacts(destination=match.destination, payload=BODY, environment=None)
        request = DescribedRequest(match.destination, match.policy, facts, source="proxy")
        return decide(request, policy, scope, counts)

    verdict = call()
    assert getattr(verdict, "status", None) == "approved", verdict
    return call


def per_call_us(call: Callable[[], object], calls: int) -> float:
    """Median of per-call times over `calls` calls, in µs (each call timed alone)."""
    gc.collect()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        start = clock()
        call()
        samples.append(clock() - start)
    return statistics.median(samples) / 1000


def registry_part(sizes: tuple[int, int], rounds: int, calls: int) -> list[list[object]]:
    largest = max(sizes)
    policies = {
        f"policy{i}": parse_policy(policy_yaml(i), f"policy{i}.yaml") for i in range(largest)
    }
    requests: dict[tuple[str, int], Callable[[], object]] = {}
    for shape in SHAPES:
        for size in sizes:
            subset = {f"policy{i}": policies[f"policy{i}"] for i in range(size)}
            requests[(shape, size)] = one_request(build_setup(shape, size, subset))
    results: dict[tuple[str, int], list[float]] = {key: [] for key in requests}
    for _ in range(rounds):
        for key, call in requests.items():
            results[key].append(per_call_us(call, calls))
    rows = []
    for shape in SHAPES:
        small, large = (statistics.median(results[(shape, size)]) for size in sizes)
        rows.append([shape, fmt(small, 2), fmt(large, 2), f"{large / small:.2f}×"])
    return rows


# -- authentication ------------------------------------------------------------------------------


async def register_agents(agents: Agents, count: int) -> list[str]:
    admin = admin_principal()
    keys: list[str] = []
    for start in range(0, count, 250):  # concurrent batches: the store group-commits them
        batch = range(start, min(count, start + 250))
        created = await asyncio.gather(
            *(agents.register(admin, {"name": f"bench-agent-{i}"}) for i in batch)
        )
        keys.extend(agent["apiKey"] for agent in created)
    return keys


async def auth_rows(sizes: tuple[int, int], calls: int, rounds: int) -> list[list[object]]:
    """Median µs per authenticate, cached and from the store, for each agent count; the
    stores are built first, then the rounds alternate between them."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
        setups: list[tuple[SqliteStore, Agents, list[str]]] = []
        try:
            for count in sizes:
                data_dir = Path(directory) / str(count)
                store = SqliteStore(data_dir, load_or_create_signer(data_dir))
                await store.open()
                agents = Agents(store, "gate_sk_admin-" + "x" * 40, EventBus())
                keys = await register_agents(agents, count)
                assert len(set(keys)) == count == len(await store.list_agents())
                setups.append((store, agents, keys))
            chooser = random.Random(7)
            cached: list[list[float]] = [[] for _ in sizes]
            stored: list[list[float]] = [[] for _ in sizes]
            for _ in range(rounds):
                for index, (_, agents, keys) in enumerate(setups):
                    hot = chooser.choice(keys)
                    await agents.authenticate(hot)
                    cached[index].append(await _timed_auth(agents, [hot] * calls, forget=False))
                    picks = [chooser.choice(keys) for _ in range(calls)]
                    stored[index].append(await _timed_auth(agents, picks, forget=True))
        finally:
            for store, _, _ in setups:
                await store.close()
    rows: list[list[object]] = []
    for what, values in (("cached key", cached), ("read from the store", stored)):
        small, large = (statistics.median(v) for v in values)
        rows.append(
            [f"authenticate, {what}", fmt(small, 2), fmt(large, 2), f"{large / small:.2f}×"]
        )
    return rows


async def _timed_auth(agents: Agents, keys: list[str], *, forget: bool) -> float:
    clock = time.perf_counter_ns
    samples = []
    for key in keys:
        if forget:
            agents.forget_cached()
        start = clock()
        await agents.authenticate(key)
        samples.append(clock() - start)
    return statistics.median(samples) / 1000


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    arguments.add_argument("--rounds", type=int, default=5)
    arguments.add_argument("--destinations", type=int, nargs=2, default=(10, 1000))
    arguments.add_argument("--agents", type=int, nargs=2, default=(10, 10_000))
    arguments.add_argument("--part", choices=("all", "registry", "auth"), default="all")
    options = arguments.parse_args()
    rounds = 3 if options.quick else options.rounds
    calls = 2_000 if options.quick else 10_000
    destinations = tuple(options.destinations)
    agent_counts = tuple(options.agents)
    if rounds < 1 or min(destinations) < 1 or min(agent_counts) < 1:
        arguments.error("--rounds, --destinations and --agents must be >= 1")

    print(header("Cost per request vs configuration size (issue #13)"))
    print(f"- {rounds} rounds, interleaved; each number is the median per-call time (µs)")
    print()
    if options.part in ("all", "registry"):
        small, large = destinations
        rows = registry_part((small, large), rounds, calls)
        print(f"### Registry match + policy lookup + decide(), {small} vs {large} destinations")
        print("(and as many policies)\n")
        print(md_table(["shape", f"{small} µs", f"{large} µs", "ratio"], rows))
        print()
    if options.part in ("all", "auth"):
        small, large = agent_counts
        print(f"### Authentication through the store, {small} vs {large} agents\n")
        rows = asyncio.run(auth_rows((small, large), max(200, calls // 10), rounds))
        print(md_table(["call", f"{small} agents µs", f"{large} agents µs", "ratio"], rows))


if __name__ == "__main__":
    main()
