"""Policy files -> core `Policy`: reading files and directories, the document's top level
(id, environments, fingerprint_headers) and merging environment blocks over the base.

Every error is a `PolicyError` naming file, line and field ("p.yaml:4: rate_limits: ...").
The per-field parsers are in ``policy_fields.py``; the YAML is read by ``yaml_reader.py``.
"""

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gate_proxy.core.located import FieldPath as Location
from gate_proxy.core.located import format_field
from gate_proxy.core.policy.model import Policy, PolicyError, RateLimits, validate_policy_id
from gate_proxy.loaders.policy_fields import (
    BLOCK_FIELDS,
    BLOCK_KEYS,
    PolicyReader,
    parse_fingerprint_headers,
)
from gate_proxy.loaders.yaml_reader import read_yaml, type_name

__all__ = [
    "MAX_POLICY_BYTES",
    "POLICY_SUFFIXES",
    "load_policy_dir",
    "load_policy_file",
    "parse_policy",
]

POLICY_SUFFIXES = (".yaml", ".yml")
MAX_POLICY_BYTES = 1_000_000  # policies are small; a huge file is a mistake, not a policy
_TOP_LEVEL_KEYS = BLOCK_KEYS | {"id", "environments", "fingerprint_headers"}


def load_policy_file(path: Path) -> Policy:
    """Parse one policy file; its `id` must equal the file stem."""
    name = path.name
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(
            name, None, None, f"cannot read policy file: {exc.strerror or exc}"
        ) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(name, None, None, f"policy file is larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(name, None, None, f"policy file is not UTF-8: {exc.reason}") from None
    return parse_policy(text, name, expected_id=path.stem)


def load_policy_dir(directory: Path) -> dict[str, Policy]:
    """Load every *.yaml / *.yml file in `directory` (not recursive), keyed by policy id.

    Hidden files (editor backups, lock files) are skipped. The first bad file raises
    PolicyError, so a gate never starts with a partial policy set; two files with the
    same id (support.yaml and support.yml) are an error too.
    """
    if not directory.is_dir():
        raise PolicyError(str(directory), None, None, "policy directory not found")
    policies: dict[str, Policy] = {}
    sources: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in POLICY_SUFFIXES:
            continue
        if not path.is_file():
            raise PolicyError(path.name, None, None, "not a regular file")
        policy = load_policy_file(path)
        if policy.id in policies:
            raise PolicyError(
                path.name,
                None,
                "id",
                f"duplicate policy id {policy.id!r} (also in {sources[policy.id]})",
            )
        policies[policy.id] = policy
        sources[policy.id] = path.name
    return policies


def parse_policy(text: str, filename: str, *, expected_id: str | None = None) -> Policy:
    """Parse one policy document. Raises PolicyError naming file, line and field.

    `expected_id` (the loader passes the file stem) makes a different `id` an error.
    """
    # Merge keys (<<) are refused: a policy must read exactly as it is written.
    document = read_yaml(text, filename, PolicyError, keys="string", merge_keys=False)
    if document.empty:
        raise PolicyError(filename, None, None, "policy file is empty")
    reader = PolicyReader(document)
    if not isinstance(document.data, dict):
        raise reader.error((), f"a policy must be a mapping, got {type_name(document.data)}")
    return _parse_root(reader, document.data, expected_id)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A validated field value and the line of its key (for cross-field errors)."""

    value: Any
    line: int | None


def _parse_root(reader: PolicyReader, root: dict[str, Any], expected_id: str | None) -> Policy:
    entries = reader.mapping(root, (), _TOP_LEVEL_KEYS)
    policy_id = _parse_id(reader, entries, expected_id)
    base = _parse_block(reader, entries, ())
    _check_thresholds(reader, base, {}, ())
    # Top level only: the proxy fingerprints a request before any environment applies.
    top: dict[str, Any] = {}
    if "fingerprint_headers" in entries:
        top["fingerprint_headers"] = parse_fingerprint_headers(
            reader, entries["fingerprint_headers"], ("fingerprint_headers",)
        )

    environments: dict[str, Policy] = {}
    if "environments" in entries:
        for name, block in reader.mapping(entries["environments"], ("environments",), None).items():
            prefix = ("environments", name)
            if not name.strip():
                raise reader.error(
                    prefix, "environment names must not be empty", field=("environments",), key=True
                )
            override = _parse_block(reader, reader.mapping(block, prefix, BLOCK_KEYS), prefix)
            merged = _merge(base, override)
            _check_thresholds(reader, merged, override, prefix)
            environments[name] = _build(policy_id, reader.filename, merged, **top)

    return _build(
        policy_id, reader.filename, base, environments=MappingProxyType(environments), **top
    )


def _parse_id(reader: PolicyReader, entries: dict[str, Any], expected_id: str | None) -> str:
    if "id" not in entries:
        raise reader.error((), "required field is missing", field=("id",))
    policy_id = reader.string(entries["id"], ("id",))
    if not validate_policy_id(policy_id):
        raise reader.error(
            ("id",),
            f"invalid policy id {policy_id!r}: use 1-128 letters, digits, '_', '.', '-', "
            "starting with a letter or digit, without '..'",
        )
    if expected_id is not None and policy_id != expected_id:
        raise reader.error(("id",), f"id {policy_id!r} must match the file name {expected_id!r}")
    return policy_id


def _parse_block(
    reader: PolicyReader, entries: dict[str, Any], prefix: Location
) -> dict[str, _Parsed]:
    block: dict[str, _Parsed] = {}
    for key, value in entries.items():
        if key in BLOCK_FIELDS:
            path = (*prefix, key)
            block[key] = _Parsed(BLOCK_FIELDS[key](reader, value, path), reader.key_line(path))
    return block


def _merge(base: dict[str, _Parsed], override: dict[str, _Parsed]) -> dict[str, _Parsed]:
    """Environment fields replace base fields; rate_limits merge key by key."""
    merged = dict(base)
    for key, parsed in override.items():
        if key == "rate_limits" and key in base:
            below: RateLimits = base[key].value
            above: RateLimits = parsed.value
            parsed = _Parsed(
                RateLimits(
                    per_agent_per_hour=_first_set(
                        above.per_agent_per_hour, below.per_agent_per_hour
                    ),
                    per_agent_per_day=_first_set(above.per_agent_per_day, below.per_agent_per_day),
                ),
                parsed.line,
            )
        merged[key] = parsed
    return merged


def _first_set(preferred: int | None, fallback: int | None) -> int | None:
    return fallback if preferred is None else preferred


def _check_thresholds(
    reader: PolicyReader, fields: dict[str, _Parsed], override: dict[str, _Parsed], prefix: Location
) -> None:
    """auto_approve_under above require_approval_over would auto-approve counts in between."""
    auto = fields.get("auto_approve_under")
    over = fields.get("require_approval_over")
    if auto is None or over is None or auto.value <= over.value:
        return
    # Point at the environment's own setting when it caused the conflict.
    key = "require_approval_over" if "require_approval_over" in override else "auto_approve_under"
    field = (*prefix, key) if key in override else (key,)
    raise PolicyError(
        reader.filename,
        fields[key].line,
        format_field(field),
        f"auto_approve_under ({auto.value}) is greater than require_approval_over "
        f"({over.value}): record counts between them would be auto-approved",
    )


def _build(policy_id: str, source: str, fields: dict[str, _Parsed], **extra: Any) -> Policy:
    return Policy(id=policy_id, source=source, **{k: v.value for k, v in fields.items()}, **extra)
