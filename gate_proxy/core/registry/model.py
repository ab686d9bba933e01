"""The registry's values: entries (Route), answers (Match, HostDecision, RouteTarget),
the default action, reverse-proxy routes, reason codes and the located RegistryError.

Pure data: no matching, no validation (see ``match.py``, ``routes.py`` and ``build.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from gate_proxy.core.located import LocatedError

PathCase = Literal["sensitive", "insensitive"]
EnforceMode = Literal["shadow", "enforce"]
DefaultKind = Literal["block", "passthrough", "evaluate"]
# How the gate reads requests to an entry: plain HTTP, or MCP's JSON-RPC (docs/mcp.md).
Protocol = Literal["http", "mcp"]

REASON_BLOCKED = "destination_blocked"
REASON_UNKNOWN = "destination_unknown"
REASON_INVALID_HOST = "invalid_host"
REASON_INVALID_PATH = "invalid_path"

DEFAULT_DESTINATION_TEMPLATE = "{host}.http"

# --------------------------------------------------------------------------- errors


class RegistryError(LocatedError):
    """A registry file problem, located by file, line (1-based, may be None) and field."""


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class Route:
    """One registry entry after inheritance, as written in the file (normalised).

    ``host`` is the normalised host pattern (``api.stripe.com`` or ``*.zendesk.com``),
    ``path`` the normalised path rule (``None`` = every path; a rule containing ``*`` is a
    glob, anything else a segment-boundary prefix). ``field`` names where it came from.
    """

    host: str
    port: int | None
    methods: frozenset[str] | None
    path: str | None
    destination: str | None
    policy: str | None
    extract_records: str | None = None
    require_approval: bool = False
    block: bool = False
    passthrough: bool = False
    enforce: EnforceMode | None = None
    path_case: PathCase = "sensitive"  # effective: see build._Builder.add_route
    # X-HTTP-Method-Override and friends are refused unless the entry allows them.
    allow_method_override: bool = False
    # Extra request headers an approval is bound to (see addons/decision.py).
    fingerprint_headers: tuple[str, ...] = ()
    protocol: Protocol = "http"
    index: int = 0
    field: str = ""
    line: int | None = None

    @property
    def is_wildcard(self) -> bool:
        return self.host.startswith("*.")


@dataclass(frozen=True, slots=True)
class DefaultAction:
    """What happens to requests no entry matches. ``destination`` may contain ``{host}``."""

    action: DefaultKind = "block"
    # Agents read freely: GET/HEAD/OPTIONS that no entry matches are passed through (no
    # intent; egress checks still apply) whatever `action` says about other methods.
    pass_reads: bool = False
    destination: str = DEFAULT_DESTINATION_TEMPLATE
    policy: str | None = None
    require_approval: bool = False
    enforce: EnforceMode | None = None
    extract_records: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """The registry's answer for one request.

    ``blocked`` requests must not be forwarded (``reason_code`` says why).
    ``passthrough`` requests are forwarded without policy evaluation. Otherwise the
    caller evaluates ``policy`` for ``destination``; ``require_approval`` forces pending.
    ``known`` is False when the answer came from the ``default`` section. ``refusal``
    says why the path was refused (``reason_code`` ``invalid_path``).
    """

    blocked: bool
    passthrough: bool = False
    destination: str | None = None
    policy: str | None = None
    extract_records: str | None = None
    require_approval: bool = False
    enforce: EnforceMode | None = None
    path_case: PathCase = "sensitive"
    reason_code: str | None = None
    known: bool = False
    route: Route | None = None
    host: str = ""
    path: str = ""
    refusal: str | None = None
    allow_method_override: bool = False
    fingerprint_headers: tuple[str, ...] = ()
    protocol: Protocol = "http"


@dataclass(frozen=True, slots=True)
class HostDecision:
    """CONNECT-time verdict for ``host:port`` before any request is seen.

    ``allow`` is False when nothing on this host could ever be forwarded (host-level
    block, or unknown host with ``default: block``): refuse the CONNECT without contacting
    the upstream. ``passthrough_only`` is True when every request to this host would be
    passed through, so a blind tunnel is equivalent to interception.
    """

    allow: bool
    known: bool
    reason_code: str | None = None
    passthrough_only: bool = False
    host: str = ""


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """A reverse-proxy route: requests under ``prefix`` go to ``upstream``."""

    prefix: str
    scheme: str
    host: str
    port: int
    base_path: str
    field: str = ""


class RouteTarget(NamedTuple):
    """Result of :meth:`Registry.match_route`. ``path`` includes ``?query`` if any."""

    scheme: str
    host: str
    port: int
    path: str
