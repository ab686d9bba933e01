"""The deployment files in deploy/: what can be checked on this machine, offline.

* compose.yaml: the Compose Specification's JSON schema (vendored in deploy/schemas/), and
  the isolation it promises (the agent's only peer is the gate), checked by a small model.
* kubernetes/: every manifest against Kubernetes' own OpenAPI schemas (kubernetes-validate,
  strict: unknown fields fail), the kustomize build (kubectl kustomize), and what the
  NetworkPolicies mean, evaluated by a small model of their semantics.
* gate-proxy.service: `systemd-analyze verify` and `systemd-analyze security`.
* Dockerfile: its promises, read from the file (building it needs a registry image; see
  docs/deployment.md for the podman build that was run).
* make-secrets.sh, the example ConfigMap and the mounted-key interface: the real gate
  loads what they produce.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from gate_process import REPO, running_gate

DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
MADE_BY_MAKE_SECRETS = {
    "admin.key",
    "signing.key",
    "mitmproxy-ca.pem",
    "mitmproxy-ca-cert.pem",
    "database.env",
}
KEY_FILE_VARIABLES = ("GATE_ADMIN_KEY_FILE", "GATE_SIGNING_KEY_FILE", "GATE_CA_FILE")
PROXY_PORTS = {4001, 4002}


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every Kubernetes object under deploy/kubernetes/."""
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found.extend((path.name, doc) for doc in load_yaml_documents(path))
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


# == compose ===================================================================================


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_file_matches_the_compose_specification_schema() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    # The schema says draft-07 (as "https://json-schema.org/draft-07/schema", a spelling
    # jsonschema does not look up), so name the validator.
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose())
    ]
    assert errors == []


def test_the_compose_schema_check_rejects_a_misspelt_key() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    document = compose()
    document["services"]["agent"]["netwroks"] = ["egress"]
    assert not jsonschema.Draft7Validator(schema).is_valid(document)


def service_networks(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks", [])
    return set(networks) if isinstance(networks, list) else set(networks.keys())


def published_ports(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of each published port (short syntax)."""
    result = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        host = parts[0] if len(parts) == 3 else "0.0.0.0"
        result.append((host, int(parts[-1].split("/")[0])))
    return result


def compose_isolation_problems(document: dict[str, Any]) -> list[str]:
    """What would let the example agent reach anything but the gate, or expose the gate."""
    services: dict[str, dict[str, Any]] = document["services"]
    networks: dict[str, dict[str, Any]] = document.get("networks") or {}
    gates = {name for name in services if name.startswith("gate-")}
    problems: list[str] = []
    agent = services["agent"]
    for key in ("network_mode", "ports", "cap_add", "privileged", "extra_hosts"):
        if key in agent:
            problems.append(f"agent: has {key}")
    for network in service_networks(agent):
        if not (networks.get(network) or {}).get("internal"):
            problems.append(f"agent: network {network} is not internal")
        members = {name for name, s in services.items() if network in service_networks(s)}
        if members - gates - {"agent"}:
            problems.append(f"agent: shares {network} with {sorted(members - gates - {'agent'})}")
        if not gates <= members:
            problems.append(f"agent: not every gate is on {network}")
    if not service_networks(agent):
        problems.append("agent: on the default network")
    for name in sorted(gates):
        gate = services[name]
        if not any(not (networks.get(n) or {}).get("internal") for n in service_networks(gate)):
            problems.append(f"{name}: no network out to the upstreams")
        for host, port in published_ports(gate):
            if port in PROXY_PORTS:
                problems.append(f"{name}: publishes proxy port {port}")
            if host != "127.0.0.1":
                problems.append(f"{name}: publishes {port} on {host}")
    database = services["postgres"]
    for network in service_networks(database):
        if not (networks.get(network) or {}).get("internal"):
            problems.append(f"postgres: network {network} is not internal")
        if "agent" in {n for n, s in services.items() if network in service_networks(s)}:
            problems.append(f"postgres: shares {network} with the agent")
    return problems


def test_compose_agent_can_reach_only_the_gate() -> None:
    assert compose_isolation_problems(compose()) == []


def _mutate(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(compose())
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("services.agent.networks", ["agents", "egress"], "network egress is not internal"),
        ("networks.agents", {"internal": False}, "network agents is not internal"),
        ("services.agent.network_mode", "host", "has network_mode"),
        ("services.agent.networks", None, "on the default network"),
        ("services.gate-1.ports", ["127.0.0.1:4001:4001"], "publishes proxy port 4001"),
        ("services.gate-2.ports", ["4000:4000"], "publishes 4000 on 0.0.0.0"),
        ("services.postgres.networks", ["backend", "agents"], "shares agents with"),
        ("services.gate-2.networks", {"agents": {}, "backend": {}}, "no network out"),
    ],
)
def test_the_compose_isolation_check_finds_each_hole(path: str, value: Any, problem: str) -> None:
    document = _mutate(path, value)
    if value is None:
        del document["services"]["agent"]["networks"]
    problems = compose_isolation_problems(document)
    assert any(problem in p for p in problems), problems


def test_compose_gates_read_keys_from_secrets_made_by_make_secrets() -> None:
    document = compose()
    secret_files = {name: spec["file"] for name, spec in document["secrets"].items()}
    for name in ("gate-1", "gate-2"):
        gate = document["services"][name]
        mounted = {f"/run/secrets/{secret}" for secret in gate["secrets"]}
        for variable in KEY_FILE_VARIABLES:
            assert gate["environment"][variable] in mounted, (name, variable)
        assert gate["env_file"] == "./secrets/database.env"
        assert "--host" in gate["command"] and "0.0.0.0" in gate["command"]
        assert gate["read_only"] is True and gate["cap_drop"] == ["ALL"]
    referenced = {Path(f).name for f in secret_files.values()}
    referenced |= {Path(c["file"]).name for c in document["configs"].values()}
    referenced.add("database.env")
    assert referenced <= MADE_BY_MAKE_SECRETS


# == Kubernetes ================================================================================


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schema(version: str) -> None:
    failures = []
    for file_name, document in manifests():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{file_name} {document['kind']}: {exc.message}")
    assert failures == []


def test_the_kubernetes_schema_check_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(manifest("Deployment", "gate-proxy"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_required_kinds_are_all_there() -> None:
    kinds = {document["kind"] for _, document in manifests()}
    assert kinds >= {
        "Namespace",
        "Deployment",
        "Service",
        "Secret",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }


def gate_pod_spec() -> dict[str, Any]:
    return manifest("Deployment", "gate-proxy")["spec"]["template"]["spec"]


def test_deployment_runs_replicas_non_root_with_health_probes() -> None:
    deployment = manifest("Deployment", "gate-proxy")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = gate_pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"api": 4000, "proxy": 4001, "reverse": 4002}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "api"}, probe
    args = container["args"]
    assert args[0] == "serve" and args[args.index("--host") + 1] == "0.0.0.0"


def test_deployment_takes_every_key_from_the_mounted_secret() -> None:
    pod = gate_pod_spec()
    [container] = pod["containers"]
    environment = {e["name"]: e for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    key_mount = mounts["keys"]
    assert key_mount["readOnly"] is True
    assert volumes["keys"]["secret"]["secretName"] == "gate-keys"
    generated = kustomization()["secretGenerator"]
    [keys] = [g for g in generated if g["name"] == "gate-keys"]
    files = {Path(f).name for f in keys["files"]}
    for variable in KEY_FILE_VARIABLES:
        path = Path(environment[variable]["value"])
        assert path.parent == Path(key_mount["mountPath"]), variable
        assert path.name in files, variable
    database = environment["GATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert database == {"name": "gate-database", "key": "url"}
    assert not any("value" in e and "postgres" in e["value"] for e in container["env"])


def test_service_and_budget_select_the_gate_pods() -> None:
    labels = manifest("Deployment", "gate-proxy")["spec"]["template"]["metadata"]["labels"]
    service = manifest("Service", "gate-proxy")
    assert service["spec"]["type"] == "ClusterIP"  # never exposed outside the cluster
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"] for p in gate_pod_spec()["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    budget = manifest("PodDisruptionBudget", "gate-proxy")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    replicas = manifest("Deployment", "gate-proxy")["spec"]["replicas"]
    assert 1 <= budget["spec"]["minAvailable"] < replicas


def test_secret_manifest_holds_placeholders_only() -> None:
    for name in ("gate-keys", "gate-database"):
        secret = manifest("Secret", name)
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            assert value.startswith("REPLACE-ME"), (name, key)


def test_no_key_material_in_any_deploy_file() -> None:
    private = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*\n\s*[A-Za-z0-9+/=]{16}")
    api_key = re.compile(r"gate_sk_[A-Za-z0-9_-]{20,}")
    for path in DEPLOY.rglob("*"):
        if not path.is_file() or "secrets" in path.relative_to(DEPLOY).parts:
            continue  # deploy/secrets and kubernetes/secrets are generated and git-ignored
        text = path.read_text(errors="replace")
        assert not private.search(text), path
        assert not api_key.search(text), path


def test_generated_secret_directories_are_git_ignored() -> None:
    for directory in (DEPLOY / "secrets", KUBERNETES / "secrets"):
        assert (directory / ".gitignore").read_text().splitlines()[1:] == ["*", "!.gitignore"]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())


def test_kustomization_lists_every_manifest_but_the_examples() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    # secret.yaml documents the generated Secrets' shape; agent-example.yaml needs objects
    # made from local files first (its header says how).
    assert listed == on_disk - {"secret.yaml", "agent-example.yaml"}
    generated = {
        Path(f.split("=")[-1]).name for g in kustomization()["secretGenerator"] for f in g["files"]
    }
    assert generated <= MADE_BY_MAKE_SECRETS | {"database-url"}


def test_kustomize_build_is_valid_and_wires_the_generated_secrets(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: it is part of this machine image (package kubectl)"
    work = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, work, ignore=shutil.ignore_patterns("secrets"))
    run_make_secrets(work / "secrets")
    (work / "secrets" / "database-url").write_text("postgresql://gate:pw@db.invalid:5432/gate")
    built = subprocess.run(
        [kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    documents = [d for d in yaml.safe_load_all(built.stdout) if d]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
    secrets = {d["metadata"]["name"] for d in documents if d["kind"] == "Secret"}
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    key_volume = next(v for v in pod["volumes"] if v["name"] == "keys")
    assert key_volume["secret"]["secretName"] in secrets
    assert key_volume["secret"]["secretName"].startswith("gate-keys-")  # content-hashed
    [container] = pod["containers"]
    database = next(e for e in container["env"] if e["name"] == "GATE_DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"]["name"] in secrets


# -- what the NetworkPolicies mean --------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def all_namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod, or an address outside the cluster (pod None)."""

    name: str
    address: str
    pod: Pod | None = None


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise NotImplementedError(f"selector model: {sorted(selector)}")  # fail loudly
    return selector.get("matchLabels", {}).items() <= labels.items()


def peer_matches(peer: dict[str, Any], policy_namespace: str, endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(endpoint.address)
        excluded = any(address in ipaddress.ip_network(c) for c in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not excluded
    if endpoint.pod is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], endpoint.pod.all_namespace_labels):
            return False
    elif endpoint.pod.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), endpoint.pod.labels)


def port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(
        p.get("protocol", "TCP") == protocol and p.get("port") == port for p in ports
    )


def allowed(
    policies: list[dict[str, Any]],
    source: Endpoint,
    destination: Endpoint,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Kubernetes NetworkPolicy semantics for pod selectors, namespace selectors, ipBlocks
    and numbered ports: a connection needs the source's egress and the destination's
    ingress to allow it; a pod no policy of that direction selects is not restricted."""
    return _direction_allows(policies, "Egress", source, destination, port, protocol) and (
        _direction_allows(policies, "Ingress", destination, source, port, protocol)
    )


def _direction_allows(
    policies: list[dict[str, Any]],
    direction: str,
    subject: Endpoint,
    peer: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    if subject.pod is None:
        return True  # outside the cluster: not governed by NetworkPolicy
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.pod.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], subject.pod.labels)
    ]
    if not selecting:
        return True
    return any(
        port_matches(rule, port, protocol)
        and (
            peers_key not in rule
            or any(peer_matches(x, policy["metadata"]["namespace"], peer) for x in rule[peers_key])
        )
        for policy in selecting
        for rule in policy["spec"].get(rules_key, [])
    )


GATE_LABELS = {"app.kubernetes.io/name": "gate-proxy"}
AGENT = Endpoint("agent", "10.0.1.5", Pod("agents", {"app": "crm-agent"}))
UNLABELLED_AGENT = Endpoint("unlabelled-agent", "10.0.1.6", Pod("agents"))
GATE = Endpoint("gate", "10.0.2.5", Pod("gate-system", GATE_LABELS))
POSTGRES = Endpoint("postgres", "10.0.2.9", Pod("gate-system", {"app": "postgres"}))
DNS = Endpoint("kube-dns", "10.0.0.10", Pod("kube-system", {"k8s-app": "kube-dns"}))
METRICS_SERVER = Endpoint(
    "metrics-server", "10.0.0.11", Pod("kube-system", {"k8s-app": "metrics-server"})
)
IMPOSTOR = Endpoint(
    "impostor", "10.0.3.5", Pod("evil", GATE_LABELS)
)  # looks like the gate, elsewhere
OTHER_AGENT = Endpoint("other-agent", "10.0.1.7", Pod("agents", {"app": "mail-agent"}))
DEFAULT_POD = Endpoint("default-pod", "10.0.4.5", Pod("default", {"app": "web"}))
REVIEWERS = Endpoint(
    "reviewers", "10.0.5.5", Pod("ingress", {}, {"gate-proxy.io/reviewers": "true"})
)
INTERNET = Endpoint("internet", "203.0.113.7")
KUBERNETES_API = Endpoint("kube-api", "10.96.0.1")

CONNECTIONS = [
    # (source, destination, port, protocol, allowed)
    (AGENT, GATE, 4001, "TCP", True),
    (AGENT, GATE, 4002, "TCP", True),
    (AGENT, GATE, 4000, "TCP", True),
    (UNLABELLED_AGENT, GATE, 4001, "TCP", True),
    (AGENT, DNS, 53, "UDP", True),
    (AGENT, DNS, 53, "TCP", True),
    (AGENT, GATE, 5432, "TCP", False),
    (AGENT, GATE, 4001, "UDP", False),
    (AGENT, POSTGRES, 5432, "TCP", False),
    (AGENT, DNS, 80, "TCP", False),
    (AGENT, METRICS_SERVER, 443, "TCP", False),
    (AGENT, IMPOSTOR, 4001, "TCP", False),
    (AGENT, OTHER_AGENT, 8080, "TCP", False),
    (UNLABELLED_AGENT, INTERNET, 443, "TCP", False),
    (AGENT, INTERNET, 443, "TCP", False),
    (AGENT, INTERNET, 80, "TCP", False),
    (AGENT, KUBERNETES_API, 443, "TCP", False),
    (DEFAULT_POD, GATE, 4001, "TCP", False),  # the proxies: agents only
    (REVIEWERS, GATE, 4000, "TCP", True),  # the dashboard and /metrics
    (REVIEWERS, GATE, 4001, "TCP", False),
    (GATE, INTERNET, 443, "TCP", True),  # the gate itself must reach the upstreams
    (GATE, POSTGRES, 5432, "TCP", True),
]


def network_policies() -> list[dict[str, Any]]:
    return [d for _, d in manifests() if d["kind"] == "NetworkPolicy"]


def connection_id(connection: tuple[Endpoint, Endpoint, int, str, bool]) -> str:
    source, destination, port, protocol, expected = connection
    verdict = "allowed" if expected else "denied"
    return f"{source.name}->{destination.name}:{port}/{protocol}-{verdict}"


@pytest.mark.parametrize(
    ("source", "destination", "port", "protocol", "expected"),
    CONNECTIONS,
    ids=[connection_id(c) for c in CONNECTIONS],
)
def test_network_policies_let_agents_reach_only_the_gate(
    source: Endpoint, destination: Endpoint, port: int, protocol: str, expected: bool
) -> None:
    assert allowed(network_policies(), source, destination, port, protocol) is expected


def test_without_the_network_policies_an_agent_reaches_anything() -> None:
    """The model is not rigged: with no policies the denied connections above go through."""
    for source, destination, port, protocol, _ in CONNECTIONS:
        assert allowed([], source, destination, port, protocol)


def test_the_default_deny_still_isolates_when_an_allow_policy_is_narrowed() -> None:
    policies = [p for p in network_policies() if p["metadata"]["name"] != "default-deny-egress"]
    # The allow policies select every pod of the namespace too, so they already deny the
    # rest; the default deny keeps that true when someone narrows their podSelector.
    narrowed = copy.deepcopy(policies)
    for policy in narrowed:
        if policy["metadata"]["namespace"] == "agents":
            policy["spec"]["podSelector"] = {"matchLabels": {"app": "crm-agent"}}
    assert allowed(narrowed, UNLABELLED_AGENT, INTERNET, 443)
    with_deny = [*narrowed, manifest("NetworkPolicy", "default-deny-egress")]
    assert not allowed(with_deny, UNLABELLED_AGENT, INTERNET, 443)


# == systemd ===================================================================================


def unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    text = (DEPLOY / "gate-proxy.service").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            directives.setdefault(key, []).append(value)
    return directives


def test_systemd_unit_is_hardened() -> None:
    unit = unit_directives()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "Restart": "on-failure",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit.get(key) == [value], key
    assert unit["User"] == ["gate"]
    writable = " ".join(unit["ReadWritePaths"]).split()
    assert writable == ["/var/lib/gate-proxy/data", "/var/lib/gate-proxy/certs"]
    command = shlex.split(unit["ExecStart"][0])
    assert command[command.index("--host") + 1] == "127.0.0.1"
    for variable in KEY_FILE_VARIABLES:
        assert any(value.startswith(f"{variable}=") for value in unit["Environment"]), variable


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze not found: it is part of this machine image (package systemd)"
    return path


def unit_with_real_binary(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's gate-proxy (verify checks it exists)."""
    gate_proxy = Path(sys.executable).parent / "gate-proxy"  # this venv's console script
    assert gate_proxy.exists(), f"{gate_proxy} is not installed"
    text = (DEPLOY / "gate-proxy.service").read_text()
    unit = tmp_path / "gate-proxy.service"
    unit.write_text(text.replace("/opt/gate-proxy/bin/gate-proxy", str(gate_proxy)))
    return unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = unit_with_real_binary(tmp_path)
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # unknown keys are only warnings: none allowed


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    unit = unit_with_real_binary(tmp_path)
    # --threshold=20: fail above an exposure of 2.0 of 10 ("OK" is below 3.9).
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# == Dockerfile ================================================================================


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    arguments = {
        rest.split("=")[0]: rest.split("=", 1)[1] for k, rest in instructions if k == "ARG"
    }
    base = arguments["PYTHON_IMAGE"]
    version = re.search(r"python:(\d+)\.(\d+)", base)
    assert version and (int(version[1]), int(version[2])) >= (3, 12), base
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    [healthcheck] = [rest for keyword, rest in final_stage if keyword == "HEALTHCHECK"]
    assert "GATE_HEALTH_URL" in healthcheck
    env = " ".join(rest for keyword, rest in final_stage if keyword == "ENV")
    assert "GATE_HEALTH_URL=http://127.0.0.1:4000/health" in env
    [command] = [json.loads(rest) for keyword, rest in final_stage if keyword == "CMD"]
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_dockerfile_never_copies_local_state_or_keys_into_the_image() -> None:
    copied = [rest.split() for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    sources = [s for parts in copied for s in parts[:-1] if not s.startswith("--")]
    assert sources, "no COPY found"
    for source in sources:
        assert source.split("/")[0] not in {"data", "certs", ".venv", ".", "deploy"}, source


# == key material: make-secrets.sh and the mounted-file interface ==============================


def run_make_secrets(out: Path) -> None:
    result = subprocess.run(
        ["bash", str(DEPLOY / "make-secrets.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secrets") / "keys"
    run_make_secrets(out)
    return out


def test_make_secrets_writes_private_files_the_gate_can_parse(secrets_dir: Path) -> None:
    assert {p.name for p in secrets_dir.iterdir()} == MADE_BY_MAKE_SECRETS
    for name in MADE_BY_MAKE_SECRETS - {"mitmproxy-ca-cert.pem"}:
        assert stat.S_IMODE((secrets_dir / name).stat().st_mode) == 0o600, name
    assert (secrets_dir / "admin.key").read_text().startswith("gate_sk_")
    signing = load_pem_private_key((secrets_dir / "signing.key").read_bytes(), password=None)
    assert isinstance(signing, Ed25519PrivateKey)
    ca = x509.load_pem_x509_certificate((secrets_dir / "mitmproxy-ca-cert.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    key_and_cert = (secrets_dir / "mitmproxy-ca.pem").read_bytes()
    assert b"PRIVATE KEY" in key_and_cert
    assert ca.public_bytes(Encoding.PEM) in key_and_cert  # the same CA in both files
    database = dict(
        line.split("=", 1) for line in (secrets_dir / "database.env").read_text().splitlines()
    )
    assert database["GATE_DATABASE_URL"].startswith(
        f"postgresql://gate:{database['POSTGRES_PASSWORD']}@postgres:5432/"
    )
    if os.geteuid() == 0:
        assert (secrets_dir / "signing.key").stat().st_uid == 10001  # the image's gate user


def test_make_secrets_never_rotates_existing_keys(secrets_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in secrets_dir.iterdir()}
    run_make_secrets(secrets_dir)
    assert {p.name: p.read_bytes() for p in secrets_dir.iterdir()} == before


def expected_identity(secrets_dir: Path) -> tuple[str, bytes, str]:
    """(signing key id, CA certificate PEM, admin key) the gate must present."""
    from gate_proxy.keys import key_id_for

    signing = load_pem_private_key((secrets_dir / "signing.key").read_bytes(), password=None)
    assert isinstance(signing, Ed25519PrivateKey)
    return (
        key_id_for(signing.public_key()),
        (secrets_dir / "mitmproxy-ca-cert.pem").read_bytes(),
        (secrets_dir / "admin.key").read_text().strip(),
    )


def assert_gate_uses(gate_url: str, secrets_dir: Path) -> None:
    key_id, ca_pem, admin_key = expected_identity(secrets_dir)
    assert httpx.get(f"{gate_url}/v1/keys/signing").json()["key_id"] == key_id
    assert httpx.get(f"{gate_url}/v1/proxy/ca.crt").content == ca_pem
    headers = {"Authorization": f"Bearer {admin_key}"}
    assert httpx.get(f"{gate_url}/v1/agents", headers=headers).status_code == 200


def test_a_gate_loads_what_make_secrets_writes(secrets_dir: Path, tmp_path: Path) -> None:
    """Today's layout: the key files copied where the gate keeps its own."""
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "certs").mkdir(mode=0o700)
    shutil.copy(secrets_dir / "signing.key", tmp_path / "data" / "signing.key")
    shutil.copy(secrets_dir / "mitmproxy-ca.pem", tmp_path / "certs" / "mitmproxy-ca.pem")
    admin_key = (secrets_dir / "admin.key").read_text().strip()
    with running_gate(tmp_path, admin_key=admin_key) as gate:
        assert_gate_uses(gate.url, secrets_dir)


def test_a_gate_reads_its_keys_from_mounted_files(secrets_dir: Path, tmp_path: Path) -> None:
    """The interface compose.yaml, the Kubernetes Deployment and the systemd unit rely on:
    GATE_ADMIN_KEY_FILE, GATE_SIGNING_KEY_FILE and GATE_CA_FILE name read-only files; the
    gate uses them and generates no key of its own."""
    mounted = tmp_path / "mounted"
    shutil.copytree(secrets_dir, mounted)
    for path in mounted.iterdir():
        path.chmod(0o440)  # as a Kubernetes Secret volume with defaultMode 0440
    mounted.chmod(0o550)
    environment = {
        "GATE_ADMIN_KEY_FILE": str(mounted / "admin.key"),
        "GATE_SIGNING_KEY_FILE": str(mounted / "signing.key"),
        "GATE_CA_FILE": str(mounted / "mitmproxy-ca.pem"),
    }
    with running_gate(tmp_path / "gate", admin_key=None, env=environment) as gate:
        assert_gate_uses(gate.url, secrets_dir)
        assert not (gate.data_dir / "admin.key").exists()  # nothing generated
        assert not (gate.data_dir / "signing.key").exists()


def test_a_gate_refuses_to_start_when_a_named_key_file_is_missing(tmp_path: Path) -> None:
    """Two replicas must never each generate a key: a named file that is absent is fatal."""
    missing = tmp_path / "nowhere" / "signing.key"
    environment = {"GATE_SIGNING_KEY_FILE": str(missing)}
    with (
        pytest.raises(RuntimeError, match=r"GATE_SIGNING_KEY_FILE|signing\.key"),
        running_gate(tmp_path / "gate", env=environment),
    ):
        pass  # not reached: the gate must exit instead of becoming ready
    assert not missing.exists()


# == the example configuration =================================================================


@pytest.fixture
def configmap_gate(tmp_path: Path) -> Iterator[Any]:
    config = manifest("ConfigMap", "gate-config")["data"]
    policies = {
        name.removesuffix(".yaml"): text
        for name, text in manifest("ConfigMap", "gate-policies")["data"].items()
    }
    with running_gate(tmp_path, policies=policies, config=config) as gate:
        yield gate


def test_the_example_configmaps_load_in_a_real_gate(configmap_gate: Any) -> None:
    health = httpx.get(f"{configmap_gate.url}/health").json()
    policies = manifest("ConfigMap", "gate-policies")["data"]
    assert health == {"status": "ok", "policies": len(policies)}
    assert '"level": "error"' not in configmap_gate.logs()
