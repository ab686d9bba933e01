"""Decided = delivered: every name a request gives for its target must be the one decided.

Pure: stdlib only, no I/O.

A proxied request names its target in up to six places, and different hops read
different ones: the CONNECT authority (the tunnel), the TLS SNI (what an ingress or CDN
routes on), the absolute-form request target or HTTP/2 ``:authority`` (what RFC 9112
servers prefer), the ``Host`` header (what most servers route on), and forwarding
headers such as ``X-Forwarded-Host`` (what some frameworks trust). The gate decides on
one of them — the *decided authority*: the CONNECT target inside a tunnel, the
absolute-form target on the plain forward proxy, the route target on reverse routes —
and connects there. If any other name disagrees with it (case-insensitively, default
ports normalised), the request is refused before anything is sent: an upstream that
routes on the other name would otherwise receive a request the gate never decided.

We refuse rather than rewrite (docs/security.md): a client that sends two different
names is either broken or probing, and a rewritten request may not be what it meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gate_proxy.core.urlnorm import DEFAULT_PORTS, normalize_host, split_host_port

__all__ = [
    "FORWARDING_HOST_HEADERS",
    "Authority",
    "AuthorityClaims",
    "AuthorityProblem",
    "check_authority",
    "forwarded_hosts",
    "parse_authority",
]

# Headers some frameworks and ingresses read as "the host the client asked for".
FORWARDING_HOST_HEADERS = (
    "x-forwarded-host",
    "x-host",
    "x-original-host",
    "x-forwarded-server",
)


@dataclass(frozen=True, slots=True)
class Authority:
    host: str  # normalize_host(): lower case, no trailing dot, IDNA, IPv6 unbracketed
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_authority(text: str, default_port: int) -> Authority:
    """``host``, ``host:port``, ``[v6]:port`` -> Authority. Raises ValueError if malformed."""
    if not text or text != text.strip() or "@" in text or "/" in text:
        raise ValueError(f"malformed authority {text!r}")
    host, port = split_host_port(text)
    return Authority(normalize_host(host), default_port if port is None else port)


@dataclass(frozen=True, slots=True)
class AuthorityClaims:
    """Every name one request gives for its target, as the client sent them."""

    scheme: str
    decided_host: str
    decided_port: int
    tunnel: tuple[str, int] | None = None  # CONNECT host and port
    sni: str | None = None  # TLS server name from the client's ClientHello
    target: str | None = None  # absolute-form authority (HTTP/1) or :authority (HTTP/2)
    target_label: str = "absolute-form target"
    host_headers: tuple[str, ...] = ()  # every Host header value
    forwarding: tuple[tuple[str, str], ...] = ()  # (header name, host it names)


@dataclass(frozen=True, slots=True)
class AuthorityProblem:
    status: int  # 421 when names disagree, 400 when one is malformed
    reason_code: str
    message: str
    claim: str  # which name was wrong: "sni", "host", ":authority", ...


def _mismatch(claim: str, value: str, decided: Authority) -> AuthorityProblem:
    shown = value if len(value) <= 100 else value[:100] + "..."
    return AuthorityProblem(
        421,
        "authority_mismatch",
        f"the request's {claim} ({shown!r}) differs from the authority the gate decided on "
        f"({decided}); send one target host everywhere",
        claim,
    )


def _malformed(claim: str, value: str) -> AuthorityProblem:
    shown = value if len(value) <= 100 else value[:100] + "..."
    return AuthorityProblem(400, "invalid_authority", f"malformed {claim}: {shown!r}", claim)


def check_authority(claims: AuthorityClaims) -> AuthorityProblem | None:
    """None when every name agrees with the decided authority, else why it is refused."""
    default_port = DEFAULT_PORTS.get(claims.scheme.lower(), 80)
    try:
        decided = Authority(normalize_host(claims.decided_host), claims.decided_port)
    except ValueError:
        return _malformed("target host", claims.decided_host)

    if claims.tunnel is not None:
        host, port = claims.tunnel
        try:
            tunnel = Authority(normalize_host(host), port)
        except ValueError:
            return _malformed("CONNECT authority", host)
        if tunnel != decided:
            return _mismatch("CONNECT authority", str(tunnel), decided)

    if claims.sni is not None and claims.sni != "":
        try:
            sni = normalize_host(claims.sni)
        except ValueError:
            return _malformed("TLS SNI", claims.sni)
        if sni != decided.host:
            return _mismatch("TLS SNI", claims.sni, decided)

    if claims.target:
        problem = _compare(claims.target_label, claims.target, default_port, decided)
        if problem is not None:
            return problem

    if len(claims.host_headers) > 1:
        return AuthorityProblem(
            400, "invalid_authority", "more than one Host header (RFC 9112 §3.2)", "host"
        )
    for value in claims.host_headers:
        problem = _compare("Host header", value, default_port, decided)
        if problem is not None:
            return problem

    for name, value in claims.forwarding:
        try:
            host, port = split_host_port(value)
            named = normalize_host(host)
        except ValueError:
            return _malformed(name, value)
        # Forwarding headers often leave the port out: compare it only when given.
        if named != decided.host or (port is not None and port != decided.port):
            return _mismatch(name, value, decided)
    return None


def _compare(
    claim: str, value: str, default_port: int, decided: Authority
) -> AuthorityProblem | None:
    try:
        named = parse_authority(value, default_port)
    except ValueError:
        return _malformed(claim, value)
    return None if named == decided else _mismatch(claim, value, decided)


def forwarded_hosts(values: Sequence[str]) -> list[str]:
    """The ``host=`` parameters of RFC 7239 ``Forwarded`` header values."""
    hosts: list[str] = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                key, sep, raw = pair.strip().partition("=")
                if sep and key.strip().lower() == "host":
                    hosts.append(raw.strip().strip('"'))
    return hosts
