"""SSRF-safe outbound HTTP for the gate's own calls: signed webhooks and Slack.

One address policy for every connection the gate opens. ``core/egress.py`` classifies
addresses (loopback, private, metadata, IPv4 embedded in IPv6, ...) and
``egress_resolver.EgressResolver`` resolves a name once and checks every answer against
the same ``egress_allow`` the proxy uses. This module is the client side of that policy:

* ``parse_target`` reads a target URL the way aiohttp will (yarl) and refuses anything
  but a plain http(s) URL;
* ``check_target`` resolves and checks it, raising ``TargetRefused`` with the reason;
* ``post_checked`` checks again right before each request (DNS may have changed since
  registration) and connects only to the checked addresses: ``PinnedResolver`` hands
  aiohttp those addresses instead of asking DNS, and IP literals (which aiohttp never
  resolves) were checked as they are. No redirects, no proxy from the environment.

Allowlist: ``egress_allow`` plus ``webhook_allow_cidrs`` (the older, webhook-only name,
still honoured). ``egress_check: false`` does not switch these checks off: the targets
are chosen by agents at run time (``allow_from_settings``).
"""

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gate_proxy.core.egress import EgressAllow, Network, Verdict, parse_ipv4_any
from gate_proxy.egress_resolver import (
    EgressResolver,
    ResolveFn,
    allow_from_settings,
    system_resolve,
)

__all__ = [
    "CheckedTarget",
    "OutboundResponse",
    "PinnedResolver",
    "Target",
    "TargetRefused",
    "as_egress",
    "check_target",
    "outbound_resolver",
    "parse_target",
    "post_checked",
]

RefusalKind = Literal["invalid", "denied", "unresolvable"]


class TargetRefused(Exception):
    """The target may not be contacted. `kind`: invalid URL, denied address, or no answer."""

    def __init__(self, kind: RefusalKind, message: str, verdict: Verdict | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.verdict = verdict

    @property
    def retryable(self) -> bool:
        """Only a failed lookup may succeed later; a denied address stays denied."""
        return self.kind == "unresolvable"

    def egress(self) -> dict[str, str | None]:
        """The machine-readable part, shaped like the proxy's ``egress`` answer."""
        if self.verdict is None:
            return {"reason": self.kind, "address": None}
        return {"reason": self.verdict.reason, "address": self.verdict.address}


@dataclass(frozen=True, slots=True)
class Target:
    url: URL
    host: str  # as aiohttp resolves it: yarl's raw_host (IDNA-encoded, no brackets)
    port: int

    @property
    def display(self) -> str:
        """host:port, safe to log and to answer with (the URL's path may be a secret)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    target: Target
    addresses: tuple[str, ...]  # every one checked, IPv4 first


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]


def parse_target(url: str) -> Target:
    """The target of an http(s) URL without credentials; TargetRefused("invalid") otherwise."""
    try:
        parsed = URL(url)
        host, port = parsed.raw_host, parsed.port
    except (TypeError, ValueError) as exc:
        raise TargetRefused("invalid", "url is not a valid URL") from exc
    if parsed.scheme not in ("http", "https") or not host:
        raise TargetRefused("invalid", "url must be an http(s) URL with a host")
    if parsed.user is not None or parsed.password is not None:
        raise TargetRefused("invalid", "url must not carry credentials")
    if port is None or not 0 < port < 65536:
        raise TargetRefused("invalid", "url has no valid port")
    if "%" in host:
        raise TargetRefused("invalid", "url host must not carry a zone id or escapes")
    return Target(parsed, host, port)


async def check_target(egress: EgressResolver, target: Target) -> CheckedTarget:
    """Resolve once and check every answer; the addresses to connect to, or TargetRefused."""
    verdict = await egress.check(target.host, target.port)
    if not verdict.allowed:
        kind: RefusalKind = (
            "unresolvable" if verdict.reason in ("unresolvable", "no_addresses") else "denied"
        )
        raise TargetRefused(kind, f"{target.display}: {verdict.message}", verdict)
    ipv4 = parse_ipv4_any(target.host)
    if ipv4 is not None and str(ipv4) != target.host.removesuffix("."):
        # aiohttp refuses 2130706433 or 127.1 at connect time; say so now, not at delivery.
        raise TargetRefused("invalid", f"write the address as {ipv4}, not {target.host}")
    return CheckedTarget(target, verdict.addresses)


def _same_host(a: str, b: str) -> bool:
    # aiohttp trims repeated trailing dots before it resolves; names are case-insensitive.
    return a.rstrip(".").lower() == b.rstrip(".").lower()


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for one checked target: its checked addresses, never DNS.

    A request for any other host (a redirect would be one; they are off) gets no address.
    """

    def __init__(self, checked: CheckedTarget) -> None:
        self._checked = checked

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        if not _same_host(host, self._checked.target.host):
            raise OSError(f"{host} was not checked for this request")
        results: list[ResolveResult] = []
        for address in self._checked.addresses:
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            raise OSError(f"{host}: no checked address of the requested family")
        return results

    async def close(self) -> None:
        return None


async def post_checked(
    egress: EgressResolver,
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
) -> OutboundResponse:
    """POST to `target` after checking it now; the socket goes to a checked address only."""
    checked = await check_target(egress, target)
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(checked), force_close=True, use_dns_cache=False
    )
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session,
        session.post(target.url, data=body, headers=dict(headers), allow_redirects=False) as reply,
    ):
        return OutboundResponse(reply.status, reply.headers.copy())  # case-insensitive


def outbound_resolver(settings: Any, resolve: ResolveFn = system_resolve) -> EgressResolver:
    """The checker for webhooks and Slack: the proxy's policy, never switched off."""
    legacy = [str(cidr) for cidr in getattr(settings, "webhook_allow_cidrs", None) or ()]
    allow = allow_from_settings(settings, extra_allow=legacy, always_check=True)
    return EgressResolver(allow, resolve)


def as_egress(allowed: EgressResolver | Sequence[Network]) -> EgressResolver:
    """Accept the older wiring too, a bare list of allowed networks (no names, no listeners)."""
    if isinstance(allowed, EgressResolver):
        return allowed
    return EgressResolver(EgressAllow(networks=tuple(allowed)))
