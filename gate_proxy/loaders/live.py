"""The gate's live configuration: policies and the registry, watched and reloaded, with
the metric labels that follow them (``/metrics`` only names configured destinations)."""

from collections.abc import Callable, Mapping
from pathlib import Path

from gate_proxy.core.policy import Policy
from gate_proxy.core.registry import Registry
from gate_proxy.loaders.policy_file import load_policy_dir
from gate_proxy.loaders.registry_file import load_registry
from gate_proxy.loaders.reload import Reloadable
from gate_proxy.loaders.snapshot import LiveConfig
from gate_proxy.metrics import GateMetrics
from gate_proxy.settings import Settings


class StartupError(RuntimeError):
    """Serve cannot start: a bad config, a port in use, a broken data dir."""


def policy_files(directory: Path) -> Callable[[], list[Path]]:
    return lambda: sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_live_config(settings: Settings, metrics: GateMetrics) -> LiveConfig:
    """Load policies and the registry (StartupError if either is broken) and watch them.

    Only a load that succeeded changes the metric labels: each load function sets its
    part's labels, and a failure keeps the last good part and counts in
    gate_config_reload_failures_total.
    """

    def load_policies() -> dict[str, Policy]:
        loaded = load_policy_dir(settings.policy_dir)
        metrics.destinations.set_part("policies", policy_destination_names(loaded))
        return loaded

    def load_destinations() -> Registry:
        loaded = load_registry_or_block(settings)
        metrics.destinations.set_part("registry", registry_destination_names(loaded))
        return loaded

    try:
        policies = Reloadable("policies", load_policies, policy_files(settings.policy_dir))
    except Exception as exc:
        raise StartupError(f"policies: {exc}") from exc
    registry_path = settings.config_dir / settings.registry_file
    try:
        registry = Reloadable("destinations", load_destinations, lambda: [registry_path])
    except Exception as exc:
        raise StartupError(f"destinations: {exc}") from exc
    return LiveConfig(
        registry=registry, policies=policies, on_failure=metrics.config_reload_failures.inc
    )


def policy_destination_names(policies: Mapping[str, Policy]) -> set[str]:
    """The destinations the policies name: allowed values of the `destination` metric label."""
    return {name for policy in policies.values() for name in policy.destinations or ()}


def registry_destination_names(registry: Registry) -> set[str]:
    """The destinations the registry names. A `{host}` template would make one name per host
    an agent asks for, so templated names are left out (exported as `other`)."""
    names = {route.destination for route in registry.routes if route.destination}
    names.add(registry.default.destination)
    return {name for name in names if "{host}" not in name}


def load_registry_or_block(settings: Settings) -> Registry:
    path = settings.config_dir / settings.registry_file
    if not path.exists():
        # No registry at all: every destination is unknown, and unknown is blocked.
        return Registry.empty_default_block()
    return load_registry(path)
