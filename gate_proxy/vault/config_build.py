"""``vault.yaml`` data -> :class:`VaultConfig`: one builder per block, validated through
:class:`~gate_proxy.vault.config_schema._Reader` (file, line and field in every error).

Nothing here fetches a secret; it only checks the *shape* of references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gate_proxy.core.located import FieldPath
from gate_proxy.vault.config_schema import (
    _AWS_KEYS,
    _ENTRY_KEYS,
    _ENV_NAME,
    _EXECUTE_KEYS,
    _HASHICORP_KEYS,
    _HEADER_NAME,
    _INJECT_MODES,
    _ONEPASSWORD_KEYS,
    _REF_KEYS,
    _SECRET_PLACEHOLDER,
    _TOP_KEYS,
    _kind,
    _Reader,
)
from gate_proxy.vault.model import (
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TTL_SECONDS,
    AgentCredentialAction,
    AwsSettings,
    ExecuteSpec,
    HashicorpSettings,
    Injection,
    OnePasswordSettings,
    SecretRef,
    VaultConfig,
)


def _hashicorp(r: _Reader, raw: Any) -> HashicorpSettings:
    path: FieldPath = ("hashicorp",)
    if raw is None:
        return HashicorpSettings()
    data = r.mapping(raw, path, _HASHICORP_KEYS)
    url = r.one_of(data, path, "url", "address")
    mount = r.string(data["mount"], (*path, "mount")).strip("/") if "mount" in data else "secret"
    env_keys = {}
    for name in ("token_env", "role_id_env", "secret_id_env"):
        if name in data:
            env_keys[name] = r.string(data[name], (*path, name), pattern=_ENV_NAME)
    if "auth" in data:
        auth = r.choice(data["auth"], (*path, "auth"), ("token", "approle"))
    else:
        # Zehrava's block has role_id_env/secret_id_env and no `auth`: that means AppRole.
        auth = "approle" if {"role_id_env", "secret_id_env"} & env_keys.keys() else "token"
    verify: bool | str = True
    if "verify" in data:
        value = data["verify"]
        verify = value if isinstance(value, bool) else r.string(value, (*path, "verify"))
    return HashicorpSettings(
        url=r.string(url[1], (*path, url[0])).rstrip("/") if url else None,
        mount=mount,
        auth=auth,  # type: ignore[arg-type]
        approle_mount=(
            r.string(data["approle_mount"], (*path, "approle_mount")).strip("/")
            if "approle_mount" in data
            else "approle"
        ),
        verify=verify,
        namespace=r.string(data["namespace"], (*path, "namespace"))
        if "namespace" in data
        else None,
        timeout_seconds=(
            r.number(data["timeout_seconds"], (*path, "timeout_seconds"), positive=True)
            if "timeout_seconds" in data
            else None
        ),
        **env_keys,
    )


def _aws(r: _Reader, raw: Any) -> AwsSettings:
    path: FieldPath = ("aws",)
    if raw is None:
        return AwsSettings()
    data = r.mapping(raw, path, _AWS_KEYS)
    max_attempts = 2
    if "max_attempts" in data:
        value = data["max_attempts"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
            r.fail((*path, "max_attempts"), "must be an integer from 1 to 10")
        max_attempts = value
    return AwsSettings(
        region=r.string(data["region"], (*path, "region")) if "region" in data else None,
        endpoint_url=(
            r.string(data["endpoint_url"], (*path, "endpoint_url"))
            if "endpoint_url" in data
            else None
        ),
        timeout_seconds=(
            r.number(data["timeout_seconds"], (*path, "timeout_seconds"), positive=True)
            if "timeout_seconds" in data
            else None
        ),
        max_attempts=max_attempts,
    )


def _onepassword(r: _Reader, raw: Any, key: str) -> OnePasswordSettings:
    path: FieldPath = (key,)
    if raw is None:
        return OnePasswordSettings()
    data = r.mapping(raw, path, _ONEPASSWORD_KEYS)
    token = r.one_of(data, path, "token_env", "service_account_token_env")
    vault = r.string(data["vault"], (*path, "vault")) if "vault" in data else None
    return OnePasswordSettings(
        token_env=(
            r.string(token[1], (*path, token[0]), pattern=_ENV_NAME)
            if token
            else "OP_SERVICE_ACCOUNT_TOKEN"
        ),
        vault=vault,
        integration_name=(
            r.string(data["integration_name"], (*path, "integration_name"))
            if "integration_name" in data
            else "Gate Proxy"
        ),
    )


def _ref(
    r: _Reader,
    data: dict[str, Any],
    path: FieldPath,
    provider: str,
    settings: tuple[HashicorpSettings, OnePasswordSettings],
) -> SecretRef:
    hashicorp, onepassword = settings
    chosen = next((k for k in _REF_KEYS[provider] if k in data), None)
    if chosen is None:
        r.fail(path, f"provider {provider} needs a reference: {' or '.join(_REF_KEYS[provider])}")
    specific = [k for k in _REF_KEYS[provider] if k in data and k != "ref"]
    if len(specific) > 1:
        r.fail((*path, specific[1]), f"give only one of {' / '.join(specific)}")
    where = (*path, chosen)
    name = r.string(data[chosen], where)
    key_item = r.one_of(data, path, "key", "json_key")
    key = r.string(key_item[1], (*path, key_item[0])) if key_item else None
    if key_item and provider not in ("hashicorp", "aws"):
        r.fail(
            (*path, key_item[0]), f"only used by the hashicorp and aws providers, not {provider}"
        )
    if key_item and key_item[0] == "json_key" and provider != "aws":
        r.fail((*path, "json_key"), "only used by the aws provider (hashicorp uses key)")
    if "mount" in data and provider != "hashicorp":
        r.fail((*path, "mount"), f"only used by the hashicorp provider, not {provider}")

    if provider == "env":
        if not _ENV_NAME.fullmatch(name):
            r.fail(where, f"{name!r} is not an environment variable name")
        return SecretRef("env", name)
    if provider == "onepassword":
        if not name.startswith("op://") and onepassword.vault:
            name = f"op://{onepassword.vault}/{name.strip('/')}"
        parts = name.removeprefix("op://").split("?", 1)[0].split("/")
        if not name.startswith("op://") or len(parts) < 3 or not all(parts):
            r.fail(where, f"{name!r} must look like op://vault/item/field")
        return SecretRef("onepassword", name)
    if provider == "hashicorp":
        kv_path = name.strip("/")
        if not kv_path or ".." in kv_path.split("/"):
            r.fail(where, f"{name!r} is not a KV path")
        mount = r.string(data["mount"], (*path, "mount")).strip("/") if "mount" in data else None
        return SecretRef("hashicorp", kv_path, key=key, mount=mount or hashicorp.mount)
    return SecretRef("aws", name, key=key)


def _entry(
    r: _Reader,
    destination: str,
    raw: Any,
    defaults: tuple[str, float, AgentCredentialAction],
    settings: tuple[HashicorpSettings, OnePasswordSettings],
) -> tuple[Injection, SecretRef, ExecuteSpec | None]:
    default_provider, default_ttl, default_action = defaults
    path: FieldPath = ("credentials", destination)
    data = r.mapping(raw, path, _ENTRY_KEYS)
    provider = (
        r.provider(data["provider"], (*path, "provider"))
        if "provider" in data
        else default_provider
    )
    ref = _ref(r, data, path, provider, settings)

    mode = _INJECT_MODES[
        r.choice(data["inject"], (*path, "inject"), _INJECT_MODES) if "inject" in data else "header"
    ]
    header_item = r.one_of(data, path, "header", "header_name")
    template_item = r.one_of(data, path, "template", "header_format")
    query_item = r.one_of(data, path, "query_param", "query_param_name")

    def only_for(item: tuple[str, Any] | None, modes: tuple[str, ...]) -> None:
        if item is not None and mode not in modes:
            r.fail((*path, item[0]), f"not used with inject: {mode}")

    only_for(header_item, ("header",))
    only_for(template_item, ("header",))
    only_for(query_item, ("query",))
    only_for(("username", None) if "username" in data else None, ("basic",))

    header = template = query_param = username = None
    if mode == "header":
        header = (
            r.string(header_item[1], (*path, header_item[0]), pattern=_HEADER_NAME)
            if header_item
            else "Authorization"
        )
        if template_item:
            template = r.string(template_item[1], (*path, template_item[0]))
            if _SECRET_PLACEHOLDER not in template:
                r.fail((*path, template_item[0]), "must contain {secret}")
            if any(c in template for c in "\r\n\0"):
                r.fail((*path, template_item[0]), "must not contain line breaks")
        else:
            # Bearer is right for Authorization; a custom header usually takes the bare value.
            template = "Bearer {secret}" if header.lower() == "authorization" else "{secret}"
    elif mode == "basic":
        header = "Authorization"
        if "username" in data:
            username = r.string(data["username"], (*path, "username"))
            if ":" in username:
                r.fail((*path, "username"), "must not contain ':'")
    elif mode == "query":
        query_param = r.string(query_item[1], (*path, query_item[0])) if query_item else "api_key"

    strip = ["Authorization"]
    if header:
        strip.append(header)
    if "strip_headers" in data:
        strip += r.string_list(data["strip_headers"], (*path, "strip_headers"), _HEADER_NAME)
    strip_query = [query_param] if query_param else []
    if "strip_query" in data:
        strip_query += r.string_list(
            data["strip_query"], (*path, "strip_query"), re.compile(r"[^&=#\s]+")
        )

    ttl = (
        r.number(data["ttl_seconds"], (*path, "ttl_seconds"), positive=False)
        if "ttl_seconds" in data
        else default_ttl
    )
    action = (
        r.choice(data["on_agent_credential"], (*path, "on_agent_credential"), ("strip", "reject"))
        if "on_agent_credential" in data
        else default_action
    )

    execute = None
    if "execute" in data:
        ex = r.mapping(data["execute"], (*path, "execute"), _EXECUTE_KEYS)
        execute = ExecuteSpec(
            **{k: r.string(v, (*path, "execute", k)) for k, v in ex.items()}  # type: ignore[arg-type]
        )

    injection = Injection(
        destination=destination,
        provider=provider,
        ref=ref.display,
        mode=mode,
        header=header,
        template=template,
        query_param=query_param,
        username=username,
        ttl_seconds=ttl,
        strip=_dedupe_ci(strip),
        strip_query=tuple(dict.fromkeys(strip_query)),
        on_agent_credential=action,  # type: ignore[arg-type]
    )
    return injection, ref, execute


def _dedupe_ci(names: Iterable[str]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(name.lower(), name)
    return tuple(out.values())


def _build(data: Any, source: str, lines: Mapping[FieldPath, int]) -> VaultConfig:
    r = _Reader(source, lines)
    if data is None:
        return VaultConfig(source=source)
    data = r.mapping(data, (), _TOP_KEYS)
    provider = r.provider(data["provider"], ("provider",)) if "provider" in data else "env"
    timeout = (
        r.number(data["timeout_seconds"], ("timeout_seconds",), positive=True)
        if "timeout_seconds" in data
        else DEFAULT_TIMEOUT_SECONDS
    )
    ttl = (
        r.number(data["ttl_seconds"], ("ttl_seconds",), positive=False)
        if "ttl_seconds" in data
        else DEFAULT_TTL_SECONDS
    )
    action: AgentCredentialAction = "strip"
    if "on_agent_credential" in data:
        action = r.choice(  # type: ignore[assignment]
            data["on_agent_credential"], ("on_agent_credential",), ("strip", "reject")
        )
    op_key = r.one_of(data, (), "onepassword", "1password")
    hashicorp = _hashicorp(r, data.get("hashicorp"))
    aws = _aws(r, data.get("aws"))
    onepassword = _onepassword(r, op_key[1], op_key[0]) if op_key else OnePasswordSettings()

    injections: dict[str, Injection] = {}
    refs: dict[str, SecretRef] = {}
    execute: dict[str, ExecuteSpec] = {}
    credentials = data.get("credentials")
    if credentials is not None:
        if not isinstance(credentials, dict):
            r.fail(("credentials",), f"must be a mapping, not {_kind(credentials)}")
        for destination, raw in credentials.items():
            name = r.string(destination, ("credentials", destination))
            inj, ref, ex = _entry(r, name, raw, (provider, ttl, action), (hashicorp, onepassword))
            injections[name], refs[name] = inj, ref
            if ex is not None:
                execute[name] = ex
    return VaultConfig(
        source=source,
        timeout_seconds=timeout,
        injections=injections,
        refs=refs,
        execute=execute,
        hashicorp=hashicorp,
        aws=aws,
        onepassword=onepassword,
    )
