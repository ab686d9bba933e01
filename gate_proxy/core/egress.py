"""SSRF-safe egress: which addresses the gate may connect to on an agent's behalf. PURE.

Every address a destination resolves to is classified here; one denied address denies the
destination (fail closed: an attacker who controls DNS chooses which answer is used). The
I/O edge (``gate_proxy/egress_resolver.py``) resolves once and makes the proxy connect to
an address this module allowed, so a DNS answer that changes later cannot be used. The
gate's own outbound calls (signed webhooks, Slack) use the same table and allowlist
through ``gate_proxy/ssrf.py``.

Denied unless allowlisted (``egress_allow`` in gate.yaml):

    IPv4  unspecified / "this network" 0.0.0.0/8, loopback 127/8, RFC 1918, CGNAT 100.64/10,
          link-local 169.254/16 (169.254.169.254 is cloud metadata), multicast 224/4,
          broadcast, reserved 240/4, IETF 192.0.0/24, documentation and benchmarking ranges
    IPv6  unspecified, loopback, unique-local fc00::/7, link-local fe80::/10, site-local,
          multicast, documentation, discard-only, anything outside global unicast 2000::/3
    IPv4 embedded in IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, translated
          ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96 and local-use 64:ff9b:1::/48, 6to4 2002::/16,
          Teredo 2001::/32): the IPv4 address is extracted and classified. NAT64 and mapped
          addresses of public IPv4 hosts are allowed; the compatible, translated, local-use
          NAT64, 6to4 and Teredo forms are always denied.
    the gate's own listeners (address and port), even when allowlisted: no request loops.

Python's ``ipaddress.is_global`` is not used: it calls ``::127.0.0.1``, ``fec0::1``,
``ff02::1``, ``224.0.0.1``, ``64:ff9b::7f00:1``, ``64:ff9b::a9fe:a9fe`` and
``::ffff:0:a9fe:a9fe`` global. The tables below are explicit.

Host literals are read the way the C library's ``inet_aton`` reads them, because that is
what the connecting socket would do: ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and
``127.1`` are all 127.0.0.1.
"""

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EgressAllow",
    "Listener",
    "Verdict",
    "check_addresses",
    "classify",
    "host_allowed",
    "parse_allow",
    "parse_host_address",
    "parse_ipv4_any",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

METADATA_V4: Final = ipaddress.IPv4Address("169.254.169.254")

# Order matters: the first match names the reason (broadcast before reserved 240/4).
_V4_DENY: Final[tuple[tuple[ipaddress.IPv4Network, str], ...]] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "reserved"),  # "this network": Linux connects 0.x to localhost
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "cgnat"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link_local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),  # IETF protocol assignments (incl. NAT64 discovery)
    (_V4("192.0.2.0/24"), "reserved"),  # TEST-NET-1
    (_V4("192.88.99.0/24"), "reserved"),  # deprecated 6to4 relay anycast
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved"),  # benchmarking
    (_V4("198.51.100.0/24"), "reserved"),  # TEST-NET-2
    (_V4("203.0.113.0/24"), "reserved"),  # TEST-NET-3
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_V6_UNSPECIFIED: Final = _V6("::/128")
_V6_LOOPBACK: Final = _V6("::1/128")
_V6_MAPPED: Final = _V6("::ffff:0:0/96")
_V6_COMPATIBLE: Final = _V6("::/96")
_V6_TRANSLATED: Final = _V6("::ffff:0:0:0/96")  # SIIT (RFC 2765), not the mapped ::ffff:0:0/96
_V6_NAT64: Final = _V6("64:ff9b::/96")
_V6_NAT64_LOCAL: Final = _V6("64:ff9b:1::/48")  # RFC 8215: the operator's own NAT64
_V6_6TO4: Final = _V6("2002::/16")
_V6_TEREDO: Final = _V6("2001::/32")
_V6_GLOBAL_UNICAST: Final = _V6("2000::/3")
_V6_DENY: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = (
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("2001::/23"), "reserved"),  # IETF protocol assignments (Teredo handled before)
    (_V6("2001:db8::/32"), "reserved"),  # documentation
    (_V6("3fff::/20"), "reserved"),  # documentation (RFC 9637)
    (_V6("5f00::/16"), "reserved"),  # SRv6 SIDs
    (_V6("fc00::/7"), "unique_local"),
    (_V6("fe80::/10"), "link_local"),
    (_V6("fec0::/10"), "site_local"),
    (_V6("ff00::/8"), "multicast"),
)


@dataclass(frozen=True, slots=True)
class Listener:
    """One of the gate's own sockets: connecting to it would loop a request back in."""

    network: Network  # the listen address; 0.0.0.0 / :: listeners are expanded by the caller
    port: int


@dataclass(frozen=True, slots=True)
class EgressAllow:
    """The operator's allowlist and what else the check needs to know."""

    networks: tuple[Network, ...] = ()
    hosts: tuple[str, ...] = ()  # exact names, or "*.suffix" for any sub-domain
    listeners: tuple[Listener, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one destination. `addresses` are the checked ones, in connect order."""

    allowed: bool
    addresses: tuple[str, ...] = ()
    reason: str | None = None  # e.g. "loopback", "own_listener", "no_addresses"
    address: str | None = None  # the address that was denied
    detail: str = ""

    @property
    def message(self) -> str:
        if self.allowed:
            return "allowed"
        where = f" to {self.address}" if self.address else ""
        extra = f" ({self.detail})" if self.detail else ""
        return f"egress{where} denied: {self.reason}{extra}"


@dataclass(frozen=True, slots=True)
class _Class:
    reason: str
    detail: str = ""


# --------------------------------------------------------------------------------------
# Host literals
# --------------------------------------------------------------------------------------

_HEX_PART = re.compile(r"0[xX][0-9a-fA-F]*")
_OCT_PART = re.compile(r"0[0-7]*")
_DEC_PART = re.compile(r"[1-9][0-9]*")


def _inet_aton_part(part: str) -> int | None:
    if _HEX_PART.fullmatch(part):
        digits = part[2:]
        # glibc rejects a bare "0x"; a hex part needs at least one digit.
        return int(digits, 16) if digits else None
    if _OCT_PART.fullmatch(part):
        return int(part, 8)
    if _DEC_PART.fullmatch(part):
        return int(part)
    return None


def parse_ipv4_any(text: str) -> ipaddress.IPv4Address | None:
    """Read an IPv4 literal like inet_aton: 1-4 parts, each decimal, octal (0…) or hex (0x…).

    The last part fills the remaining bytes: ``127.1`` is 127.0.0.1, ``2130706433`` is
    127.0.0.1, ``0x7f.1`` is 127.0.0.1. A trailing dot is accepted too (stricter than
    libc, which would hand ``127.0.0.1.`` to DNS). Returns None for anything else.
    """
    if not text or len(text) > 64 or not text.isascii():
        return None
    parts = text.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _inet_aton_part(part)
        if value is None:
            return None
        values.append(value)
    *leading, last = values
    if any(v > 0xFF for v in leading):
        return None
    last_bits = 8 * (4 - len(leading))
    if last >= 1 << last_bits:
        return None
    number = 0
    for value in leading:
        number = (number << 8) | value
    number = (number << last_bits) | last
    return ipaddress.IPv4Address(number)


def parse_host_address(host: str) -> IPAddress | None:
    """The IP address a host string denotes literally, in any spelling; None for names."""
    candidate = host.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    if ":" in candidate:
        try:
            return ipaddress.IPv6Address(candidate)
        except ValueError:
            return None
    return parse_ipv4_any(candidate)


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


def _classify_v4(ip: ipaddress.IPv4Address) -> _Class | None:
    for network, reason in _V4_DENY:
        if ip in network:
            if ip == METADATA_V4:
                return _Class(reason, "cloud metadata endpoint")
            return _Class(reason)
    return None


def _embedded(ip: ipaddress.IPv6Address) -> tuple[str, tuple[ipaddress.IPv4Address, ...]] | None:
    """(mechanism, embedded IPv4 addresses) for the IPv6 forms that carry an IPv4 address."""
    number = int(ip)
    if ip in _V6_MAPPED:
        return "ipv4_mapped", (ipaddress.IPv4Address(number & 0xFFFFFFFF),)
    if ip in _V6_COMPATIBLE:  # :: and ::1 are classified before this is reached
        return "ipv4_compatible", (ipaddress.IPv4Address(number & 0xFFFFFFFF),)
    if ip in _V6_TRANSLATED:
        return "ipv4_translated", (ipaddress.IPv4Address(number & 0xFFFFFFFF),)
    if ip in _V6_NAT64:
        return "nat64", (ipaddress.IPv4Address(number & 0xFFFFFFFF),)
    if ip in _V6_NAT64_LOCAL:
        # Read with the /96 layout, the common one; other prefix lengths place the IPv4
        # address elsewhere, which does not matter: this form is always denied.
        return "nat64_local", (ipaddress.IPv4Address(number & 0xFFFFFFFF),)
    if ip in _V6_6TO4:
        return "6to4", (ipaddress.IPv4Address((number >> 80) & 0xFFFFFFFF),)
    if ip in _V6_TEREDO:
        server = ipaddress.IPv4Address((number >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~number & 0xFFFFFFFF)  # stored inverted
        return "teredo", (server, client)
    return None


# Transition forms nobody's API is reached through any more, or a translator inside the
# operator's network (local-use NAT64): denied even when the embedded IPv4 address is
# public, because the path to it is out of the operator's hands or leads inside.
_ALWAYS_DENIED_EMBEDDINGS: Final[dict[str, str]] = {
    "ipv4_compatible": "deprecated_transition",
    "ipv4_translated": "deprecated_transition",
    "6to4": "deprecated_transition",
    "teredo": "deprecated_transition",
    "nat64_local": "local_nat64",
}


def _classify_v6(ip: ipaddress.IPv6Address) -> _Class | None:
    if ip in _V6_UNSPECIFIED:
        return _Class("unspecified")
    if ip in _V6_LOOPBACK:
        return _Class("loopback")
    embedded = _embedded(ip)
    if embedded is not None:
        mechanism, inner = embedded
        for v4 in inner:
            found = _classify_v4(v4)
            if found is not None:
                detail = f"{mechanism} embeds {v4}: {found.reason}"
                if found.detail:
                    detail += f", {found.detail}"
                return _Class(found.reason, detail)
        always_denied = _ALWAYS_DENIED_EMBEDDINGS.get(mechanism)
        if always_denied is not None:
            return _Class(always_denied, f"{mechanism} embeds {inner[-1]}")
        return None  # mapped / NAT64 of a public IPv4 host
    for network, reason in _V6_DENY:
        if ip in network:
            return _Class(reason)
    if ip not in _V6_GLOBAL_UNICAST:
        return _Class("reserved")
    return None


def classify(address: IPAddress | str) -> str | None:
    """Why connecting to `address` is denied by default ("loopback", ...), or None."""
    found = _classify(address)
    return None if found is None else found.reason


def _classify(address: IPAddress | str) -> _Class | None:
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    if ip.scope_id:
        ip = ipaddress.IPv6Address(int(ip))  # fe80::1%eth0 is still fe80::1
    return _classify_v6(ip)


# --------------------------------------------------------------------------------------
# The allowlist and the verdict
# --------------------------------------------------------------------------------------

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def parse_allow(
    entries: Iterable[str],
    *,
    listeners: Sequence[Listener] = (),
    enabled: bool = True,
) -> EgressAllow:
    """Build the allowlist from config entries: CIDRs, single addresses or host names.

    Host names are exact (``db.internal``) or a wildcard for sub-domains (``*.corp.example``,
    which does not match ``corp.example`` itself). Raises ValueError naming a bad entry.
    """
    networks: list[Network] = []
    hosts: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"egress_allow: {entry!r} is not a CIDR, address or host name")
        text = entry.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        if any(ch in text for ch in "/:") or parse_ipv4_any(text) is not None:
            raise ValueError(f"egress_allow: {text!r} is not a valid CIDR or address")
        name = _normal_host(text)
        labels = name.removeprefix("*.").split(".")
        if not all(_HOST_LABEL.fullmatch(label) for label in labels) or "*" in name[2:]:
            raise ValueError(f"egress_allow: {text!r} is not a valid host name")
        hosts.append(name)
    return EgressAllow(tuple(networks), tuple(hosts), tuple(listeners), enabled)


def host_allowed(host: str, allow: EgressAllow) -> bool:
    """True if the operator allowlisted this host name (exactly or by *.suffix)."""
    if not allow.hosts:
        return False
    name = _normal_host(host)
    for pattern in allow.hosts:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
                return True
        elif name == pattern:
            return True
    return False


def _own_listener(ip: IPAddress, port: int | None, allow: EgressAllow) -> bool:
    if port is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(port == lst.port and ip in lst.network for lst in allow.listeners)


def check_addresses(
    addresses: Iterable[str | IPAddress],
    allow: EgressAllow,
    *,
    host: str | None = None,
    port: int | None = None,
) -> Verdict:
    """Allow only if every address is allowed. No addresses at all is a denial.

    Allowed addresses come back IPv4 first (the connect order), each once.
    """
    seen: dict[str, IPAddress] = {}
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(raw) if isinstance(raw, str) else raw
        except ValueError:
            return Verdict(False, reason="invalid_address", address=str(raw))
        seen.setdefault(str(ip), ip)
    if not seen:
        return Verdict(False, reason="no_addresses", detail="the host did not resolve")
    by_name = host is not None and host_allowed(host, allow)
    for text, ip in seen.items():
        if _own_listener(ip, port, allow):
            return Verdict(
                False, reason="own_listener", address=text, detail=f"the gate listens on {port}"
            )
        if not allow.enabled or by_name:
            continue
        found = _classify(ip)
        if found is None:
            continue
        check = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if any(ip in net or (check is not None and check in net) for net in allow.networks):
            continue
        return Verdict(False, reason=found.reason, address=text, detail=found.detail)
    ordered = sorted(seen.values(), key=lambda ip: ip.version)  # stable: IPv4 first
    return Verdict(True, addresses=tuple(str(ip) for ip in ordered))
