"""VaultManager: caching and TTL, coalescing, timeouts, outages, injection planning,
scrubbing, and a `vault check` that never shows a value. Providers are real: env, hvac
against the local Vault fake, boto3 against moto, 1Password with a fake SDK client."""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import brotli
import pytest
import zstandard
from vault_fake import MOTO_ENV, FakeVault, MotoServer, start_moto_server

from gate_proxy.vault import (
    CredentialUnavailable,
    Injection,
    VaultManager,
    parse_vault_config,
    scrub,
    scrub_text,
)
from gate_proxy.vault.cli import vault_check
from gate_proxy.vault.config import OnePasswordSettings
from gate_proxy.vault.providers import OnePasswordProvider
from gate_proxy.vault.scrubbing import (
    BodyDecodeError,
    BodyDecoder,
    StreamScrubber,
    UnsupportedEncoding,
    check_transfer_coding,
    content_coding,
    decode_body,
    scrub_fields,
    without_fields,
)

VAULT_SECRET = "sk_live_vault_5f3c2a9e"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    with FakeVault() as fake:
        fake.put("gate/stripe", {"api_key": VAULT_SECRET})
        yield fake


def hashicorp_manager(
    vault: FakeVault,
    monkeypatch: pytest.MonkeyPatch,
    *,
    ttl: float = 300,
    timeout: float = 5,
    clock: Clock | None = None,
    extra: str = "",
) -> VaultManager:
    monkeypatch.setenv("GATE_TEST_VAULT_TOKEN", vault.issue_token())
    text = f"""\
provider: hashicorp
timeout_seconds: {timeout}
hashicorp:
  url: {vault.url}
  token_env: GATE_TEST_VAULT_TOKEN
credentials:
  stripe.refund:
    path: gate/stripe
    key: api_key
    inject: basic
    ttl_seconds: {ttl}
  stripe.charge:
    path: gate/stripe
    key: api_key
    ttl_seconds: {ttl}
{extra}"""
    return VaultManager(parse_vault_config(text, "test-vault.yaml"), clock=clock or time.monotonic)


def reads(vault: FakeVault) -> int:
    return vault.count("GET", "/v1/secret/data/gate/stripe")


# --------------------------------------------------------------------------- caching


async def test_cached_for_ttl_then_refetched(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    manager = hashicorp_manager(vault, monkeypatch, ttl=60, clock=clock)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    assert await manager.secret_for(injection) == VAULT_SECRET
    assert await manager.secret_for(injection) == VAULT_SECRET
    assert reads(vault) == 1
    # Cached per (provider, ref): another destination with the same reference shares it.
    other = manager.injection_for("stripe.charge")
    assert other is not None and other.ref == injection.ref
    assert await manager.secret_for(other) == VAULT_SECRET
    assert reads(vault) == 1
    clock.now += 59.9
    await manager.secret_for(injection)
    assert reads(vault) == 1
    clock.now += 0.1  # TTL reached: the value is gone and fetched again
    await manager.secret_for(injection)
    assert reads(vault) == 2
    manager.close()


async def test_ttl_zero_fetches_every_time(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = hashicorp_manager(vault, monkeypatch, ttl=0)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    for expected in range(1, 6):
        assert await manager.secret_for(injection) == VAULT_SECRET
        assert reads(vault) == expected
    assert manager._cache == {}  # nothing kept in memory at all
    manager.close()


async def test_forget_expired_drops_values_from_memory(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    manager = hashicorp_manager(vault, monkeypatch, ttl=10, clock=clock)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    await manager.secret_for(injection)
    assert len(manager._cache) == 1
    clock.now += 9
    manager.forget_expired()
    assert len(manager._cache) == 1
    clock.now += 1
    manager.forget_expired()
    assert manager._cache == {}
    await manager.secret_for(injection)
    clock.now += 10
    await manager.maintain()  # the periodic pass forgets too
    assert manager._cache == {}
    manager.close()


async def test_shorter_ttl_of_a_sharing_destination_wins(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    extra = "  fresh:\n    path: gate/stripe\n    key: api_key\n    ttl_seconds: 0\n"
    manager = hashicorp_manager(vault, monkeypatch, ttl=300, clock=clock, extra=extra)
    cached, fresh = manager.injection_for("stripe.refund"), manager.injection_for("fresh")
    assert cached is not None and fresh is not None
    await manager.secret_for(cached)
    await manager.secret_for(fresh)  # ttl 0 never uses the cache
    await manager.secret_for(cached)  # ...and does not evict the 300 s entry
    assert reads(vault) == 2
    manager.close()


# --------------------------------------------------------------------------- coalescing


async def test_concurrent_fetches_are_coalesced_into_one_vault_call(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.delay = 0.3  # keep the first fetch in flight while the others arrive
    manager = hashicorp_manager(vault, monkeypatch, ttl=0)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    results = await asyncio.gather(*(manager.secret_for(injection) for _ in range(25)))
    assert results == [VAULT_SECRET] * 25
    assert reads(vault) == 1
    assert manager._inflight == {}
    manager.close()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = start_moto_server()
    yield server
    server.stop()


async def test_concurrent_fetches_are_coalesced_into_one_aws_call(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    name = f"gate/{uuid.uuid4().hex}"
    boto3.client("secretsmanager", endpoint_url=moto.url).create_secret(
        Name=name, SecretString='{"token": "pat-from-aws-0c1d"}'
    )
    text = f"""\
aws:
  region: us-east-1
  endpoint_url: {moto.url}
credentials:
  hubspot.contacts:
    provider: aws
    ref: {name}
    key: token
"""
    manager = VaultManager(parse_vault_config(text))
    injection = manager.injection_for("hubspot.contacts")
    assert injection is not None and injection.ref == f"aws:{name}#token"
    # Count GetSecretValue requests at the SDK's own event hook, as they are sent.
    sent: list[str] = []
    client = manager._providers["aws"].client  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-send.secrets-manager.GetSecretValue", lambda **kw: sent.append("x")
    )
    results = await asyncio.gather(*(manager.secret_for(injection) for _ in range(20)))
    assert results == ["pat-from-aws-0c1d"] * 20
    assert len(sent) == 1
    manager.close()


# --------------------------------------------------------------------------- failures


async def test_timeout_gives_credential_unavailable(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault.delay = 3  # the fake stalls the KV read (stop() releases it)
    manager = hashicorp_manager(vault, monkeypatch, timeout=0.3)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gate.vault"):
        results = await asyncio.gather(
            *(manager.secret_for(injection) for _ in range(5)), return_exceptions=True
        )
    elapsed = time.monotonic() - started
    assert all(isinstance(r, CredentialUnavailable) for r in results)
    assert "timed out after 0.3s" in str(results[0])
    assert elapsed < 2.5
    assert reads(vault) == 1  # the five callers shared one attempt
    record = next(r for r in caplog.records if r.getMessage() == "credential unavailable")
    assert (record.destination, record.ref) == (  # type: ignore[attr-defined]
        "stripe.refund",
        "hashicorp:secret/gate/stripe#api_key",
    )
    assert manager._cache == {}
    manager.close()


async def test_outage_fails_closed_and_cache_does_not_outlive_ttl(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    manager = hashicorp_manager(vault, monkeypatch, ttl=30, clock=clock)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    assert await manager.secret_for(injection) == VAULT_SECRET
    vault.stop()
    assert await manager.secret_for(injection) == VAULT_SECRET  # within TTL: from memory
    clock.now += 30
    with pytest.raises(CredentialUnavailable, match="cannot reach Vault") as info:
        await manager.secret_for(injection)
    assert VAULT_SECRET not in str(info.value)
    manager.close()


async def test_missing_env_var_is_credential_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_TEST_UNSET_KEY", raising=False)
    manager = VaultManager(parse_vault_config("credentials:\n  a:\n    ref: GATE_TEST_UNSET_KEY\n"))
    injection = manager.injection_for("a")
    assert injection is not None
    with pytest.raises(CredentialUnavailable, match="GATE_TEST_UNSET_KEY is not set"):
        await manager.secret_for(injection)


async def test_cancelled_caller_does_not_cancel_the_shared_fetch(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.delay = 0.3
    manager = hashicorp_manager(vault, monkeypatch)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    first = asyncio.create_task(manager.secret_for(injection))
    second = asyncio.create_task(manager.secret_for(injection))
    await asyncio.sleep(0.05)
    first.cancel()  # e.g. the agent disconnected
    assert await second == VAULT_SECRET
    assert first.cancelled()
    assert reads(vault) == 1
    manager.close()


# --------------------------------------------------------------------------- planning

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def _inj(**kw: Any) -> Injection:
    return Injection(destination="d", provider="env", ref="env:K", **kw)


PLANS = [
    # (injection, headers, query, url)
    (_inj(), {"Authorization": f"Bearer {SECRET}"}, {}, None),
    (
        _inj(header="X-Api-Key", template="{secret}"),
        {"X-Api-Key": SECRET},
        {},
        None,
    ),
    (
        _inj(mode="basic", template=None),
        {"Authorization": "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()},
        {},
        None,
    ),
    (
        _inj(mode="basic", template=None, username="bot@example.com/token"),
        {
            "Authorization": "Basic "
            + base64.b64encode(f"bot@example.com/token:{SECRET}".encode()).decode()
        },
        {},
        None,
    ),
    (_inj(mode="query", header=None, template=None, query_param="key"), {}, {"key": SECRET}, None),
]


@pytest.mark.parametrize(("injection", "headers", "query", "url"), PLANS)
def test_plan(injection: Injection, headers: dict, query: dict, url: str | None) -> None:
    applied = VaultManager().plan(injection, SECRET)
    assert dict(applied.headers) == headers
    assert dict(applied.query) == query
    assert applied.url == url
    # Everything injected is in the scrub list, longest first.
    for value in [*headers.values(), *query.values()]:
        assert value.encode() in applied.scrub
    assert SECRET.encode() in applied.scrub
    assert list(applied.scrub) == sorted(applied.scrub, key=len, reverse=True)
    assert SECRET not in repr(applied)


def test_plan_basic_scrubs_the_token_and_encoded_forms() -> None:
    secret = "p@ss/word+1"
    applied = VaultManager().plan(_inj(mode="basic", template=None, username="u"), secret)
    token = base64.b64encode(b"u:p@ss/word+1")
    assert {token, b"Basic " + token, b"p%40ss%2Fword%2B1", secret.encode()} <= set(applied.scrub)


def test_plan_url_mode() -> None:
    hook = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX"
    applied = VaultManager().plan(_inj(mode="url", header=None, template=None), hook)
    assert applied.url == hook
    assert applied.headers == {} and applied.query == {}
    assert b"/services/T000/B000/XXXXXXXXXXXX" in applied.scrub
    with pytest.raises(CredentialUnavailable, match="not an http") as info:
        VaultManager().plan(_inj(mode="url", header=None, template=None), "not-a-url-secret")
    assert "not-a-url-secret" not in str(info.value)


@pytest.mark.parametrize("bad", ["abc\r\nX-Injected: 1", "abc\ndef", "abc\x00"])
def test_plan_refuses_header_splitting(bad: str) -> None:
    with pytest.raises(CredentialUnavailable, match="line break") as info:
        VaultManager().plan(_inj(), bad)
    assert bad not in str(info.value)


def test_scrub_replaces_every_echo() -> None:
    applied = VaultManager().plan(_inj(), SECRET)
    body = (
        b'{"echo": {"headers": {"authorization": "Bearer ' + SECRET.encode() + b'"}},'
        b' "again": "' + SECRET.encode() + b'", "url": "/x?k=' + SECRET.encode() + b'"}'
    )
    cleaned = scrub(body, applied.scrub)
    assert SECRET.encode() not in cleaned
    assert cleaned.count(b"[REDACTED]") == 3
    assert b'"authorization": "[REDACTED]"' in cleaned  # the whole header value went
    assert VaultManager.scrub(b"nothing here", applied.scrub) == b"nothing here"
    assert scrub_text(f"x-echo: Bearer {SECRET}", applied.scrub) == "x-echo: [REDACTED]"
    assert VaultManager.scrub_text(f"a {SECRET} b", [SECRET]) == "a [REDACTED] b"


def test_agent_supplied_credentials() -> None:
    injection = parse_vault_config(
        "credentials:\n  d:\n    ref: K\n    header: X-Api-Key\n    strip_query: [api_key]\n"
    ).injections["d"]
    assert injection.agent_supplied(["AUTHORIZATION", "x-api-key", "Accept"], ["api_key"]) == (
        "AUTHORIZATION",
        "x-api-key",
        "api_key",
    )


# --------------------------------------------------------------------------- check / CLI


class _FakeSecrets:
    async def resolve(self, secret_reference: str) -> str:
        if secret_reference == "op://AI-Agents/Stripe/key":
            return "sk_live_from_1password_77"
        raise Exception("no item matched the secret reference query")


class _FakeClient:
    secrets = _FakeSecrets()


async def test_check_reports_without_values(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GATE_TEST_ENV_KEY", "sk_live_env_1a2b3c")
    monkeypatch.setenv("GATE_TEST_BAD_KEY", "line\nbreak-secret")
    monkeypatch.setenv("GATE_TEST_VAULT_TOKEN", vault.issue_token())
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", "ops_check_token")
    monkeypatch.delenv("GATE_TEST_MISSING", raising=False)
    text = f"""\
hashicorp:
  url: {vault.url}
  token_env: GATE_TEST_VAULT_TOKEN
credentials:
  env.ok:
    ref: GATE_TEST_ENV_KEY
  env.shared:
    ref: GATE_TEST_ENV_KEY
    inject: basic
  env.missing:
    ref: GATE_TEST_MISSING
  env.badvalue:
    ref: GATE_TEST_BAD_KEY
  vault.ok:
    provider: hashicorp
    path: gate/stripe
    key: api_key
  vault.missing:
    provider: hashicorp
    path: gate/none
    key: x
  op.ok:
    provider: onepassword
    ref: op://AI-Agents/Stripe/key
  op.missing:
    provider: onepassword
    ref: op://AI-Agents/Nope/key
"""

    async def factory(token: str) -> _FakeClient:
        return _FakeClient()

    provider = OnePasswordProvider(OnePasswordSettings(), client_factory=factory)
    manager = VaultManager(parse_vault_config(text), providers={"onepassword": provider})
    with caplog.at_level(logging.DEBUG):
        results = await manager.check()
    by_dest = {d: (ok, msg) for d, ok, msg in results}
    assert [d for d, _, _ in results] == list(manager.destinations)
    assert {d for d, (ok, _) in by_dest.items() if ok} == {
        "env.ok",
        "env.shared",
        "vault.ok",
        "op.ok",
    }
    assert "GATE_TEST_MISSING is not set" in by_dest["env.missing"][1]
    assert "line break" in by_dest["env.badvalue"][1]
    assert "not found" in by_dest["vault.missing"][1]
    assert "cannot resolve op://AI-Agents/Nope/key" in by_dest["op.missing"][1]
    assert by_dest["vault.ok"][1] == "resolved hashicorp:secret/gate/stripe#api_key (header)"
    assert manager._cache == {}  # check does not keep values

    everything = repr(results) + caplog.text + repr(manager)
    for value in (
        "sk_live_env_1a2b3c",
        "break-secret",
        VAULT_SECRET,
        "sk_live_from_1password_77",
        "ops_check_token",
    ):
        assert value not in everything
    manager.close()


def test_vault_check_cli(
    tmp_path: Path,
    vault: FakeVault,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("GATE_TEST_VAULT_TOKEN", vault.issue_token())
    monkeypatch.setenv("GATE_TEST_CLI_KEY", "sk_live_cli_9z8y7x")
    (tmp_path / "vault.yaml").write_text(
        f"""\
hashicorp:
  url: {vault.url}
  token_env: GATE_TEST_VAULT_TOKEN
credentials:
  stripe.refund:
    provider: hashicorp
    path: gate/stripe
    key: api_key
  sendgrid.send:
    ref: GATE_TEST_CLI_KEY
"""
    )
    with caplog.at_level(logging.DEBUG):
        assert vault_check(tmp_path) == 0
    out = capsys.readouterr().out
    assert "ok     stripe.refund  resolved hashicorp:secret/gate/stripe#api_key" in out
    assert "2 ok, 0 failed" in out
    assert VAULT_SECRET not in out + caplog.text
    assert "sk_live_cli_9z8y7x" not in out + caplog.text

    monkeypatch.delenv("GATE_TEST_CLI_KEY")
    assert vault_check(tmp_path) == 1
    out = capsys.readouterr().out
    assert "error  sendgrid.send  env: environment variable GATE_TEST_CLI_KEY is not set" in out
    assert "1 ok, 1 failed" in out

    (tmp_path / "vault.yaml").write_text("credentials:\n  a:\n    reff: X\n")
    assert vault_check(tmp_path) == 2
    assert "vault.yaml:3: credentials.a.reff: unknown key" in capsys.readouterr().out

    (tmp_path / "vault.yaml").unlink()
    assert vault_check(tmp_path) == 0
    assert "not found" in capsys.readouterr().out


def test_repr_of_objects_holding_secrets(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = hashicorp_manager(vault, monkeypatch)
    injection = manager.injection_for("stripe.refund")
    assert injection is not None
    assert asyncio.run(manager.secret_for(injection)) == VAULT_SECRET
    cached = next(iter(manager._cache.values()))
    for obj in (manager, cached, cached.secret, manager.plan(injection, VAULT_SECRET)):
        assert VAULT_SECRET not in repr(obj)
    manager.close()


# --------------------------------------------------------------------------- response scrubbing
# gate_proxy.vault.scrubbing: content codings, decoders, the stream scrubber, header fields.

ECHO_SECRET = b"sk_live_echo_0123456789"
ECHO_SCRUBS = (b"Bearer " + ECHO_SECRET, ECHO_SECRET)


@pytest.mark.parametrize(
    ("values", "coding"),
    [
        ([], None),
        ([b""], None),
        ([b"identity"], None),
        ([b"gzip"], "gzip"),
        ([b"GZip"], "gzip"),
        ([b"x-gzip"], "gzip"),
        ([" deflate "], "deflate"),
        ([b"br"], "br"),
        ([b"zstd"], "zstd"),
        ([b"identity, gzip"], "gzip"),
        ([b"gzip", b"identity"], "gzip"),
    ],
)
def test_content_coding(values: list[bytes | str], coding: str | None) -> None:
    assert content_coding(values) == coding


@pytest.mark.parametrize(
    "values",
    [
        [b"gzip, br"],  # stacked in one field
        [b"gzip", b"gzip"],  # stacked over two fields
        [b"compress"],
        [b"x-compress"],
        [b"base64"],  # a Python codec, but no HTTP content coding
        [b"aes128gcm"],
        [b"gzip;q=1"],
    ],
)
def test_content_coding_refuses_what_it_cannot_undo(values: list[bytes]) -> None:
    with pytest.raises(UnsupportedEncoding):
        content_coding(values)


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        ([], True),
        ([b"chunked"], True),
        ([b"Chunked"], True),
        ([b"identity"], True),
        ([b"gzip, chunked"], False),
        ([b"gzip", b"chunked"], False),
        ([b"deflate"], False),
        ([b"compress, chunked"], False),
    ],
)
def test_check_transfer_coding(values: list[bytes], ok: bool) -> None:
    if ok:
        check_transfer_coding(values)
    else:
        with pytest.raises(UnsupportedEncoding, match="transfer coding"):
            check_transfer_coding(values)


PLAIN = b"".join(b"line %d: %s\n" % (i, ECHO_SECRET) for i in range(2000))
ENCODINGS = [
    ("gzip", gzip.compress(PLAIN)),
    ("gzip", gzip.compress(PLAIN[:1000]) + gzip.compress(PLAIN[1000:]) + b"\0\0"),  # 2 members
    ("deflate", zlib.compress(PLAIN)),
    ("deflate", zlib.compress(PLAIN)[2:-4]),  # raw deflate, as some servers send it
    ("br", brotli.compress(PLAIN)),
    ("zstd", zstandard.ZstdCompressor().compress(PLAIN)),
    (
        "zstd",
        zstandard.ZstdCompressor().compress(PLAIN[:999])
        + zstandard.ZstdCompressor().compress(PLAIN[999:]),
    ),
]


@pytest.mark.parametrize(("coding", "encoded"), ENCODINGS)
@pytest.mark.parametrize("piece", [1, 7, 4096, 10**9])
def test_body_decoder_in_any_pieces(coding: str, encoded: bytes, piece: int) -> None:
    decoder = BodyDecoder(coding)
    parts = [decoder.feed(encoded[i : i + piece]) for i in range(0, len(encoded), piece)]
    assert b"".join(parts) + decoder.finish() == PLAIN
    assert decode_body(encoded, coding) == PLAIN


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_body_decoder_refuses_garbage(coding: str) -> None:
    with pytest.raises(BodyDecodeError) as info:
        decode_body(
            b"\x1f\x8b\x08\x00" + b"\xff" * 64 if coding == "gzip" else b"\xff" * 64, coding
        )
    assert "\xff" not in str(info.value)


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", lambda data: brotli.compress(data, quality=1)),
        ("zstd", zstandard.ZstdCompressor().compress),
    ],
)
def test_body_decoder_stops_a_decompression_bomb(coding: str, compress: Any) -> None:
    bomb = compress(b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    decoder = BodyDecoder(coding, max_output=1024 * 1024)
    with pytest.raises(BodyDecodeError, match="more than"):
        decoder.feed(bomb)
    assert decoder.decoded < 4 * 1024 * 1024  # it stopped early, not after decoding it all


def test_unsupported_coding_has_no_decoder() -> None:
    with pytest.raises(UnsupportedEncoding):
        BodyDecoder("compress")


def feed_all(scrubber: StreamScrubber, chunks: list[bytes]) -> bytes:
    out: list[bytes] = []
    for chunk in [*chunks, b""]:
        produced = scrubber(chunk)
        assert all(produced), "an empty chunk would end mitmproxy's chunked body"
        out += produced
    return b"".join(out)


BODY = b"data: Bearer " + ECHO_SECRET + b"\n\nraw " + ECHO_SECRET + b" tail"
SCRUBBED_BODY = b"data: [REDACTED]\n\nraw [REDACTED] tail"


@pytest.mark.parametrize("cut", range(1, len(BODY)))
def test_stream_scrubber_finds_a_secret_split_anywhere(cut: int) -> None:
    assert feed_all(StreamScrubber(ECHO_SCRUBS), [BODY[:cut], BODY[cut:]]) == SCRUBBED_BODY


def test_stream_scrubber_byte_by_byte_and_small_chunks() -> None:
    one_by_one = [BODY[i : i + 1] for i in range(len(BODY))]
    assert feed_all(StreamScrubber(ECHO_SCRUBS), one_by_one) == SCRUBBED_BODY
    assert feed_all(StreamScrubber(ECHO_SCRUBS), [b"hi", b"!"]) == b"hi!"


@pytest.mark.parametrize("piece", [1, 5, 64])
def test_stream_scrubber_decodes_before_it_scrubs(piece: int) -> None:
    compressed = gzip.compress(BODY * 50)
    chunks = [compressed[i : i + piece] for i in range(0, len(compressed), piece)]
    scrubber = StreamScrubber(ECHO_SCRUBS, BodyDecoder("gzip"))
    assert feed_all(scrubber, chunks) == SCRUBBED_BODY * 50


def test_stream_scrubber_drops_everything_after_a_decode_error() -> None:
    errors: list[BodyDecodeError] = []
    scrubber = StreamScrubber(ECHO_SCRUBS, BodyDecoder("gzip"), on_error=errors.append)
    compressor = zlib.compressobj(wbits=31)
    good = compressor.compress(b"x" * 100) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert b"".join(scrubber(good)) == b"x" * (100 - scrubber.keep)
    assert scrubber(b"\xff\xff" + ECHO_SECRET) == []
    assert scrubber(b"more") == [] and scrubber(b"") == []
    assert len(errors) == 1


def test_scrub_fields() -> None:
    fields = (
        (b"X-Echo", b"Bearer " + ECHO_SECRET),
        (b"X-" + ECHO_SECRET, b"value"),  # a secret in a name: the field goes
        (b"Set-Cookie", b"a=1; k=" + ECHO_SECRET),
        (b"X-Plain", b"untouched"),
    )
    assert scrub_fields(fields, ECHO_SCRUBS) == (
        (b"X-Echo", b"[REDACTED]"),
        (b"Set-Cookie", b"a=1; k=[REDACTED]"),
        (b"X-Plain", b"untouched"),
    )
    assert scrub_fields((), ECHO_SCRUBS) == ()


def test_without_fields() -> None:
    fields = ((b"Content-Length", b"5"), (b"content-encoding", b"gzip"), (b"X-A", b"1"))
    assert without_fields(fields, [b"content-length", b"CONTENT-ENCODING"]) == ((b"X-A", b"1"),)
