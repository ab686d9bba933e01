"""Destination registry: maps host + method + path to a logical destination and a policy.

Pure: stdlib only, no I/O. ``gate_proxy.registry_loader`` reads the YAML file and hands
plain data (plus line numbers) to :func:`build_registry`; everything else lives here.

The file format is a superset of Zehrava Gate's ``config/destinations.yaml``: a mapping
from host to entry, entries may carry ``paths:`` overrides, and ``__default__`` decides
unknown hosts. Gate Proxy adds ``*.`` wildcards and ports in host keys, ``method``, glob
paths, ``path_case``, ``enforce``, a ``default:`` section and reverse-proxy ``routes:``.
See docs/destinations.md for the format and the precedence rules.

Matching, in short:

* The request host is normalised (lower case, trailing dot, IDNA, canonical IPs) and the
  path goes through :func:`gate_proxy.core.urlnorm.normalize_path`. A path upstreams could
  read as different resources (``NormalizedPath.refusal``) is refused: ``invalid_path``.
* Every entry whose host pattern, port, method and path match is a candidate. Allow rules
  (destination or passthrough) compare the one normalised path, case-sensitively unless
  ``path_case: insensitive``. Block rules compare every form an upstream may route the
  path as (:func:`gate_proxy.core.urlnorm.path_variants`: case, Unicode and accent folds,
  decoded ``%2F``/``%5C``, trailing dots, ``;params``...), case-insensitively unless the
  entry or its host entry says ``path_case: sensitive``.
* ``block`` is sticky: if *any* candidate blocks, the request is blocked, whatever a more
  specific entry says. A host-level ``block: true`` therefore blocks every path.
* Otherwise the most specific candidate wins, compared in this order: host (exact over
  wildcard, longer wildcard suffix over shorter, explicit port over any port), then path
  (more literal segments, then more wildcard-constrained segments, then globs without
  ``**``, then longer literal text; any path rule over a host-level entry), then method
  (an explicit method list over any method, shorter list first). Ties go to the entry
  that comes first in the file.
* No candidate: the ``default`` action applies (``block`` unless configured otherwise).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from gate_proxy.core.located import FieldPath, LocatedError, format_field
from gate_proxy.core.urlnorm import (
    DEFAULT_PORTS,
    normalize_host,
    normalize_path,
    path_variants,
    rule_variant,
    split_host_port,
)

__all__ = [
    "REASON_BLOCKED",
    "REASON_INVALID_HOST",
    "REASON_INVALID_PATH",
    "REASON_UNKNOWN",
    "DefaultAction",
    "FieldPath",
    "HostDecision",
    "Match",
    "ProxyRoute",
    "Registry",
    "RegistryError",
    "Route",
    "RouteTarget",
    "build_registry",
    "extract_record_count",
    "format_field",
]

PathCase = Literal["sensitive", "insensitive"]
EnforceMode = Literal["shadow", "enforce"]
DefaultKind = Literal["block", "passthrough", "evaluate"]

REASON_BLOCKED = "destination_blocked"
REASON_UNKNOWN = "destination_unknown"
REASON_INVALID_HOST = "invalid_host"
REASON_INVALID_PATH = "invalid_path"

DEFAULT_DESTINATION_TEMPLATE = "{host}.http"

# Keys are a path of mapping keys / list indices from the document root.


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
    path_case: PathCase = "sensitive"  # effective: see _Builder.add_route
    # X-HTTP-Method-Override and friends are refused unless the entry allows them.
    allow_method_override: bool = False
    # Extra request headers an approval is bound to (see addons/decision.py).
    fingerprint_headers: tuple[str, ...] = ()
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


# --------------------------------------------------------------------------- record counts


def extract_record_count(json_obj: Any, spec: str | None) -> int | None:
    """Count records in a parsed JSON body with a dot path (Zehrava ``extract_records``).

    ``inputs.length`` -> length of the list at ``inputs``; ``records`` -> the integer at
    ``records``; ``data.0.items.length`` indexes lists with numeric segments. ``length`` on a
    list is its length (on an object it reads the ``length`` key). Returns None when the
    path does not resolve to a non-negative integer; never raises.
    """
    if not spec:
        return None
    value = json_obj
    for part in spec.split("."):
        if isinstance(value, list):
            if part == "length":
                value = len(value)
            elif part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        elif isinstance(value, dict):
            if part not in value:
                return None
            value = value[part]
        else:
            return None
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    return None


# --------------------------------------------------------------------------- compiled matching


def _path_rank(spec: str | None) -> tuple[int, ...]:
    if spec is None:
        return (-1,)
    segments = [s for s in spec.split("/") if s]
    literal = sum(1 for s in segments if "*" not in s)
    partial = sum(1 for s in segments if "*" in s and s not in ("*", "**"))
    single = sum(1 for s in segments if s == "*")
    no_double = 0 if "**" in segments else 1
    literal_chars = len(spec.replace("*", ""))
    return (literal, partial, single, no_double, literal_chars)


def _compile_glob(spec: str) -> re.Pattern[str]:
    parts: list[str] = []
    segments = spec.split("/")[1:]
    for segment in segments:
        if segment == "**":
            parts.append("(?:/[^/]+)*")
        elif segment == "*":
            parts.append("/[^/]+")
        else:
            parts.append("/" + "[^/]*".join(re.escape(p) for p in segment.split("*")))
    pattern = "".join(parts)
    if all(s == "**" for s in segments):
        pattern = f"(?:{pattern}|/)"
    return re.compile(pattern)


class _Compiled:
    __slots__ = (
        "block",
        "covers_all",
        "glob",
        "insensitive",
        "key",
        "methods",
        "prefix",
        "prefix_slash",
        "route",
    )

    def __init__(self, route: Route) -> None:
        self.route = route
        self.block = route.block
        self.methods = route.methods
        self.insensitive = route.path_case == "insensitive"
        spec = route.path
        if spec is not None and self.block:
            # A block is compared with the folded forms of path_variants: fold it alike.
            spec = rule_variant(spec, self.insensitive)
        elif spec is not None and self.insensitive:
            spec = spec.lower()
        self.glob: re.Pattern[str] | None = None
        self.prefix: str | None = None
        self.prefix_slash = ""
        if spec is not None and "*" in spec:
            self.glob = _compile_glob(spec)
        elif spec is not None and spec != "/":
            self.prefix = spec
            self.prefix_slash = spec + "/"
        # A rule that matches every path of the host (no path, "/" or "/**").
        self.covers_all = spec is None or spec == "/" or all(s == "**" for s in spec.split("/")[1:])
        labels = route.host.count(".") + 1
        host_rank = (
            (0, labels - 1, route.port is not None)
            if route.is_wildcard
            else (1, labels, route.port is not None)
        )
        method_rank = (1, -len(route.methods)) if route.methods else (0, 0)
        self.key = (host_rank, _path_rank(route.path), method_rank, -route.index)

    def matches(self, method: str, path: str, lower: str) -> bool:
        """An allow rule: the one normalised path (``lower`` when case-insensitive)."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_matches(lower if self.insensitive else path)

    def path_matches(self, p: str) -> bool:
        if self.prefix is not None:
            return p == self.prefix or p.startswith(self.prefix_slash)
        if self.glob is not None:
            return self.glob.fullmatch(p) is not None
        return True

    def blocks(self, method: str, path: str, forms: dict[bool, tuple[str, ...]]) -> bool:
        """A block rule: does it hold for *any* form an upstream may route ``path`` as?

        ``forms`` caches :func:`path_variants` per case mode for this one request.
        """
        if self.methods is not None and method not in self.methods:
            return False
        if self.covers_all:
            return True
        variants = forms.get(self.insensitive)
        if variants is None:
            variants = forms[self.insensitive] = path_variants(path, self.insensitive)
        return any(self.path_matches(v) for v in variants)


class _Candidates:
    __slots__ = ("any_block", "items")

    def __init__(self, items: list[_Compiled]) -> None:
        items.sort(key=lambda c: c.key, reverse=True)
        self.items = tuple(items)
        self.any_block = any(c.block for c in items)


# --------------------------------------------------------------------------- registry


_CACHE_LIMIT = 4096


class Registry:
    """An immutable, indexed destination registry. Build with :func:`build_registry`."""

    def __init__(
        self,
        routes: Iterable[Route] = (),
        default: DefaultAction | None = None,
        proxy_routes: Iterable[ProxyRoute] = (),
        *,
        path_case: PathCase = "sensitive",
        source: str = "<memory>",
    ) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        self.default = default or DefaultAction()
        self.proxy_routes: tuple[ProxyRoute, ...] = tuple(
            sorted(proxy_routes, key=lambda r: len(r.prefix), reverse=True)
        )
        self.path_case: PathCase = path_case
        self.source = source
        self._exact: dict[str, list[_Compiled]] = {}
        self._wildcard: dict[str, list[_Compiled]] = {}
        for route in self.routes:
            compiled = _Compiled(route)
            if route.is_wildcard:
                self._wildcard.setdefault(route.host[2:], []).append(compiled)
            else:
                self._exact.setdefault(route.host, []).append(compiled)
        self._cache: dict[tuple[str, int | None], _Candidates] = {}

    @classmethod
    def empty_default_block(cls) -> Registry:
        """A registry with no entries that blocks everything (the fail-closed fallback)."""
        return cls(source="<empty>")

    def __len__(self) -> int:
        return len(self.routes)

    def __repr__(self) -> str:
        return (
            f"Registry(source={self.source!r}, routes={len(self.routes)}, "
            f"default={self.default.action!r}, proxy_routes={len(self.proxy_routes)})"
        )

    # ------------------------------------------------------------------ lookup

    def _candidates(self, host: str, port: int | None) -> _Candidates:
        key = (host, port)
        found = self._cache.get(key)
        if found is not None:
            return found
        items = [c for c in self._exact.get(host, ()) if c.route.port in (None, port)]
        if self._wildcard and ":" not in host:
            rest = host
            while "." in rest:
                rest = rest.split(".", 1)[1]
                items.extend(
                    c for c in self._wildcard.get(rest, ()) if c.route.port in (None, port)
                )
        found = _Candidates(items)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def match(self, host: str, port: int | None, method: str, path: str) -> Match:
        """Decide one request. ``path`` is the raw request path (query allowed).

        ``port`` is the request's port (pass the scheme default, not None, for normal
        traffic: entries with an explicit port only match that port).
        """
        try:
            h = normalize_host(host)
        except ValueError:
            return Match(blocked=True, reason_code=REASON_INVALID_HOST, host=host, path=path)
        normalized = normalize_path(path)
        norm = normalized.path
        if normalized.refusal is not None:
            # No rule can be trusted to mean what the upstream will do with this path.
            return Match(
                blocked=True,
                reason_code=REASON_INVALID_PATH,
                host=h,
                path=norm,
                path_case=self.path_case,
                refusal=normalized.refusal,
            )
        p = norm.rstrip("/") or "/"  # one trailing slash does not change the resource
        lower = p.lower()
        m = method.upper()

        candidates = self._candidates(h, port)
        best: _Compiled | None = None
        forms: dict[bool, tuple[str, ...]] = {}
        for c in candidates.items:
            if c.block:
                if c.blocks(m, norm, forms):
                    return self._blocked(c.route, h, norm)
                continue
            if not c.matches(m, p, lower):
                continue
            if best is None:
                best = c
                if not candidates.any_block:
                    break
        if best is None:
            return self._default_match(h, norm)
        r = best.route
        return Match(
            blocked=False,
            passthrough=r.passthrough,
            destination=r.destination.replace("{host}", h) if r.destination else None,
            policy=r.policy,
            extract_records=r.extract_records,
            require_approval=r.require_approval,
            enforce=r.enforce,
            path_case=r.path_case,
            known=True,
            route=r,
            host=h,
            path=norm,
            allow_method_override=r.allow_method_override,
            fingerprint_headers=r.fingerprint_headers,
        )

    def _blocked(self, route: Route, host: str, path: str) -> Match:
        return Match(
            blocked=True,
            destination=route.destination.replace("{host}", host) if route.destination else None,
            policy=route.policy,
            enforce=route.enforce,
            path_case=route.path_case,
            reason_code=REASON_BLOCKED,
            known=True,
            route=route,
            host=host,
            path=path,
        )

    def _default_match(self, host: str, path: str) -> Match:
        d = self.default
        if d.action == "block":
            return Match(
                blocked=True,
                reason_code=REASON_UNKNOWN,
                host=host,
                path=path,
                path_case=self.path_case,
            )
        if d.action == "passthrough":
            return Match(
                blocked=False, passthrough=True, host=host, path=path, path_case=self.path_case
            )
        return Match(
            blocked=False,
            destination=d.destination.replace("{host}", host),
            policy=d.policy,
            extract_records=d.extract_records,
            require_approval=d.require_approval,
            enforce=d.enforce,
            path_case=self.path_case,
            host=host,
            path=path,
        )

    def host_decision(self, host: str, port: int | None) -> HostDecision:
        """CONNECT-time decision: could anything on ``host:port`` be allowed?"""
        try:
            h = normalize_host(host)
        except ValueError:
            return HostDecision(
                allow=False, known=False, reason_code=REASON_INVALID_HOST, host=host
            )
        items = self._candidates(h, port).items
        default_allows = self.default.action != "block"
        if not items:
            return HostDecision(
                allow=default_allows,
                known=False,
                reason_code=None if default_allows else REASON_UNKNOWN,
                passthrough_only=self.default.action == "passthrough",
                host=h,
            )
        if any(c.block and c.covers_all and c.methods is None for c in items):
            return HostDecision(allow=False, known=True, reason_code=REASON_BLOCKED, host=h)
        allow = default_allows or any(not c.block for c in items)
        passthrough_only = all(c.route.passthrough for c in items) and (
            self.default.action == "passthrough"
            or any(c.covers_all and c.methods is None for c in items)
        )
        return HostDecision(
            allow=allow,
            known=True,
            reason_code=None if allow else REASON_BLOCKED,
            passthrough_only=passthrough_only,
            host=h,
        )

    def match_route(self, path: str) -> RouteTarget | None:
        """Reverse-proxy routing: longest matching ``prefix`` (segment boundary) wins.

        The path is normalised first, so ``/stripe/../admin`` cannot escape a route. The
        returned path is the upstream base path plus the rest of the request path, with
        ``;params`` and ``?query`` kept.
        """
        np = normalize_path(path)
        p = np.path
        for route in self.proxy_routes:
            prefix = route.prefix
            if prefix != "/" and p != prefix and not p.startswith(prefix + "/"):
                continue
            # path and path_with_params have the same segments; drop the prefix's ones.
            depth = 0 if prefix == "/" else prefix.count("/")
            rest_segments = np.path_with_params.split("/")[1 + depth :]
            if rest_segments:
                target = route.base_path.rstrip("/") + "/" + "/".join(rest_segments)
            else:
                target = route.base_path
            if np.query:
                target += "?" + np.query
            return RouteTarget(route.scheme, route.host, route.port, target)
        return None


# --------------------------------------------------------------------------- building


_ENTRY_KEYS = frozenset(
    {
        "destination",
        "policy",
        "extract_records",
        "require_approval",
        "block",
        "passthrough",
        "enforce",
        "path_case",
        "method",
        "paths",
        "allow_method_override",
        "fingerprint_headers",
    }
)
_PATH_ENTRY_KEYS = _ENTRY_KEYS - {"paths"}
_DEFAULT_KEYS = frozenset(
    {
        "action",
        "destination",
        "policy",
        "require_approval",
        "enforce",
        "extract_records",
    }
)
_ZEHRAVA_DEFAULT_KEYS = frozenset(
    {
        "block",
        "passthrough",
        "destination",
        "policy",
        "require_approval",
        "enforce",
        "extract_records",
    }
)
_ROUTE_KEYS = frozenset({"prefix", "upstream", "target"})
_RESERVED_TOP = frozenset({"path_case", "default", "__default__", "routes"})
_INHERITED = (
    "destination",
    "policy",
    "extract_records",
    "require_approval",
    "enforce",
    "path_case",
    "allow_method_override",
    "fingerprint_headers",
)
_METHOD_RE = re.compile(r"[A-Z][A-Z0-9_-]*")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EXTRACT_RE = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")


@dataclass
class _Builder:
    source: str
    lines: Mapping[FieldPath, int]
    path_case: PathCase = "sensitive"
    routes: list[Route] = field(default_factory=list)
    seen: dict[tuple[str, int | None, str | None, frozenset[str] | None], FieldPath] = field(
        default_factory=dict
    )

    # -- helpers -------------------------------------------------------------

    def line_of(self, path: FieldPath) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: FieldPath, message: str) -> RegistryError:
        return RegistryError(self.source, self.line_of(path), format_field(path), message)

    def mapping(self, value: Any, path: FieldPath, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, got {_type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.error(path, f"keys must be strings, got {key!r}")
            if key not in allowed:
                raise self.error(
                    (*path, key), f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
                )
        return value

    def string(self, value: Any, path: FieldPath) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, f"must be a non-empty string, got {_type_name(value)}")
        return value.strip()

    def boolean(self, value: Any, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {_type_name(value)}")
        return value

    def require_approval(self, value: Any, path: FieldPath) -> bool:
        # Zehrava writes "always" / "never"; "never" only means "not forced" here.
        if isinstance(value, bool):
            return value
        if value in ("always", "never"):
            return value == "always"
        raise self.error(path, f"must be true, false, 'always' or 'never', got {value!r}")

    def enforce(self, value: Any, path: FieldPath) -> EnforceMode:
        if value not in ("shadow", "enforce"):
            raise self.error(path, f"must be 'shadow' or 'enforce', got {value!r}")
        return value  # type: ignore[no-any-return]

    def case(self, value: Any, path: FieldPath) -> PathCase:
        if value not in ("sensitive", "insensitive"):
            raise self.error(path, f"must be 'sensitive' or 'insensitive', got {value!r}")
        return value  # type: ignore[no-any-return]

    def header_names(self, value: Any, path: FieldPath) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(path, "must be a non-empty list of header names")
        names: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not _HEADER_NAME_RE.fullmatch(item):
                raise self.error((*path, i), f"invalid header name {item!r}")
            names.append(item.lower())
        return tuple(dict.fromkeys(names))

    def extract(self, value: Any, path: FieldPath) -> str:
        text = self.string(value, path)
        if not _EXTRACT_RE.fullmatch(text):
            raise self.error(path, f"must be a dot path like 'inputs.length', got {text!r}")
        return text

    def methods(self, value: Any, path: FieldPath) -> frozenset[str] | None:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.error(path, "must be a method name or a non-empty list of them")
        out: set[str] = set()
        for i, item in enumerate(items):
            item_path = path if isinstance(value, str) else (*path, i)
            if not isinstance(item, str):
                raise self.error(item_path, f"method must be a string, got {_type_name(item)}")
            name = item.strip().upper()
            if name in ("*", "ANY"):
                return None
            if not _METHOD_RE.fullmatch(name):
                raise self.error(item_path, f"invalid HTTP method {item!r}")
            out.add(name)
        return frozenset(out)

    # -- entries -------------------------------------------------------------

    def fields(self, raw: dict[str, Any], path: FieldPath) -> dict[str, Any]:
        """Validate the value of every entry key present in ``raw``."""
        out: dict[str, Any] = {}
        for key, value in raw.items():
            p = (*path, key)
            if key in ("destination", "policy"):
                out[key] = self.string(value, p)
            elif key == "extract_records":
                out[key] = self.extract(value, p)
            elif key == "require_approval":
                out[key] = self.require_approval(value, p)
            elif key in ("block", "passthrough", "allow_method_override"):
                out[key] = self.boolean(value, p)
            elif key == "fingerprint_headers":
                out[key] = self.header_names(value, p)
            elif key == "enforce":
                out[key] = self.enforce(value, p)
            elif key == "path_case":
                out[key] = self.case(value, p)
            elif key == "method":
                out[key] = self.methods(value, p)
        return out

    def add_route(
        self,
        host: str,
        port: int | None,
        spec: str | None,
        own: dict[str, Any],
        parent: dict[str, Any],
        path: FieldPath,
    ) -> None:
        merged = {k: parent[k] for k in _INHERITED if k in parent}
        merged.update({k: own[k] for k in _INHERITED if k in own})
        block = bool(own.get("block")) or bool(parent.get("block"))
        passthrough = bool(own.get("passthrough"))
        if passthrough and block:
            raise self.error(
                (*path, "passthrough"), "passthrough is not allowed on a blocked entry (block wins)"
            )
        if passthrough:
            for key in ("policy", "extract_records"):
                if key in own:
                    raise self.error((*path, key), f"{key} has no effect with passthrough: true")
            if own.get("require_approval"):
                raise self.error(
                    (*path, "require_approval"),
                    "require_approval cannot be combined with passthrough: true",
                )
        elif not block:
            for key in ("destination", "policy"):
                if key not in merged:
                    raise self.error(
                        path, f"{key!r} is required (or set passthrough: true or block: true)"
                    )
        methods = own.get("method")
        # Blocks ignore case unless path_case: sensitive is written on the entry or its
        # host entry: a top-level path_case (or the default) only shapes allow rules.
        explicit_case: PathCase | None = merged.get("path_case")
        path_case: PathCase = explicit_case or ("insensitive" if block else self.path_case)
        if block and spec not in (None, "/") and rule_variant(spec) == "/":
            raise self.error(
                path,
                f"block rule {spec!r} reads as '/' once trailing dots and spaces are "
                "ignored; write '/' (or block: true on the host) if every path is meant",
            )
        dup_key = (host, port, spec, methods)
        if dup_key in self.seen:
            raise self.error(
                path,
                f"duplicate entry: same host, port, path and method as "
                f"{format_field(self.seen[dup_key])}",
            )
        self.seen[dup_key] = path
        self.routes.append(
            Route(
                host=host,
                port=port,
                methods=methods,
                path=spec,
                destination=merged.get("destination"),
                policy=None if passthrough else merged.get("policy"),
                extract_records=None if passthrough else merged.get("extract_records"),
                require_approval=False if passthrough else bool(merged.get("require_approval")),
                block=block,
                passthrough=passthrough,
                enforce=merged.get("enforce"),
                path_case=path_case,
                allow_method_override=bool(merged.get("allow_method_override")),
                fingerprint_headers=tuple(merged.get("fingerprint_headers", ())),
                index=len(self.routes),
                field=format_field(path),
                line=self.line_of(path),
            )
        )

    def path_spec(self, raw: Any, path: FieldPath) -> str:
        if not isinstance(raw, str) or not raw.startswith("/"):
            raise self.error(path, f"path must start with '/', got {raw!r}")
        if any(c in raw for c in "?#;"):
            raise self.error(path, "path rule must not contain '?', '#' or ';'")
        segments = raw.split("/")[1:]
        if any("**" in s and s != "**" for s in segments):
            raise self.error(path, "'**' must be a whole path segment")
        normalized = normalize_path(raw)
        if normalized.refusal is not None:
            raise self.error(path, f"ambiguous path rule: {normalized.refusal}")
        return normalized.path.rstrip("/") or "/"

    def host_entry(self, key: str, value: Any) -> None:
        path: FieldPath = (key,)
        try:
            host_text, port = split_host_port(key)
            wildcard = host_text.startswith("*.")
            host = normalize_host(host_text[2:] if wildcard else host_text)
        except ValueError as exc:
            raise self.error(path, f"invalid host key: {exc}") from None
        if wildcard and (":" in host or _is_ipv4(host)):
            raise self.error(path, "wildcards are not allowed on IP addresses")
        if wildcard:
            host = "*." + host
        if value is None:
            raise self.error(path, "entry is empty")
        raw = self.mapping(value, path, _ENTRY_KEYS)
        own = self.fields(raw, path)
        paths = raw.get("paths")
        if paths is not None and (not isinstance(paths, dict) or not paths):
            raise self.error((*path, "paths"), "must be a non-empty mapping of path -> entry")
        if "destination" in own or own.get("passthrough") or own.get("block"):
            self.add_route(host, port, None, own, {}, path)
        elif paths is None:
            raise self.error(
                path,
                "entry has no effect: set destination and policy, "
                "passthrough: true, block: true, or paths",
            )
        for spec_raw, spec_value in (paths or {}).items():
            p = (*path, "paths", spec_raw)
            spec = self.path_spec(spec_raw, p)
            items = spec_value if isinstance(spec_value, list) else [spec_value]
            if not items:
                raise self.error(p, "must be an entry or a non-empty list of entries")
            for i, item in enumerate(items):
                ip = (*p, i) if isinstance(spec_value, list) else p
                if item is None:
                    raise self.error(ip, "entry is empty")
                item_raw = self.mapping(item, ip, _PATH_ENTRY_KEYS)
                self.add_route(host, port, spec, self.fields(item_raw, ip), own, ip)

    def default_section(self, value: Any) -> DefaultAction:
        path: FieldPath = ("default",)
        raw = self.mapping(value, path, _DEFAULT_KEYS)
        own = self.fields({k: v for k, v in raw.items() if k != "action"}, path)
        action = raw.get("action", "block")
        if action not in ("block", "passthrough", "evaluate"):
            raise self.error(
                (*path, "action"), f"must be 'block', 'passthrough' or 'evaluate', got {action!r}"
            )
        return self.make_default(action, own, path)

    def zehrava_default(self, value: Any) -> DefaultAction:
        path: FieldPath = ("__default__",)
        raw = self.mapping(value, path, _ZEHRAVA_DEFAULT_KEYS)
        own = self.fields(raw, path)
        if own.get("block") and own.get("passthrough"):
            raise self.error(path, "block and passthrough cannot both be true")
        action: DefaultKind = (
            "block" if own.get("block") else "passthrough" if own.get("passthrough") else "evaluate"
        )
        return self.make_default(action, own, path)

    def make_default(
        self, action: DefaultKind, own: dict[str, Any], path: FieldPath
    ) -> DefaultAction:
        if action != "evaluate":
            return DefaultAction(action=action)
        if "policy" not in own:
            raise self.error(path, "'policy' is required when unknown hosts are evaluated")
        return DefaultAction(
            action="evaluate",
            destination=own.get("destination", DEFAULT_DESTINATION_TEMPLATE),
            policy=own["policy"],
            require_approval=bool(own.get("require_approval")),
            enforce=own.get("enforce"),
            extract_records=own.get("extract_records"),
        )

    def proxy_routes(self, value: Any) -> list[ProxyRoute]:
        path: FieldPath = ("routes",)
        if not isinstance(value, list):
            raise self.error(path, f"must be a list, got {_type_name(value)}")
        out: list[ProxyRoute] = []
        seen: dict[str, FieldPath] = {}
        for i, item in enumerate(value):
            ip = (*path, i)
            raw = self.mapping(item, ip, _ROUTE_KEYS)
            if "prefix" not in raw:
                raise self.error(ip, "'prefix' is required")
            if ("upstream" in raw) == ("target" in raw):
                raise self.error(ip, "exactly one of 'upstream' or 'target' is required")
            up_key = "upstream" if "upstream" in raw else "target"
            prefix_raw = self.string(raw["prefix"], (*ip, "prefix"))
            if not prefix_raw.startswith("/") or any(c in prefix_raw for c in "?#;*"):
                raise self.error(
                    (*ip, "prefix"), "must start with '/' and contain no '?', '#', ';' or '*'"
                )
            normalized_prefix = normalize_path(prefix_raw)
            if normalized_prefix.refusal is not None:
                raise self.error((*ip, "prefix"), f"ambiguous prefix: {normalized_prefix.refusal}")
            prefix = normalized_prefix.path.rstrip("/") or "/"
            if prefix in seen:
                raise self.error(
                    (*ip, "prefix"), f"duplicate prefix (also at {format_field(seen[prefix])})"
                )
            seen[prefix] = ip
            upstream = self.string(raw[up_key], (*ip, up_key))
            up_path = (*ip, up_key)
            try:
                parts = urlsplit(upstream)
                port = parts.port
            except ValueError as exc:
                raise self.error(up_path, f"invalid URL: {exc}") from None
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https"):
                raise self.error(up_path, "must be an http:// or https:// URL")
            if not parts.hostname or parts.username or parts.password:
                raise self.error(up_path, "must name a host and carry no credentials")
            if parts.query or parts.fragment:
                raise self.error(up_path, "must not have a query or fragment")
            try:
                host = normalize_host(parts.hostname)
            except ValueError as exc:
                raise self.error(up_path, str(exc)) from None
            out.append(
                ProxyRoute(
                    prefix=prefix,
                    scheme=scheme,
                    host=host,
                    port=port if port is not None else DEFAULT_PORTS[scheme],
                    base_path=normalize_path(parts.path or "/").path,
                    field=format_field(ip),
                )
            )
        return out


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def build_registry(
    data: Any,
    *,
    source: str = "<memory>",
    lines: Mapping[FieldPath, int] | None = None,
) -> Registry:
    """Validate plain data (as parsed from YAML) and build a :class:`Registry`.

    ``lines`` maps a field path (tuple of keys / indices) to its 1-based line, used in
    :class:`RegistryError` messages. ``None``/empty data gives the default-block registry.
    """
    b = _Builder(source=source, lines=lines or {})
    if data is None:
        return Registry(source=source)
    if not isinstance(data, dict):
        raise b.error((), f"the registry must be a mapping, got {_type_name(data)}")
    for key in data:
        if not isinstance(key, str):
            raise b.error((), f"top-level keys must be strings (host names), got {key!r}")
    if "path_case" in data:
        b.path_case = b.case(data["path_case"], ("path_case",))
    if "default" in data and "__default__" in data:
        raise b.error(("__default__",), "use either 'default' or '__default__', not both")
    default = DefaultAction()
    if "default" in data:
        default = b.default_section(data["default"])
    elif "__default__" in data:
        default = b.zehrava_default(data["__default__"])
    proxy_routes = b.proxy_routes(data["routes"]) if "routes" in data else []
    for key, value in data.items():
        if key not in _RESERVED_TOP:
            b.host_entry(key, value)
    return Registry(b.routes, default, proxy_routes, path_case=b.path_case, source=source)
