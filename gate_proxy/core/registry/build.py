"""Build a :class:`~.match.Registry` from plain data (as parsed from YAML) and a
``{field path: line}`` map: the registry file's schema, validated here with located
:class:`~.model.RegistryError` messages. No YAML here: the loader parses the file.

Entries inherit from their host entry; ``block`` and ``passthrough`` exclude each other;
duplicate (host, port, path, method) entries are refused. See docs/destinations.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from gate_proxy.core.located import FieldPath, format_field
from gate_proxy.core.registry.match import Registry
from gate_proxy.core.registry.model import (
    DEFAULT_DESTINATION_TEMPLATE,
    DefaultAction,
    DefaultKind,
    PathCase,
    ProxyRoute,
    Route,
)
from gate_proxy.core.registry.values import ValueReader, type_name
from gate_proxy.core.urlnorm import (
    DEFAULT_PORTS,
    normalize_host,
    normalize_path,
    rule_variant,
    split_host_port,
)

__all__ = ["build_registry"]

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
        "protocol",
    }
)
_PATH_ENTRY_KEYS = _ENTRY_KEYS - {"paths"}
_DEFAULT_KEYS = frozenset(
    {
        "action",
        "pass_reads",
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
    "protocol",
)


@dataclass
class _Builder(ValueReader):
    path_case: PathCase = "sensitive"
    routes: list[Route] = field(default_factory=list)
    seen: dict[tuple[str, int | None, str | None, frozenset[str] | None], FieldPath] = field(
        default_factory=dict
    )

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
            elif key == "protocol":
                out[key] = self.protocol(value, p)
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
            if own.get("protocol") == "mcp":
                raise self.error(
                    (*path, "protocol"),
                    "protocol: mcp cannot be combined with passthrough: true (a passthrough "
                    "is not read at all); list read-only tools in the policy's tools.read",
                )
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
                protocol="http" if passthrough else merged.get("protocol", "http"),
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
        own = self.fields({k: v for k, v in raw.items() if k not in ("action", "pass_reads")}, path)
        pass_reads = (
            self.boolean(raw["pass_reads"], (*path, "pass_reads"))
            if ("pass_reads" in raw)
            else False
        )
        action = raw.get("action", "block")
        if action not in ("block", "passthrough", "evaluate"):
            raise self.error(
                (*path, "action"), f"must be 'block', 'passthrough' or 'evaluate', got {action!r}"
            )
        default = self.make_default(action, own, path)
        return replace(default, pass_reads=pass_reads)

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
            raise self.error(path, f"must be a list, got {type_name(value)}")
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
        raise b.error((), f"the registry must be a mapping, got {type_name(data)}")
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
