"""Providers over their real protocols: hvac against a local fake of the Vault HTTP API,
boto3 against moto's standalone server, the 1Password provider with a fake at the SDK
client boundary, and env. Every network call goes to 127.0.0.1."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from vault_fake import MOTO_ENV, FakeVault, MotoServer, make_tls_files, start_moto_server

from gate_proxy.vault import CredentialUnavailable, Secret, SecretRef
from gate_proxy.vault.config import AwsSettings, HashicorpSettings, OnePasswordSettings
from gate_proxy.vault.providers import (
    AwsProvider,
    EnvProvider,
    HashicorpProvider,
    OnePasswordProvider,
)

# --------------------------------------------------------------------------- env


async def test_env_provider() -> None:
    provider = EnvProvider({"GOOD": "sk_live_env\n", "EMPTY": ""})
    secret = await provider.fetch(SecretRef("env", "GOOD"))
    assert isinstance(secret, Secret)
    assert secret.reveal() == "sk_live_env"  # one trailing newline is not part of a key
    for name, fragment in [("MISSING", "is not set"), ("EMPTY", "is empty")]:
        with pytest.raises(CredentialUnavailable, match=fragment):
            await provider.fetch(SecretRef("env", name))


async def test_env_provider_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_PROCESS_SECRET", "from-os-environ")
    secret = await EnvProvider().fetch(SecretRef("env", "GATE_TEST_PROCESS_SECRET"))
    assert secret.reveal() == "from-os-environ"


def test_secret_wrapper_never_prints() -> None:
    secret = Secret("sk_live_hidden")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret):  # noqa: UP031
        assert "sk_live_hidden" not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


# --------------------------------------------------------------------------- hashicorp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    with FakeVault() as fake:
        fake.put("gate/stripe", {"api_key": "sk_live_from_vault"})
        fake.put("gate/multi", {"user": "u", "password": "p"})
        fake.put("gate/single", {"token": "only-one"})
        yield fake


def _hc(vault: FakeVault, *, auth: str = "token", **kw: Any) -> HashicorpSettings:
    return HashicorpSettings(url=vault.url, auth=auth, **kw)  # type: ignore[arg-type]


KV = SecretRef("hashicorp", "gate/stripe", key="api_key", mount="secret")


async def test_hashicorp_token_auth_reads_kv_v2(vault: FakeVault) -> None:
    token = vault.issue_token(ttl=0)  # a non-expiring token (like a root token)
    provider = HashicorpProvider(_hc(vault), environ={"VAULT_TOKEN": token})
    assert (await provider.fetch(KV)).reveal() == "sk_live_from_vault"
    assert (await provider.fetch(KV)).reveal() == "sk_live_from_vault"
    assert vault.count("GET", "/v1/auth/token/lookup-self") == 1
    assert vault.count("GET", "/v1/secret/data/gate/stripe") == 2
    assert all(c.token_ok for c in vault.calls)
    assert vault.count("POST", "/v1/auth/token/renew-self") == 0  # ttl 0: nothing to renew
    provider.close()


@pytest.mark.parametrize(
    ("ref", "outcome"),
    [
        (SecretRef("hashicorp", "gate/single", mount="secret"), "only-one"),
        (SecretRef("hashicorp", "gate/multi", key="password", mount="secret"), "p"),
        (SecretRef("hashicorp", "gate/multi", mount="secret"), "has 2 keys; set key"),
        (SecretRef("hashicorp", "gate/stripe", key="nope", mount="secret"), "key not found"),
        (SecretRef("hashicorp", "gate/absent", key="x", mount="secret"), "not found"),
        (SecretRef("hashicorp", "gate/stripe", key="api_key", mount="other"), "not found"),
    ],
)
async def test_hashicorp_key_selection(vault: FakeVault, ref: SecretRef, outcome: str) -> None:
    provider = HashicorpProvider(_hc(vault), environ={"VAULT_TOKEN": vault.issue_token()})
    if outcome in ("only-one", "p"):
        assert (await provider.fetch(ref)).reveal() == outcome
    else:
        with pytest.raises(CredentialUnavailable, match=outcome) as info:
            await provider.fetch(ref)
        assert "sk_live_from_vault" not in str(info.value)
    provider.close()


async def test_hashicorp_token_renewed_past_half_ttl(vault: FakeVault) -> None:
    clock = Clock()
    token = vault.issue_token(ttl=100)
    provider = HashicorpProvider(_hc(vault), environ={"VAULT_TOKEN": token}, clock=clock)
    await provider.fetch(KV)
    assert vault.count("POST", "/v1/auth/token/renew-self") == 0
    clock.now += 40  # under half the lease: no renewal yet
    await provider.fetch(KV)
    assert vault.count("POST", "/v1/auth/token/renew-self") == 0
    clock.now += 20  # 60 s of 100 s
    await provider.fetch(KV)
    assert vault.count("POST", "/v1/auth/token/renew-self") == 1
    clock.now += 30  # the renewal restarted the lease: 30 s of 100 s
    await provider.fetch(KV)
    assert vault.count("POST", "/v1/auth/token/renew-self") == 1
    clock.now += 30  # 60 s again: maintain() renews without a fetch
    await provider.maintain()
    assert vault.count("POST", "/v1/auth/token/renew-self") == 2
    renewals = [c for c in vault.calls if c.path == "/v1/auth/token/renew-self"]
    assert all(c.token_ok for c in renewals)
    provider.close()


async def test_hashicorp_approle_login_and_relogin_after_revocation(vault: FakeVault) -> None:
    env = {"VAULT_ROLE_ID": vault.role_id, "VAULT_SECRET_ID": vault.secret_id}
    provider = HashicorpProvider(_hc(vault, auth="approle"), environ=env)
    assert (await provider.fetch(KV)).reveal() == "sk_live_from_vault"
    assert vault.count("POST", "/v1/auth/approle/login") == 1
    vault.revoke_all()  # e.g. the token was revoked or expired server-side
    assert (await provider.fetch(KV)).reveal() == "sk_live_from_vault"
    assert vault.count("POST", "/v1/auth/approle/login") == 2
    reads = [c.token_ok for c in vault.calls if c.path == "/v1/secret/data/gate/stripe"]
    assert reads == [True, False, True]
    provider.close()


async def test_hashicorp_approle_not_renewable_logs_in_again_when_due(vault: FakeVault) -> None:
    vault.renewable = False
    clock = Clock()
    env = {"VAULT_ROLE_ID": vault.role_id, "VAULT_SECRET_ID": vault.secret_id}
    provider = HashicorpProvider(_hc(vault, auth="approle"), environ=env, clock=clock)
    await provider.fetch(KV)
    clock.now += vault.token_ttl * 0.6
    await provider.fetch(KV)
    assert vault.count("POST", "/v1/auth/approle/login") == 2
    assert vault.count("POST", "/v1/auth/token/renew-self") == 0
    provider.close()


@pytest.mark.parametrize(
    ("auth", "env", "fragment"),
    [
        ("approle", {"VAULT_ROLE_ID": "wrong", "VAULT_SECRET_ID": "wrong"}, "InvalidRequest"),
        ("approle", {}, "VAULT_ROLE_ID is not set"),
        ("token", {}, "VAULT_TOKEN is not set"),
        ("token", {"VAULT_TOKEN": "hvs.not-a-real-token"}, "Forbidden"),
    ],
)
async def test_hashicorp_auth_failures(
    vault: FakeVault, auth: str, env: dict[str, str], fragment: str
) -> None:
    provider = HashicorpProvider(_hc(vault, auth=auth), environ=env)
    with pytest.raises(CredentialUnavailable, match=fragment) as info:
        await provider.fetch(KV)
    for value in env.values():
        assert value not in str(info.value)
    assert vault.count("GET", "/v1/secret/data/gate/stripe") == 0
    provider.close()


async def test_hashicorp_recovers_once_auth_is_possible(vault: FakeVault) -> None:
    env: dict[str, str] = {}
    provider = HashicorpProvider(_hc(vault), environ=env)
    with pytest.raises(CredentialUnavailable, match="VAULT_TOKEN is not set"):
        await provider.fetch(KV)
    env["VAULT_TOKEN"] = vault.issue_token()  # e.g. a sidecar wrote the token
    assert (await provider.fetch(KV)).reveal() == "sk_live_from_vault"
    assert vault.count("GET", "/v1/auth/token/lookup-self") == 1
    assert [c.token_ok for c in vault.calls] == [True, True]  # no read without a token
    provider.close()


async def test_hashicorp_outage_and_slow_server(vault: FakeVault) -> None:
    token = vault.issue_token()
    provider = HashicorpProvider(_hc(vault, timeout_seconds=0.3), environ={"VAULT_TOKEN": token})
    await provider.fetch(KV)
    vault.delay = 5
    with pytest.raises(CredentialUnavailable, match=r"timed out after 0\.3s"):
        await provider.fetch(KV)
    vault.stop()
    with pytest.raises(CredentialUnavailable, match="cannot reach Vault"):
        await provider.fetch(KV)
    provider.close()


async def test_hashicorp_no_address() -> None:
    provider = HashicorpProvider(HashicorpSettings(), environ={"VAULT_TOKEN": "x"})
    with pytest.raises(CredentialUnavailable, match="no Vault address"):
        await provider.fetch(KV)


async def test_hashicorp_vault_addr_from_environment(vault: FakeVault) -> None:
    env = {"VAULT_ADDR": vault.url, "VAULT_TOKEN": vault.issue_token()}
    provider = HashicorpProvider(HashicorpSettings(), environ=env)
    assert (await provider.fetch(KV)).reveal() == "sk_live_from_vault"
    provider.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
async def test_hashicorp_tls_verify_option(tmp_path: Path) -> None:
    ca, cert, key = make_tls_files(tmp_path)
    with FakeVault(tls=(cert, key)) as vault:
        vault.put("gate/stripe", {"api_key": "sk_live_tls"})
        env = {"VAULT_TOKEN": vault.issue_token()}
        assert vault.url.startswith("https://127.0.0.1:")
        outcomes = {}
        for verify in (True, str(ca), False):
            provider = HashicorpProvider(_hc(vault, verify=verify), environ=env)
            try:
                outcomes[str(verify)] = (await provider.fetch(KV)).reveal()
            except CredentialUnavailable as exc:
                outcomes[str(verify)] = str(exc)
            provider.close()
    assert "TLS verification failed" in outcomes["True"]  # unknown CA: refused
    assert outcomes[str(ca)] == "sk_live_tls"  # our CA bundle: trusted
    assert outcomes["False"] == "sk_live_tls"  # verification off


# --------------------------------------------------------------------------- aws (moto)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _sm(url: str) -> Any:
    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=url)


@pytest.mark.usefixtures("aws_env")
async def test_aws_secret_string_json_key_and_binary(moto: MotoServer) -> None:
    sm = _sm(moto.url)
    prefix = f"gate/{uuid.uuid4().hex}"
    sm.create_secret(Name=f"{prefix}/plain", SecretString="sk_live_from_aws")
    sm.create_secret(Name=f"{prefix}/json", SecretString='{"api_key": "sk_json", "n": 7}')
    sm.create_secret(Name=f"{prefix}/bin", SecretBinary=b"binary-secret")
    sm.create_secret(Name=f"{prefix}/text", SecretString="not json")
    provider = AwsProvider(AwsSettings(region="us-east-1", endpoint_url=moto.url))

    cases = [
        (SecretRef("aws", f"{prefix}/plain"), "sk_live_from_aws"),
        (SecretRef("aws", f"{prefix}/json", key="api_key"), "sk_json"),
        (SecretRef("aws", f"{prefix}/json", key="n"), "7"),
        (SecretRef("aws", f"{prefix}/bin"), "binary-secret"),
        # Without a key the SecretString is the credential, even when it is JSON.
        (SecretRef("aws", f"{prefix}/json"), '{"api_key": "sk_json", "n": 7}'),
    ]
    for ref, expected in cases:
        assert (await provider.fetch(ref)).reveal() == expected
    arn = sm.describe_secret(SecretId=f"{prefix}/plain")["ARN"]
    assert (await provider.fetch(SecretRef("aws", arn))).reveal() == "sk_live_from_aws"

    errors = [
        (SecretRef("aws", f"{prefix}/missing"), "ResourceNotFoundException"),
        (SecretRef("aws", f"{prefix}/json", key="nope"), "key not found"),
        (SecretRef("aws", f"{prefix}/text", key="k"), "is not a JSON object"),
    ]
    for ref, fragment in errors:
        with pytest.raises(CredentialUnavailable, match=fragment) as info:
            await provider.fetch(ref)
        assert "sk_json" not in str(info.value) and "not json" not in str(info.value)
    provider.close()


@pytest.mark.usefixtures("aws_env")
async def test_aws_outage() -> None:
    server = start_moto_server()
    try:
        _sm(server.url).create_secret(Name="gate/outage", SecretString="sk_before_outage")
        provider = AwsProvider(
            AwsSettings(region="us-east-1", endpoint_url=server.url, max_attempts=1)
        )
        ref = SecretRef("aws", "gate/outage")
        assert (await provider.fetch(ref)).reveal() == "sk_before_outage"
    finally:
        server.stop()
    with pytest.raises(CredentialUnavailable, match="cannot reach Secrets Manager"):
        await provider.fetch(ref)
    provider.close()


async def test_aws_no_credentials(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    provider = AwsProvider(AwsSettings(region="us-east-1", endpoint_url=moto.url))
    with pytest.raises(CredentialUnavailable, match="no AWS credentials"):
        await provider.fetch(SecretRef("aws", "anything"))


# --------------------------------------------------------------------------- 1password


class FakeSecrets:
    """Stands in for ``onepassword.secrets.Secrets``: the same async ``resolve``."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.calls: list[str] = []

    async def resolve(self, secret_reference: str) -> str:
        self.calls.append(secret_reference)
        if secret_reference not in self.values:
            # The SDK raises a plain Exception carrying the core's message.
            raise Exception("error resolving secret reference: no item matched the query")
        return self.values[secret_reference]


class FakeOnePasswordClient:
    def __init__(self, values: dict[str, str]) -> None:
        self.secrets = FakeSecrets(values)


def test_fake_matches_the_installed_sdk() -> None:
    """The fake must keep the real SDK's shape: ``Client.authenticate`` and an async
    ``client.secrets.resolve(secret_reference)``."""
    from onepassword import Client, Secrets

    real = inspect.signature(Secrets.resolve)
    fake = inspect.signature(FakeSecrets.resolve)
    assert list(real.parameters) == list(fake.parameters) == ["self", "secret_reference"]
    assert inspect.iscoroutinefunction(Secrets.resolve)
    assert inspect.iscoroutinefunction(FakeSecrets.resolve)
    assert "secrets" in Client.__annotations__
    auth = inspect.signature(Client.authenticate)
    assert {"auth", "integration_name", "integration_version"} <= set(auth.parameters)


async def test_onepassword_resolves_refs_with_service_account_token() -> None:
    client = FakeOnePasswordClient({"op://AI-Agents/Stripe/key": "sk_live_from_1password"})
    tokens: list[str] = []

    async def factory(token: str) -> FakeOnePasswordClient:
        tokens.append(token)
        return client

    provider = OnePasswordProvider(
        OnePasswordSettings(token_env="OP_TOKEN"),
        client_factory=factory,
        environ={"OP_TOKEN": "ops_service_account"},
    )
    ref = SecretRef("onepassword", "op://AI-Agents/Stripe/key")
    assert (await provider.fetch(ref)).reveal() == "sk_live_from_1password"
    assert (await provider.fetch(ref)).reveal() == "sk_live_from_1password"
    assert tokens == ["ops_service_account"]  # authenticated once, client reused
    assert client.secrets.calls == ["op://AI-Agents/Stripe/key"] * 2

    with pytest.raises(CredentialUnavailable, match="cannot resolve op://AI-Agents/Nope/key"):
        await provider.fetch(SecretRef("onepassword", "op://AI-Agents/Nope/key"))


async def test_onepassword_failures() -> None:
    async def refusing(token: str) -> FakeOnePasswordClient:
        raise Exception("invalid service account token")

    settings = OnePasswordSettings()
    ref = SecretRef("onepassword", "op://v/i/f")
    missing = OnePasswordProvider(settings, client_factory=refusing, environ={})
    with pytest.raises(CredentialUnavailable, match="OP_SERVICE_ACCOUNT_TOKEN is not set"):
        await missing.fetch(ref)
    bad = OnePasswordProvider(
        settings, client_factory=refusing, environ={"OP_SERVICE_ACCOUNT_TOKEN": "ops_bad"}
    )
    with pytest.raises(CredentialUnavailable, match="authentication failed") as info:
        await bad.fetch(ref)
    assert "ops_bad" not in str(info.value)
    empty = OnePasswordProvider(
        settings,
        client_factory=lambda token: _async(FakeOnePasswordClient({"op://v/i/f": ""})),
        environ={"OP_SERVICE_ACCOUNT_TOKEN": "ops_ok"},
    )
    with pytest.raises(CredentialUnavailable, match="value is empty"):
        await empty.fetch(ref)


async def _async(value: Any) -> Any:
    return value
