"""Destination registry: maps host + method + path to a logical destination and a policy.

Pure: stdlib only, no I/O. A loader reads the YAML file and hands plain data (plus line
numbers) to :func:`build_registry`; everything else lives in this package:

* ``model.py``: Route, Match, HostDecision, DefaultAction, ProxyRoute, RouteTarget, the
  reason codes and RegistryError.
* ``match.py``: the :class:`Registry` and its matching (the rules below).
* ``routes.py``: reverse-proxy routes (:meth:`Registry.match_route`).
* ``build.py`` and ``values.py``: :func:`build_registry`, validating plain data with
  located errors.

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

from gate_proxy.core.located import FieldPath, format_field
from gate_proxy.core.registry.build import build_registry
from gate_proxy.core.registry.match import Registry
from gate_proxy.core.registry.model import (
    REASON_BLOCKED,
    REASON_INVALID_HOST,
    REASON_INVALID_PATH,
    REASON_UNKNOWN,
    DefaultAction,
    HostDecision,
    Match,
    ProxyRoute,
    RegistryError,
    Route,
    RouteTarget,
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
    "format_field",
]
