"""Reading policy files from disk: the only I/O around the pure `core.policy` parser."""

from pathlib import Path

from gate_proxy.core.policy import Policy, PolicyError, parse_policy

__all__ = ["MAX_POLICY_BYTES", "POLICY_SUFFIXES", "load_policy_dir", "load_policy_file"]

POLICY_SUFFIXES = (".yaml", ".yml")
MAX_POLICY_BYTES = 1_000_000  # policies are small; a huge file is a mistake, not a policy


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
