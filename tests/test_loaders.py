"""Configuration loading (gate_proxy/loaders): the one located YAML reader, gate.yaml
settings, the config snapshot and its hot reload, and, against the real gate, config
files written to loosen the gate by YAML tricks (a duplicate key whose last value is laxer,
a merge key, a tag) being refused while the last good config keeps deciding."""

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_process import REPO, GateProcess, prepare_root, running_gate
from upstreams import Upstream, free_port

from gate_proxy.core.located import LocatedError
from gate_proxy.core.policy import Policy, PolicyError
from gate_proxy.core.registry import Registry
from gate_proxy.loaders.live import StartupError, load_live_config
from gate_proxy.loaders.policy_file import load_policy_dir, parse_policy
from gate_proxy.loaders.registry_file import load_registry
from gate_proxy.loaders.reload import Reloadable
from gate_proxy.loaders.settings_file import load_settings
from gate_proxy.loaders.snapshot import LiveConfig
from gate_proxy.loaders.yaml_reader import MAX_NODES, boolean_hint, read_yaml, type_name
from gate_proxy.metrics import GateMetrics
from gate_proxy.settings import Settings, SettingsError


class ReadError(LocatedError):
    pass


def located(error: LocatedError) -> tuple[int | None, str | None, str]:
    return error.line, error.field, error.message


# -- the located YAML reader ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "line", "field", "fragment"),
    [
        ("a: 1\nb:\n  c: 1\n  c: 2\n", {}, 4, "b.c", "duplicate key (first at line 3)"),
        ("- {x: 1, x: 2}\n", {}, 1, "0.x", "duplicate key"),
        ("a: &m {x: 1}\nb:\n  <<: *m\n", {"merge_keys": False}, 3, "b", "merge keys (<<)"),
        ("a: !!python/object:os.system [ls]\n", {}, 1, "a", "YAML tag"),
        ("a: !!set {x, y}\n", {}, 1, "a", "YAML tag"),
        ("a:\n  b: !custom text\n", {}, 2, "a.b", "YAML tag"),
        ("a: !!python/name:os.system ''\n", {}, 1, "a", "YAML tag"),
        ("1: x\n", {"keys": "string"}, 1, "(document)", "keys must be strings"),
        ("yes: x\n", {"keys": "string"}, 1, "(document)", "keys must be strings"),
        ("? [a, b]\n: x\n", {}, 1, "(document)", "mapping keys must be scalars"),
        ("a: [1,\n", {}, 2, "(yaml)", "invalid YAML"),
        ("a: 1\n---\nb: 2\n", {}, 2, "(yaml)", "invalid YAML"),
        ("a: *nowhere\n", {}, 1, "(yaml)", "invalid YAML"),
    ],
)
def test_reader_refuses_with_file_line_and_field(
    text: str, options: dict[str, Any], line: int, field: str, fragment: str
) -> None:
    with pytest.raises(ReadError) as caught:
        read_yaml(text, "f.yaml", ReadError, **options)
    assert caught.value.file == "f.yaml"
    assert located(caught.value)[:2] == (line, field)
    assert fragment in caught.value.message


def test_reader_bounds_alias_expansion() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name, previous in zip("bcdefg", "abcdef", strict=True):
        bomb += f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    with pytest.raises(ReadError, match="too large") as caught:
        read_yaml(bomb, "bomb.yaml", ReadError)
    assert caught.value.field is not None
    assert MAX_NODES < 10**7  # the bomb above would be ten million nodes


def test_reader_keeps_key_and_value_lines() -> None:
    text = "# header\nrate:\n  per_hour: 5\nlist:\n  - a\n  -\n    b: 1\nblock:\n\n  x: 1\n"
    document = read_yaml(text, "f.yaml", ReadError)
    assert document.data == {"rate": {"per_hour": 5}, "list": ["a", {"b": 1}], "block": {"x": 1}}
    assert document.key_line(("rate",)) == 2 and document.value_line(("rate",)) == 3
    assert document.key_line(("rate", "per_hour")) == 3
    assert document.value_line(("list", 1)) == 7
    assert document.key_line(("block",)) == 8 and document.value_line(("block",)) == 10
    assert document.value_line(()) == 2 and not document.empty


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_reader_empty_document(text: str) -> None:
    document = read_yaml(text, "f.yaml", ReadError)
    assert document.empty and document.data is None


def test_reader_resolves_merge_keys_where_allowed() -> None:
    text = "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n"
    assert read_yaml(text, "f.yaml", ReadError).data["child"] == {"x": 1, "y": 3}


def test_reader_text_keys_keep_yaml_booleans_as_text() -> None:
    assert read_yaml("yes: 1\n2: b\n", "f.yaml", ReadError, keys="text").data == {
        "true": 1,
        "2": "b",
    }


@pytest.mark.parametrize(
    ("yaml_value", "name", "hint"),
    [
        ("text", "a string", False),
        ("'no'", "a string", False),
        ("no", "a boolean", True),
        ("on", "a boolean", True),
        ("3", "an integer", False),
        ("3.5", "a number", False),
        ("~", "null", False),
        ("2024-01-31", "a date", False),
        ("!!binary aGk=", "binary data", False),
        ("[a]", "a list", False),
        ("{a: 1}", "a mapping", False),
    ],
)
def test_type_names_and_boolean_hint(yaml_value: str, name: str, hint: bool) -> None:
    value = read_yaml(f"v: {yaml_value}\n", "f.yaml", ReadError).data["v"]
    assert type_name(value) == name
    assert bool(boolean_hint(value)) is hint


# -- policy files: YAML tricks that would loosen a policy are refused --------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        # Plain YAML keeps the last value: the laxer one.
        (
            "id: p\nrequire_approval: always\nrequire_approval: never\n",
            3,
            "require_approval",
            "duplicate key",
        ),
        (
            "id: p\ndestinations: [a]\nenvironments:\n  prod:\n    destinations: [a]\n"
            "    destinations: [a, b]\n",
            6,
            "environments.prod.destinations",
            "duplicate key",
        ),
        ("id: p\n<<: {require_approval: never}\n", 2, None, "merge keys (<<) are not supported"),
        (
            "id: p\nblock_if_terms: !!python/object/apply:builtins.list [[]]\n",
            2,
            "block_if_terms",
            "YAML tag",
        ),
        ("id: p\nrequire_approval: off\n", 2, "require_approval", "quote it"),
        ('id: p\nenvironments:\n  "prod eu": {expiry_minutes: 0}\n', 3, None, "must be >= 1"),
    ],
)
def test_policy_yaml_tricks_are_refused(
    text: str, line: int, field: str | None, fragment: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert caught.value.line == line
    if field is not None:
        assert caught.value.field == field
    assert fragment in caught.value.message


def test_policy_environment_names_are_quoted_in_fields() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy('id: p\nenvironments:\n  "prod eu": {expiry_minutes: 0}\n', "p.yaml")
    assert caught.value.field == 'environments["prod eu"].expiry_minutes'


# -- gate.yaml settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("port: 4000\negress_check: flase\n", 2, "egress_check", "expected true or false"),
        ("egress_check: 'maybe'\n", 1, "egress_check", "expected true or false"),
        ("prot: 4000\n", 1, "prot", "unknown setting"),
        ("port: 4000\nport: 4001\n", 2, "port", "duplicate key"),
        ("port: forty\n", 1, "port", "expected an integer"),
        ("port: 40.5\n", 1, "port", "expected an integer"),
        ("port: true\n", 1, "port", "expected an integer"),
        ("upstream_timeout_s: no\n", 1, "upstream_timeout_s", "expected a number"),
        ("request_header_timeout_s: .inf\n", 1, "request_header_timeout_s", "positive"),
        ("enforce: shadowed\n", 1, "enforce", "must be enforce or shadow"),
        ("durability: fsync\n", 1, "durability", "must be normal or full"),
        ("host: 127\n", 1, "host", "expected a string, got an integer"),
        ("environment: no\n", 1, "environment", "quote it"),
        ("egress_allow:\n  - 10.0.0.0/8\n  - 8\n", 3, "egress_allow[1]", "expected a string"),
        ("egress_allow: 10.0.0.0/8\n", 1, "egress_allow", "expected a list of strings"),
        ("egress_allow: ['not a host!']\n", 1, "egress_allow", "not a valid host name"),
        ("webhook_allow_cidrs: [300.1.1.1/8]\n", 1, "webhook_allow_cidrs", "300.1.1.1"),
        ("data_dir: [a]\n", 1, "data_dir", "expected a path"),
        ("- port: 1\n", 1, None, "expected a mapping, got a list"),
        ("port: [1\n", 2, "(yaml)", "invalid YAML"),
        ("1: x\n", 1, "(document)", "keys must be strings"),
    ],
)
def test_bad_settings_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, fragment: str
) -> None:
    (tmp_path / "gate.yaml").write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path, {})
    error = caught.value
    assert (error.file, error.line, error.field) == (str(tmp_path / "gate.yaml"), line, field)
    assert fragment in error.message
    assert str(error).startswith(f"{tmp_path / 'gate.yaml'}:{line}: ")


def test_settings_are_converted_by_their_declared_types(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text(
        "port: 4100\nupstream_timeout_s: 2\negress_check: off\nenable_proxy: 'yes'\n"
        "upstream_ca_bundle: ~\nenvironment: production\negress_allow: [10.0.0.0/8]\n"
        "data_dir: /srv/gate\n"
    )
    settings = load_settings(tmp_path, {"proxy_port": "4101", "log_level": None})
    assert (settings.port, settings.proxy_port) == (4100, 4101)
    assert settings.upstream_timeout_s == 2.0 and isinstance(settings.upstream_timeout_s, float)
    assert settings.egress_check is False and settings.enable_proxy is True
    assert settings.upstream_ca_bundle is None and settings.environment == "production"
    assert settings.egress_allow == ["10.0.0.0/8"] and settings.data_dir == Path("/srv/gate")
    assert settings.config_dir == tmp_path and settings.log_level == Settings().log_level


def test_no_settings_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path, {}) == Settings(config_dir=tmp_path)


def test_flags_and_environment_override_the_file_and_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gate.yaml").write_text("port: 4100\nhold_timeout_ms: 5\n")
    monkeypatch.setenv("GATE_HOLD_TIMEOUT_MS", "7")
    settings = load_settings(tmp_path, {"port": 4200})
    assert (settings.port, settings.hold_timeout_ms) == (4200, 7)
    with pytest.raises(SettingsError, match=r"^--port: port: expected an integer"):
        load_settings(tmp_path, {"port": "x"})
    monkeypatch.setenv("GATE_HOLD_TIMEOUT_MS", "soon")
    with pytest.raises(SettingsError, match=r"^GATE_HOLD_TIMEOUT_MS: hold_timeout_ms: "):
        load_settings(tmp_path, {})


def test_an_unreadable_settings_file_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_bytes(b"port: \xff\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path, {})
    assert caught.value.field == "(file)"


def test_the_slack_url_never_appears_in_a_settings_error(tmp_path: Path) -> None:
    secret = "https://hooks.slack.example/services/T000/B000/very-secret"
    (tmp_path / "gate.yaml").write_text(f"slack_webhook_url: [{secret}]\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path, {})
    assert "very-secret" not in str(caught.value)
    assert caught.value.field == "slack_webhook_url"


# -- the config snapshot ----------------------------------------------------------------------


def rewrite(path: Path, text: str) -> None:
    """Write and move the mtime forward, so a change is seen even within one clock tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


ROUTE = "api.a.com:\n  destination: a.send\n  policy: {policy}\n"


def live_config(tmp_path: Path, failures: list[str]) -> LiveConfig:
    (tmp_path / "policies").mkdir()
    rewrite(tmp_path / "policies" / "p.yaml", "id: p\nrequire_approval: always\n")
    rewrite(tmp_path / "destinations.yaml", ROUTE.format(policy="p"))
    registry_path = tmp_path / "destinations.yaml"
    policies = Reloadable(
        "policies",
        lambda: load_policy_dir(tmp_path / "policies"),
        lambda: sorted((tmp_path / "policies").glob("*.yaml")),
    )
    registry = Reloadable(
        "destinations", lambda: load_registry(registry_path), lambda: [registry_path]
    )
    return LiveConfig(registry=registry, policies=policies, on_failure=failures.append)


def routed_policy(config: LiveConfig) -> Policy | None:
    snapshot = config.current  # once, as a request does
    match = snapshot.registry.match("api.a.com", 443, "POST", "/")
    return snapshot.policies.get(match.policy or "")


def test_snapshot_is_frozen_and_read_only(tmp_path: Path) -> None:
    config = live_config(tmp_path, [])
    snapshot = config.current
    assert snapshot.generation == 1 and isinstance(snapshot.registry, Registry)
    with pytest.raises(AttributeError):
        snapshot.generation = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.policies["p"] = snapshot.policies["p"]  # type: ignore[index]
    assert config.reload_changed() is False and config.current is snapshot  # nothing changed


def test_a_reload_publishes_a_new_snapshot_and_keeps_the_old_one_whole(tmp_path: Path) -> None:
    config = live_config(tmp_path, [])
    old = config.current
    # Both parts change together: a new policy and the route pointing at it.
    rewrite(tmp_path / "policies" / "q.yaml", "id: q\nrequire_approval: never\n")
    rewrite(tmp_path / "destinations.yaml", ROUTE.format(policy="q"))
    assert config.reload_changed() is True
    new = config.current
    assert new is not old and new.generation == old.generation + 1  # one swap for both parts
    assert routed_policy(config) is new.policies["q"]
    # A request that took the old snapshot still sees one consistent version.
    assert old.registry.match("api.a.com", 443, "POST", "/").policy == "p"
    assert sorted(old.policies) == ["p"]


LOOSER_DUPLICATE = "id: p\nrequire_approval: always\nrequire_approval: never\n"
SECOND_HOST_ENTRY = ROUTE.format(policy="p") + "api.a.com:\n  passthrough: true\n"


@pytest.mark.parametrize(
    ("file", "broken", "part"),
    [
        ("policies/p.yaml", LOOSER_DUPLICATE, "policies"),
        ("policies/p.yaml", "id: p\nrequire_approval: [oops\n", "policies"),
        ("destinations.yaml", SECOND_HOST_ENTRY, "destinations"),
        ("destinations.yaml", "api.a.com: !!python/object:os.system {}\n", "destinations"),
    ],
)
def test_a_broken_reload_keeps_the_last_good_part_and_counts(
    tmp_path: Path, file: str, broken: str, part: str
) -> None:
    failures: list[str] = []
    config = live_config(tmp_path, failures)
    before = config.current
    rewrite(tmp_path / file, broken)
    assert config.reload_changed() is False
    assert config.current is before and failures == [part]
    policy = routed_policy(config)
    assert policy is not None and policy.require_approval == "always"
    assert config.reload_changed() is False and failures == [part]  # not retried unchanged


def test_set_vault_publishes_a_snapshot_with_the_vault_config(tmp_path: Path) -> None:
    from gate_proxy.vault import VaultConfig

    config = live_config(tmp_path, [])
    before = config.current
    vault = VaultConfig()
    config.set_vault(vault)
    assert config.current.vault is vault and before.vault is None
    assert config.current.generation == before.generation + 1
    assert config.current.registry is before.registry


# -- server wiring: startup errors, reload failures metric, metric labels ---------------------


def server_settings(tmp_path: Path, policies: dict[str, str], registry: str | None) -> Settings:
    prepare_root(tmp_path, policies)
    if registry is not None:
        (tmp_path / "config" / "destinations.yaml").write_text(registry)
    return Settings(policy_dir=tmp_path / "policies", config_dir=tmp_path / "config")


def test_load_live_config_labels_only_what_loaded(tmp_path: Path) -> None:
    registry = "api.a.com:\n  destination: a.send\n  policy: p\n"
    settings = server_settings(tmp_path, {"p": "id: p\ndestinations: [p.send]\n"}, registry)
    metrics = GateMetrics()
    config = load_live_config(settings, metrics)
    assert metrics.destinations.allowed >= {"a.send", "p.send"}
    rewrite(settings.config_dir / "destinations.yaml", registry + "api.a.com: {block: true}\n")
    assert config.reload_changed() is False
    assert metrics.config_reload_failures.values == {("destinations",): 1.0}
    assert "a.send" in metrics.destinations.allowed  # the failed load changed no label
    rewrite(settings.config_dir / "destinations.yaml", registry.replace("a.send", "b.send"))
    assert config.reload_changed() is True
    assert "b.send" in metrics.destinations.allowed and "a.send" not in metrics.destinations.allowed


def test_load_live_config_without_a_registry_blocks_every_host(tmp_path: Path) -> None:
    config = load_live_config(server_settings(tmp_path, {"p": "id: p\n"}, None), GateMetrics())
    assert config.current.registry.match("api.a.com", 443, "POST", "/").blocked


@pytest.mark.parametrize(
    ("policies", "registry", "prefix", "fragment"),
    [
        ({"p": "id: p\nid: q\n"}, None, "policies: p.yaml:2: id: ", "duplicate key"),
        ({"p": "id: p\n"}, "a.com: {block: true}\na.com: {block: false}\n", "destinations: ", "2"),
    ],
)
def test_load_live_config_refuses_to_start_on_broken_files(
    tmp_path: Path, policies: dict[str, str], registry: str | None, prefix: str, fragment: str
) -> None:
    with pytest.raises(StartupError) as caught:
        load_live_config(server_settings(tmp_path, policies, registry), GateMetrics())
    assert str(caught.value).startswith(prefix) and fragment in str(caught.value)


# -- end to end: loosening the gate through YAML tricks does not work ---------------------------

GUARDED = "id: guarded\ndestinations: [other.dest]\n"  # notes.write is not allowed: 403


def _destinations(port: int, extra: str = "") -> str:
    return (
        "default:\n  action: block\n"
        f'"127.0.0.1:{port}":\n  paths:\n'
        "    /v1/notes: {method: POST, destination: notes.write, policy: guarded}\n" + extra
    )


def _failures(gate: GateProcess, part: str) -> float:
    for line in httpx.get(f"{gate.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f'gate_config_reload_failures_total{{config="{part}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for_failure(gate: GateProcess, part: str, count: float) -> None:
    deadline = time.monotonic() + 15  # files are polled every second
    while time.monotonic() < deadline:
        if _failures(gate, part) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"the broken {part} reload was never reported")


def test_yaml_tricks_cannot_loosen_a_running_gate(tmp_path: Path) -> None:
    with (
        Upstream() as upstream,
        running_gate(
            tmp_path,
            policies={"guarded": GUARDED},
            config={"destinations.yaml": _destinations(upstream.port)},
        ) as gate,
    ):
        agent = gate.register("loosener")
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
        url = f"http://127.0.0.1:{upstream.port}/v1/notes"

        def post(marker: str) -> int:
            with httpx.Client(proxy=proxy, timeout=30) as client:
                return client.post(url, json={"marker": marker}).status_code

        assert post("before") == 403
        policy_path = gate.policy_dir / "guarded.yaml"
        attacks = [
            # plain YAML would keep the last, allowing value
            GUARDED + "destinations: [notes.write]\nrequire_approval: never\n",
            "id: guarded\n<<: {destinations: [notes.write]}\nrequire_approval: never\n",
            "id: guarded\ndestinations: !!python/object/apply:builtins.list [[notes.write]]\n",
        ]
        for count, attack in enumerate(attacks, start=1):
            rewrite(policy_path, attack)
            _wait_for_failure(gate, "policies", count)
            assert post(f"policy-attack-{count}") == 403
        # The same on the registry: a second entry for the host that would pass it through.
        registry_path = gate.config_dir / "destinations.yaml"
        rewrite(
            registry_path,
            _destinations(upstream.port, f'"127.0.0.1:{upstream.port}":\n  passthrough: true\n'),
        )
        _wait_for_failure(gate, "destinations", 1)
        assert post("registry-attack") == 403
        assert upstream.requests == []  # nothing of it went upstream
        logs = gate.logs()
        assert "guarded.yaml:3: destinations: duplicate key" in logs
        assert "merge keys (<<) are not supported" in logs

        # A real change is picked up: the test can see a reload that loosens.
        rewrite(policy_path, "id: guarded\ndestinations: [notes.write]\nrequire_approval: never\n")
        deadline = time.monotonic() + 15
        while post("allowed") != 200:
            assert time.monotonic() < deadline, "the valid policy was never loaded"
            time.sleep(0.2)
        assert [json.loads(r.body)["marker"] for r in upstream.requests] == ["allowed"]


def test_a_typo_in_gate_yaml_stops_serve_with_its_line(tmp_path: Path) -> None:
    prepare_root(tmp_path, {"p": "id: p\n"})
    (tmp_path / "config" / "gate.yaml").write_text(
        'egress_allow: ["127.0.0.1/32"]\negress_check: flase\n'
    )
    gate = GateProcess(tmp_path, free_port(), free_port(), free_port(), None)
    gate.start(wait=False)
    assert gate.process is not None
    assert gate.process.wait(timeout=60) == 2
    assert "gate.yaml:2: egress_check: expected true or false" in gate.logs()


def test_the_shipped_gate_yaml_loads_and_names_every_setting() -> None:
    """config/gate.yaml documents every setting (commented out, at its default)."""
    from dataclasses import fields

    from gate_proxy.settings import Settings

    shipped = REPO / "config" / "gate.yaml"
    assert load_settings(shipped.parent, {}) == load_settings(None, {"config_dir": shipped.parent})
    text = shipped.read_text()
    internal = {"config_dir", "enable_proxy"}  # set by flags and the mitmdump entry, not here
    missing = [
        f.name for f in fields(Settings) if f.name not in internal and f"# {f.name}:" not in text
    ]
    assert missing == []
