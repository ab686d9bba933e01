"""Reverse-proxy routes: which upstream a request under a ``routes:`` prefix goes to.

The ``routes:`` section is validated in ``build.py``; :class:`~.match.Registry` keeps the
routes longest prefix first and delegates :meth:`~.match.Registry.match_route` here.
"""

from __future__ import annotations

from collections.abc import Iterable

from gate_proxy.core.registry.model import ProxyRoute, RouteTarget
from gate_proxy.core.urlnorm import normalize_path

__all__ = ["RouteIndex", "longest_prefix_first", "match_route", "path_prefixes"]


def longest_prefix_first(proxy_routes: Iterable[ProxyRoute]) -> tuple[ProxyRoute, ...]:
    """The order :func:`match_route` expects: the first route that matches is the longest."""
    return tuple(sorted(proxy_routes, key=lambda r: len(r.prefix), reverse=True))


def path_prefixes(path: str) -> list[str]:
    """Every ``prefix`` that covers ``path`` at a segment boundary, longest first: the path
    itself, then the path up to each ``/`` ("/a/b/c" -> "/a/b/c", "/a/b", "/a").

    ``path == prefix or path.startswith(prefix + "/")`` holds exactly for these, so a
    lookup of each in a dict of prefixes finds what a scan of every prefix would, in as
    many steps as the path has segments, however many prefixes there are.
    """
    prefixes = [path]
    end = path.rfind("/")
    while end > 0:
        prefixes.append(path[:end])
        end = path.rfind("/", 0, end)
    return prefixes


class RouteIndex:
    """The routes by prefix: a route lookup costs the path's depth, not the route count."""

    __slots__ = ("_by_prefix", "_root")

    def __init__(self, proxy_routes: tuple[ProxyRoute, ...]) -> None:
        self._by_prefix: dict[str, ProxyRoute] = {}
        self._root: ProxyRoute | None = None
        for route in proxy_routes:  # longest first; a repeated prefix: the first one wins
            if route.prefix == "/":
                self._root = self._root or route
            else:
                self._by_prefix.setdefault(route.prefix, route)

    def longest(self, path: str) -> ProxyRoute | None:
        by_prefix = self._by_prefix
        if by_prefix:
            for prefix in path_prefixes(path):
                route = by_prefix.get(prefix)
                if route is not None:
                    return route
        return self._root


def match_route(
    proxy_routes: tuple[ProxyRoute, ...], path: str, index: RouteIndex | None = None
) -> RouteTarget | None:
    """Longest matching ``prefix`` (segment boundary) wins; ``proxy_routes`` must be
    ordered by :func:`longest_prefix_first` (``index``, built from them, finds the same
    route without a scan).

    The path is normalised first, so ``/stripe/../admin`` cannot escape a route. The
    returned path is the upstream base path plus the rest of the request path, with
    ``;params`` and ``?query`` kept.
    """
    np = normalize_path(path)
    route = (index or RouteIndex(proxy_routes)).longest(np.path)
    if route is None:
        return None
    prefix = route.prefix
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
