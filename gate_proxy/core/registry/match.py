"""Registry matching: host + port + method + path -> :class:`Match`, and the CONNECT-time
:class:`HostDecision`. The precedence rules are summarised in the package docstring
(``gate_proxy/core/registry/__init__.py``) and documented in docs/destinations.md.

Entries are compiled once per registry (:class:`_Compiled`) and indexed by host; the
candidates for one ``(host, port)`` are cached, sorted most specific first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gate_proxy.core.registry.model import (
    REASON_BLOCKED,
    REASON_INVALID_HOST,
    REASON_INVALID_PATH,
    REASON_UNKNOWN,
    DefaultAction,
    HostDecision,
    Match,
    PathCase,
    ProxyRoute,
    Route,
    RouteTarget,
)
from gate_proxy.core.registry.routes import (
    RouteIndex,
    longest_prefix_first,
    match_route,
    path_prefixes,
)
from gate_proxy.core.urlnorm import normalize_host, normalize_path, path_variants, rule_variant

__all__ = ["READ_METHODS", "Registry"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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


@dataclass(frozen=True, slots=True)
class _HostFacts:
    """What the CONNECT-time decision needs of a host's rules, computed once per host."""

    blocks_every_path: bool  # a block without method or path limits
    any_allow: bool
    all_passthrough: bool
    covers_every_path: bool  # a rule without method or path limits


class _Candidates:
    """The rules of one (host, port), most specific first, indexed by literal path.

    A literal path rule (``/v1/refunds``: no ``*``) covers a path exactly when its prefix
    is one of :func:`path_prefixes` of it, so those rules sit in dicts keyed by prefix and
    a request looks up its own prefixes: as many steps as its path has segments, however
    many rules the host has. Globs and host-wide rules are scanned (they are few). Among
    the rules found, the lowest ``rank`` (position in ``items``) wins, exactly as a scan
    of ``items`` in order would.
    """

    __slots__ = (
        "allow_literal",
        "allow_scanned",
        "any_block",
        "block_literal",
        "block_scanned",
        "host_facts",
        "items",
    )

    def __init__(self, items: list[_Compiled]) -> None:
        items.sort(key=lambda c: c.key, reverse=True)
        self.items = tuple(items)
        self.any_block = any(c.block for c in items)
        self.host_facts = _HostFacts(
            blocks_every_path=any(c.block and c.covers_all and c.methods is None for c in items),
            any_allow=any(not c.block for c in items),
            all_passthrough=all(c.route.passthrough for c in items),
            covers_every_path=any(c.covers_all and c.methods is None for c in items),
        )
        # Allow rules: literal ones by (case mode, prefix); the rest scanned in order.
        self.allow_literal: dict[bool, dict[str, list[tuple[int, _Compiled]]]] = {}
        self.allow_scanned: list[tuple[int, _Compiled]] = []
        # Block rules: literal ones by (case mode, prefix) for the path's variants.
        self.block_literal: dict[bool, dict[str, list[tuple[int, _Compiled]]]] = {}
        self.block_scanned: list[tuple[int, _Compiled]] = []
        for rank, c in enumerate(self.items):
            literal = c.prefix is not None and not (c.block and c.covers_all)
            if c.block:
                if literal:
                    index = self.block_literal.setdefault(c.insensitive, {})
                    index.setdefault(c.prefix, []).append((rank, c))  # type: ignore[arg-type]
                else:
                    self.block_scanned.append((rank, c))
            elif literal:
                index = self.allow_literal.setdefault(c.insensitive, {})
                index.setdefault(c.prefix, []).append((rank, c))  # type: ignore[arg-type]
            else:
                self.allow_scanned.append((rank, c))

    def first_block(self, method: str, path: str) -> _Compiled | None:
        """The most specific block rule that holds for any form of ``path`` (or None)."""
        best: tuple[int, _Compiled] | None = None
        forms: dict[bool, tuple[str, ...]] = {}
        for rank, c in self.block_scanned:
            if c.blocks(method, path, forms):
                best = (rank, c)
                break  # scanned in rank order
        for insensitive, index in self.block_literal.items():
            variants = forms.get(insensitive)
            if variants is None:
                variants = forms[insensitive] = path_variants(path, insensitive)
            for variant in variants:
                for prefix in path_prefixes(variant):
                    for rank, c in index.get(prefix, ()):
                        if best is not None and rank >= best[0]:
                            break  # each list is in rank order
                        if c.methods is None or method in c.methods:
                            best = (rank, c)
                            break
        return None if best is None else best[1]

    def first_allow(self, method: str, path: str, lower: str) -> _Compiled | None:
        """The most specific allow rule for the one normalised path (or None)."""
        best: tuple[int, _Compiled] | None = None
        for insensitive, index in self.allow_literal.items():
            for prefix in path_prefixes(lower if insensitive else path):
                for rank, c in index.get(prefix, ()):
                    if best is not None and rank >= best[0]:
                        break
                    if c.methods is None or method in c.methods:
                        best = (rank, c)
                        break
        for rank, c in self.allow_scanned:
            if best is not None and rank >= best[0]:
                break  # scanned in rank order: nothing later can win
            if c.matches(method, path, lower):
                best = (rank, c)
                break
        return None if best is None else best[1]


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
        self.proxy_routes: tuple[ProxyRoute, ...] = longest_prefix_first(proxy_routes)
        self._route_index = RouteIndex(self.proxy_routes)
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
        # A block is sticky: any block rule that holds wins over every allow rule.
        block = candidates.first_block(m, norm) if candidates.any_block else None
        if block is not None:
            return self._blocked(block.route, h, norm)
        best = candidates.first_allow(m, p, lower)
        if best is None:
            return self._default_match(h, norm, m)
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
            protocol=r.protocol,
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
            protocol=route.protocol,
        )

    def _default_match(self, host: str, path: str, method: str) -> Match:
        d = self.default
        if d.pass_reads and method in READ_METHODS:
            # A read with a body or a method override is refused later (not_a_read).
            return Match(
                blocked=False, passthrough=True, host=host, path=path, path_case=self.path_case
            )
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
        candidates = self._candidates(h, port)
        items = candidates.items
        # A tunnel can carry reads when unknown reads pass: its writes are refused inside.
        default_allows = self.default.action != "block" or self.default.pass_reads
        if not items:
            return HostDecision(
                allow=default_allows,
                known=False,
                reason_code=None if default_allows else REASON_UNKNOWN,
                passthrough_only=self.default.action == "passthrough",
                host=h,
            )
        facts = candidates.host_facts
        if facts.blocks_every_path:
            return HostDecision(allow=False, known=True, reason_code=REASON_BLOCKED, host=h)
        allow = default_allows or facts.any_allow
        passthrough_only = facts.all_passthrough and (
            self.default.action == "passthrough" or facts.covers_every_path
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
        return match_route(self.proxy_routes, path, self._route_index)
