"""The I/O edge of SSRF-safe egress: resolve once, check every answer, hand back what to pin.

``core/egress.py`` decides which addresses are allowed; this module asks DNS (once per
check) and builds the allowlist from settings. The proxy addon (``addons/egress.py``) then
connects to one of the returned addresses instead of letting the socket layer resolve the
name again, so a second, different DNS answer (rebinding) is never used.

The gate's own outbound calls (signed webhooks, Slack) check their targets through this
same class (``gate_proxy/ssrf.py``), so one address table and one ``egress_allow`` govern
every connection the gate opens.

The resolver is injectable (``ResolveFn``) so tests can play a rebinding DNS server
without touching the network.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gate_proxy.core.egress import (
    EgressAllow,
    Listener,
    Verdict,
    check_addresses,
    parse_allow,
    parse_host_address,
)

ResolveFn = Callable[[str, int], Awaitable[Sequence[str]]]

RESOLVE_TIMEOUT_S = 5.0
_LOOPBACK_AND_ANY = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::/128"),
)


async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo), each address once, in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressResolver:
    """Checks one destination: literal addresses directly, names through one resolution."""

    def __init__(
        self,
        allow: EgressAllow,
        resolve: ResolveFn = system_resolve,
        *,
        timeout_s: float = RESOLVE_TIMEOUT_S,
    ) -> None:
        self.allow = allow
        self._resolve = resolve
        self._timeout_s = timeout_s

    @property
    def enabled(self) -> bool:
        return self.allow.enabled

    def check_literal(self, host: str, port: int) -> Verdict | None:
        """The verdict for a host that is an IP address in any spelling; None for a name.

        Synchronous, no DNS: usable where a config value is checked at startup.
        """
        literal = parse_host_address(host)
        if literal is None:
            return None
        # Any spelling (2130706433, 0x7f.1, [::ffff:7f00:1]) becomes the canonical
        # address we check and connect to; nothing re-interprets the text later.
        return check_addresses([literal], self.allow, host=host, port=port)

    async def check(self, host: str, port: int) -> Verdict:
        """The verdict for (host, port); allowed verdicts carry the addresses to connect to."""
        literal = self.check_literal(host, port)
        if literal is not None:
            return literal
        try:
            async with asyncio.timeout(self._timeout_s):
                addresses = list(await self._resolve(host, port))
        except (OSError, UnicodeError, TimeoutError) as exc:
            return Verdict(False, reason="unresolvable", detail=f"{host}: {type(exc).__name__}")
        return check_addresses(addresses, self.allow, host=host, port=port)

    @classmethod
    def from_settings(cls, settings: Any, resolve: ResolveFn = system_resolve) -> "EgressResolver":
        """Allowlist and own listeners from gate settings (egress_allow, egress_check, ports).

        Raises ValueError for an invalid egress_allow entry, so a typo stops startup.
        """
        return cls(allow_from_settings(settings), resolve)


def allow_from_settings(
    settings: Any, *, extra_allow: Sequence[str] = (), always_check: bool = False
) -> EgressAllow:
    """``egress_allow`` (plus `extra_allow`) and the gate's own listeners, from settings.

    `always_check` ignores ``egress_check: false``: the gate's own outbound calls go to
    targets that agents choose at run time, so that switch (meant for proxied traffic the
    operator routed) never turns their check off. Raises ValueError for a bad entry.
    """
    ports = [
        port
        for port in (
            getattr(settings, "port", None),
            getattr(settings, "proxy_port", None),
            getattr(settings, "reverse_port", None),
        )
        if isinstance(port, int) and port > 0
    ]
    listeners = own_listeners(str(getattr(settings, "host", "127.0.0.1")), ports)
    return parse_allow(
        [*(getattr(settings, "egress_allow", None) or ()), *extra_allow],
        listeners=listeners,
        enabled=always_check or bool(getattr(settings, "egress_check", True)),
    )


def own_listeners(host: str, ports: Sequence[int]) -> list[Listener]:
    """The gate's listening sockets as (network, port) pairs.

    A wildcard bind (0.0.0.0, ::) is reachable on loopback, on the unspecified address and
    on every address of this machine; the latter are what the host name resolves to.
    """
    literal = parse_host_address(host)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    if literal is not None and not literal.is_unspecified:
        networks.append(ipaddress.ip_network(literal))
    else:
        if literal is None:
            networks.extend(_resolve_now(host))
        networks.extend(_LOOPBACK_AND_ANY)
        networks.extend(_resolve_now(socket.gethostname()))
    if literal is not None and literal.is_loopback:
        networks.append(ipaddress.ip_network("0.0.0.0/32"))  # 0.0.0.0 connects to loopback
    unique = list(dict.fromkeys(networks))
    return [Listener(network, port) for network in unique for port in ports]


def _resolve_now(host: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_network(str(info[4][0]).split("%", 1)[0]) for info in infos]
