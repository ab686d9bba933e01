"""Reverse-proxy routes: which upstream a request under a ``routes:`` prefix goes to.

The ``routes:`` section is validated in ``build.py``; :class:`~.match.Registry` keeps the
routes longest prefix first and delegates :meth:`~.match.Registry.match_route` here.
"""

from __future__ import annotations

from collections.abc import Iterable

from gate_proxy.core.registry.model import ProxyRoute, RouteTarget
from gate_proxy.core.urlnorm import normalize_path

__all__ = ["longest_prefix_first", "match_route"]


def longest_prefix_first(proxy_routes: Iterable[ProxyRoute]) -> tuple[ProxyRoute, ...]:
    """The order :func:`match_route` expects: the first route that matches is the longest."""
    return tuple(sorted(proxy_routes, key=lambda r: len(r.prefix), reverse=True))


def match_route(proxy_routes: tuple[ProxyRoute, ...], path: str) -> RouteTarget | None:
    """Longest matching ``prefix`` (segment boundary) wins; ``proxy_routes`` must be
    ordered by :func:`longest_prefix_first`.

    The path is normalised first, so ``/stripe/../admin`` cannot escape a route. The
    returned path is the upstream base path plus the rest of the request path, with
    ``;params`` and ``?query`` kept.
    """
    np = normalize_path(path)
    p = np.path
    for route in proxy_routes:
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
