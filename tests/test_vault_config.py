"""vault.yaml parsing: the shipped examples, Zehrava's format, defaults, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gate_proxy.vault import (
    Injection,
    SecretRef,
    VaultConfigError,
    VaultManager,
    load_vault_config,
    parse_vault_config,
)
from gate_proxy.vault.config import HashicorpSettings, OnePasswordSettings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"


def _destinations_in_registry() -> set[str]:
    """Destination names used in config/destinations.yaml (walks the plain YAML)."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("destination"), str):
                found.add(node["destination"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((CONFIG / "destinations.yaml").read_text()))
    return found


# --------------------------------------------------------------------------- shipped files


def test_example_vault_yaml_covers_the_example_destinations() -> None:
    config = load_vault_config(CONFIG / "vault.yaml")
    assert set(config.injections) == _destinations_in_registry()
    assert config.providers_used == {"env"}
    stripe = config.injections["stripe.refund"]
    assert (stripe.mode, stripe.username, stripe.ref) == ("basic", None, "env:STRIPE_SECRET_KEY")
    zendesk = config.injections["zendesk.reply"]
    assert zendesk.username == "support-bot@example.com/token"
    assert zendesk.on_agent_credential == "reject"
    assert config.injections["hubspot.contacts"].ttl_seconds == 60
    assert config.injections["sendgrid.send"].template == "Bearer {secret}"


def test_example_vault_yaml_commented_blocks_are_valid_when_uncommented() -> None:
    """The commented provider examples in config/vault.yaml must themselves load."""
    text = (CONFIG / "vault.yaml").read_text()
    tail = text.split("# -- Other providers", 1)[1]
    # YAML lines start with a lower-case key or indentation after "# "; prose does not.
    lines = [
        line[2:]
        for line in tail.splitlines()
        if line.startswith("# ") and (line[2:3].islower() or line[2:3] == " ")
    ]
    first_entry = lines.index("  stripe.refund:")
    uncommented = "\n".join([*lines[:first_entry], "credentials:", *lines[first_entry:]])
    config = parse_vault_config(uncommented, "uncommented")
    assert config.hashicorp.auth == "approle"
    assert config.hashicorp.url == "https://vault.internal:8200"
    assert config.aws.region == "us-east-1"
    assert config.refs["stripe.refund"] == SecretRef("onepassword", "op://AI-Agents/Stripe/key")
    assert config.refs["sendgrid.send"] == SecretRef(
        "hashicorp", "gate/sendgrid", key="api_key", mount="secret"
    )
    assert config.refs["hubspot.contacts"] == SecretRef("aws", "prod/hubspot", key="token")
    assert config.injections["hubspot.contacts"].ttl_seconds == 0


def test_zehrava_format_example_loads() -> None:
    config = load_vault_config(CONFIG / "vault.yaml.example")
    inj = config.injections
    assert set(inj) == {
        "sendgrid.send",
        "hubspot.contacts",
        "stripe.refund",
        "github.issues",
        "mailchimp.subscribe",
        "slack.notify",
    }
    assert all(i.provider == "env" for i in inj.values())
    assert inj["sendgrid.send"] == Injection(
        destination="sendgrid.send",
        provider="env",
        ref="env:SENDGRID_API_KEY",
        mode="header",
        header="Authorization",
        template="Bearer {secret}",
    )
    assert inj["github.issues"].template == "token {secret}"
    assert (inj["stripe.refund"].mode, inj["stripe.refund"].username) == ("basic", None)
    assert (inj["mailchimp.subscribe"].mode, inj["mailchimp.subscribe"].query_param) == (
        "query",
        "apikey",
    )
    assert inj["mailchimp.subscribe"].strip_query == ("apikey",)
    assert inj["slack.notify"].mode == "url"
    assert config.execute["stripe.refund"].url == "https://api.stripe.com/v1/refunds"
    assert config.execute["slack.notify"].url == "{secret}"


ZEHRAVA_PRODUCTION_STYLE = """\
provider: 1password
1password:
  service_account_token_env: OP_TOKEN_FOR_GATE
  vault: AI-Agents
hashicorp:
  address: https://vault.internal:8200/
  role_id_env: VAULT_ROLE_ID
  secret_id_env: VAULT_SECRET_ID
  mount: kv
aws:
  region: us-east-1
credentials:
  sendgrid.send:
    secret_env: SENDGRID_API_KEY
    ref: "op://AI-Agents/SendGrid/api_key"
    inject: header
    header_name: Authorization
    header_format: "Bearer {secret}"
  stripe.refund:
    ref: Stripe/key
    inject: basic_auth
  loops.send:
    provider: hashicorp
    secret_path: gate/loops
  crm.sync:
    provider: aws
    secret_name: prod/crm
"""


def test_zehrava_provider_blocks_and_reference_keys() -> None:
    """Zehrava's provider blocks (as commented in its example) and per-provider ref keys."""
    config = parse_vault_config(ZEHRAVA_PRODUCTION_STYLE, "zehrava.yaml")
    assert config.onepassword == OnePasswordSettings(
        token_env="OP_TOKEN_FOR_GATE", vault="AI-Agents"
    )
    assert config.hashicorp == HashicorpSettings(
        url="https://vault.internal:8200", mount="kv", auth="approle"
    )
    # With provider: 1password the op:// ref wins over the env var name beside it.
    assert config.refs["sendgrid.send"] == SecretRef(
        "onepassword", "op://AI-Agents/SendGrid/api_key"
    )
    # A ref without op:// is relative to the configured 1Password vault.
    assert config.refs["stripe.refund"].name == "op://AI-Agents/Stripe/key"
    assert config.refs["loops.send"] == SecretRef("hashicorp", "gate/loops", mount="kv")
    assert config.injections["loops.send"].ref == "hashicorp:kv/gate/loops"
    assert config.refs["crm.sync"] == SecretRef("aws", "prod/crm")


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = parse_vault_config("credentials:\n  a.b:\n    ref: TOKEN\n")
    assert config.timeout_seconds == 5
    inj = config.injections["a.b"]
    assert inj == Injection(destination="a.b", provider="env", ref="env:TOKEN")
    assert (inj.ttl_seconds, inj.on_agent_credential, inj.strip) == (
        300,
        "strip",
        ("Authorization",),
    )


MODES = [
    # (entry lines, (mode, header, template, query_param, username))
    ("ref: K", ("header", "Authorization", "Bearer {secret}", None, None)),
    ("ref: K\nheader: X-Api-Key", ("header", "X-Api-Key", "{secret}", None, None)),
    (
        "ref: K\nheader: X-Api-Key\ntemplate: 'Token {secret}'",
        ("header", "X-Api-Key", "Token {secret}", None, None),
    ),
    ("ref: K\ninject: basic", ("basic", "Authorization", None, None, None)),
    ("ref: K\ninject: basic\nusername: bot", ("basic", "Authorization", None, None, "bot")),
    ("ref: K\ninject: query", ("query", None, None, "api_key", None)),
    ("ref: K\ninject: query\nquery_param: key", ("query", None, None, "key", None)),
    ("ref: K\ninject: url", ("url", None, None, None, None)),
]


@pytest.mark.parametrize(("entry", "expected"), MODES)
def test_injection_modes(entry: str, expected: tuple[object, ...]) -> None:
    body = "".join(f"    {line}\n" for line in entry.splitlines())
    inj = parse_vault_config(f"credentials:\n  d:\n{body}").injections["d"]
    assert (inj.mode, inj.header, inj.template, inj.query_param, inj.username) == expected


def test_strip_lists_and_overrides() -> None:
    text = """\
ttl_seconds: 30
on_agent_credential: reject
credentials:
  custom:
    env: API_KEY
    header: X-Api-Key
    strip_headers: [X-Other-Key, authorization]
    strip_query: [token]
  query:
    ref: API_KEY
    inject: query
    query_param: key
    ttl_seconds: 0
    on_agent_credential: strip
"""
    inj = parse_vault_config(text).injections
    assert inj["custom"].strip == ("Authorization", "X-Api-Key", "X-Other-Key")
    assert inj["custom"].strip_query == ("token",)
    assert (inj["custom"].ttl_seconds, inj["custom"].on_agent_credential) == (30, "reject")
    assert inj["query"].strip == ("Authorization",)
    assert inj["query"].strip_query == ("key",)
    assert (inj["query"].ttl_seconds, inj["query"].on_agent_credential) == (0, "strip")
    assert inj["custom"].agent_supplied(["x-api-key", "Accept"], ["token", "q"]) == (
        "x-api-key",
        "token",
    )
    assert inj["query"].agent_supplied(["Content-Type"], ["page"]) == ()


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert parse_vault_config("").injections == {}
    assert parse_vault_config("# only comments\n").injections == {}
    manager = VaultManager.from_config_dir(tmp_path)  # no vault.yaml
    assert manager.destinations == ()
    assert manager.injection_for("stripe.refund") is None


def test_from_config_dir_reads_vault_yaml(tmp_path: Path) -> None:
    (tmp_path / "vault.yaml").write_text("credentials:\n  x.y:\n    ref: X_Y\n")
    manager = VaultManager.from_config_dir(tmp_path)
    assert manager.destinations == ("x.y",)
    assert manager.injection_for("x.y").ref == "env:X_Y"  # type: ignore[union-attr]
    assert manager.injection_for("other") is None


# --------------------------------------------------------------------------- errors

ERRORS = [
    # (yaml, line, field, message fragment)
    ("bogus: 1\n", 1, "bogus", "unknown key"),
    ("provider: keepass\n", 1, "provider", "must be one of"),
    ("timeout_seconds: 0\n", 1, "timeout_seconds", "greater than 0"),
    ("ttl_seconds: -1\n", 1, "ttl_seconds", "must not be negative"),
    ("ttl_seconds: true\n", 1, "ttl_seconds", "must be a number"),
    ("credentials: [a]\n", 1, "credentials", "must be a mapping"),
    (
        "credentials:\n  stripe.refund:\n    ref: K\n    inject: bearer\n",
        4,
        'credentials["stripe.refund"].inject',
        "must be one of",
    ),
    (
        "credentials:\n  stripe.refund:\n    ref: K\n    hedaer: X-Key\n",
        4,
        'credentials["stripe.refund"].hedaer',
        "unknown key",
    ),
    ("credentials:\n  a:\n    inject: header\n", 2, "credentials.a", "needs a reference"),
    ("credentials:\n  a:\n    ref: 'not a name'\n", 3, "credentials.a.ref", "environment variable"),
    (
        "credentials:\n  a:\n    provider: onepassword\n    ref: Stripe/key\n",
        4,
        "credentials.a.ref",
        "op://vault/item/field",
    ),
    (
        "credentials:\n  a:\n    ref: K\n    template: 'Bearer'\n",
        4,
        "credentials.a.template",
        "must contain {secret}",
    ),
    (
        "credentials:\n  a:\n    ref: K\n    inject: basic\n    header: X-Key\n",
        5,
        "credentials.a.header",
        "not used with inject: basic",
    ),
    (
        "credentials:\n  a:\n    ref: K\n    header: 'Bad Header'\n",
        4,
        "credentials.a.header",
        "not a valid name",
    ),
    (
        "credentials:\n  a:\n    ref: K\n    header: X\n    header_name: Y\n",
        5,
        "credentials.a.header_name",
        "only one of",
    ),
    ("credentials:\n  a:\n    ref: K\n    key: f\n", 4, "credentials.a.key", "only used by"),
    (
        "credentials:\n  a:\n    ref: K\n    inject: basic\n    username: 'a:b'\n",
        5,
        "credentials.a.username",
        "must not contain ':'",
    ),
    (
        "credentials:\n  a:\n    ref: K\n  a:\n    ref: L\n",
        4,
        "credentials.a",
        "duplicate key (first at line 2)",
    ),
    ("hashicorp:\n  adress: x\n", 2, "hashicorp.adress", "unknown key"),
    ("hashicorp:\n  auth: ldap\n", 2, "hashicorp.auth", "must be one of"),
    ("aws:\n  max_attempts: 0\n", 2, "aws.max_attempts", "integer from 1 to 10"),
    ("1password:\n  token: x\n", 2, "1password.token", "unknown key"),
    ("1password: {}\nonepassword: {}\n", 2, "onepassword", "only one of"),
    ("credentials:\n  a:\n    ref: [x\n", 4, "(yaml)", ""),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), ERRORS)
def test_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, fragment: str
) -> None:
    path = tmp_path / "vault.yaml"
    path.write_text(text)
    with pytest.raises(VaultConfigError) as info:
        load_vault_config(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    assert fragment in err.message
    assert str(err).startswith(f"{path}:{line}: {field}: ")


def test_from_config_dir_raises_located_error(tmp_path: Path) -> None:
    (tmp_path / "vault.yaml").write_text("credentials:\n  a:\n    ref: K\n    ttl: 5\n")
    with pytest.raises(VaultConfigError, match=r"vault\.yaml:4: credentials\.a\.ttl: unknown key"):
        VaultManager.from_config_dir(tmp_path)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(VaultConfigError, match=r"\(file\)"):
        load_vault_config(tmp_path / "missing.yaml")
