"""Agents and their keys: who is asking, registration, suspension and revocation."""

import re
import time
from typing import Any

from gate_proxy.clock import utc_iso
from gate_proxy.errors import (
    NotPermitted,
    Unauthenticated,
    conflict,
    invalid,
    not_found,
    not_permitted,
)
from gate_proxy.keys import API_KEY_PREFIX, generate_api_key, hash_key, keys_equal, random_id
from gate_proxy.principal import Principal, Role, admin_principal
from gate_proxy.store.base import DuplicateKey, EventDraft, Row, Store
from gate_proxy.usecases.events import EventBus, agent_key

# A revocation made by another process takes effect here within this (the ledger feed
# usually drops the cache sooner).
AUTH_CACHE_SECONDS = 0.5
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
RISK_TIERS = ("standard", "elevated", "restricted")


class Agents:
    def __init__(self, store: Store, admin_key: str, events: EventBus) -> None:
        self.store = store
        self._admin_key_hash = hash_key(admin_key)
        self.events = events
        # key hash -> (valid until, principal or None, status); short, so a revocation
        # made elsewhere takes effect within AUTH_CACHE_SECONDS (at once in this process).
        self._auth_cache: dict[str, tuple[float, Principal | None, str]] = {}

    def forget_cached(self) -> None:
        """An agent changed status somewhere: the next request reads the store."""
        self._auth_cache.clear()

    async def authenticate(self, key: str | None) -> Principal:
        """Resolve an API key: Unauthenticated for unknown keys, NotPermitted for
        suspended or revoked ones."""
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
            principal = principal_from_row(row) if row else None
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

    async def require_active(self, agent_id: str) -> None:
        """NotPermitted unless the agent is active now: read from the store, not the cache."""
        if agent_id == admin_principal().id:
            return
        agent = await self.store.get_agent(agent_id)
        status = agent["status"] if agent is not None else "unknown"
        if status != "active":
            raise NotPermitted(f"agent_{status}", f"the agent is {status}")

    async def register(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        if not caller.is_admin:
            raise not_permitted("registering agents needs an admin key")
        name = body.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise invalid("name is required: 1-64 letters, digits, _ . @ -")
        role = body.get("role", "agent")
        if not isinstance(role, str) or role not in {r.value for r in Role}:
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

    async def set_status(self, caller: Principal, agent_id: str, status: str) -> Row:
        if not caller.is_admin:
            raise not_permitted("changing an agent's status needs an admin key")
        agent = await self.find(agent_id)
        if agent["status"] == "revoked":
            raise conflict("a revoked agent cannot change status")
        event = EventDraft(f"agent_{status}", None, caller.name, agent["id"], {"status": status})
        if not await self.store.set_agent_status(agent["id"], status, event):
            raise conflict("agent status changed concurrently")
        self._auth_cache.clear()  # revocation takes effect at once in this process
        # Wake whatever is held for this agent: it re-checks the agent and refuses.
        self.events.notify(agent_key(agent["id"]), status)
        return public_agent({**agent, "status": status})

    async def find(self, id_or_name: str) -> Row:
        agent = await self.store.get_agent(id_or_name) or await self.store.get_agent_by_name(
            id_or_name
        )
        if agent is None:
            raise not_found("agent")
        return agent


def principal_from_row(row: Row) -> Principal:
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
