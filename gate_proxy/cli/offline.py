"""Offline commands: they read files or the store directly, no gate needed."""

import argparse
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey:
    """The key checkpoints must verify against: --public-key, else the one of
    GATE_SIGNING_KEY_FILE, else the data dir's. Never a key read from the store itself:
    whoever could rewrite the ledger could rewrite that too."""
    from cryptography.hazmat.primitives import serialization

    from gate_proxy import key_material
    from gate_proxy.keys import load_public_key

    if args.public_key:
        key = serialization.load_pem_public_key(Path(args.public_key).read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{args.public_key}: not an Ed25519 public key")
        return key
    if os.environ.get(key_material.SIGNING_KEY_VAR):
        return key_material.signer(Path(args.data_dir)).public_key
    return load_public_key(Path(args.data_dir))


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from gate_proxy.ledger import verify_database
    from gate_proxy.store.sqlite import DB_FILE

    try:
        public_key = _public_key(args)
    except (OSError, ValueError) as exc:
        print(f"gate-proxy: no key to verify the checkpoints with: {exc}", file=sys.stderr)
        return 2
    if args.database_url:
        from gate_proxy.store.postgres.verify import verify_database_url

        result = verify_database_url(args.database_url, public_key)
    else:
        db = Path(args.data_dir) / DB_FILE
        if not db.exists():
            print(f"no ledger at {db}", file=sys.stderr)
            return 2
        result = verify_database(db, public_key)
    print(result.describe())
    return 0 if result.ok else 1


def cmd_ledger_export(args: argparse.Namespace) -> int:
    from gate_proxy.ledger import export_jsonl
    from gate_proxy.store.sqlite import DB_FILE

    if args.database_url:
        from gate_proxy.store.postgres.verify import export_jsonl_url

        lines = export_jsonl_url(args.database_url)
    else:
        lines = export_jsonl(Path(args.data_dir) / DB_FILE)
    for line in lines:
        sys.stdout.write(line + "\n")
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gate_proxy.core.policy import PolicyError
    from gate_proxy.loaders.policy_file import load_policy_dir

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return 2
    try:
        policies = load_policy_dir(directory)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for policy_id in sorted(policies):
        print(f"ok  {policy_id}")
    print(f"{len(policies)} policies valid")
    return 0


def cmd_vault_check(args: argparse.Namespace) -> int:
    from gate_proxy.vault.cli import vault_check

    return vault_check(Path(args.config_dir))
