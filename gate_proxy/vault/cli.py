"""``gate-proxy vault check``: resolve every configured credential, print ok/error per
destination. Values are never printed: only destination, reference and a safe message."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from gate_proxy.vault.config import VaultConfigError
from gate_proxy.vault.manager import VaultManager

__all__ = ["vault_check"]


def vault_check(config_dir: Path, *, out: TextIO | None = None) -> int:
    """Exit status: 0 all ok (or nothing configured), 1 any credential failed, 2 bad config."""
    out = out or sys.stdout
    path = Path(config_dir) / "vault.yaml"
    try:
        manager = VaultManager.from_config_dir(config_dir)
    except VaultConfigError as exc:
        print(f"error: {exc}", file=out)
        return 2
    try:
        if not manager.destinations:
            where = "no credentials configured" if path.is_file() else f"{path} not found"
            print(f"vault: {where}; no destination is vault-managed", file=out)
            return 0
        results = asyncio.run(manager.check())
    finally:
        manager.close()
    width = max(len(destination) for destination, _, _ in results)
    for destination, ok, message in results:
        print(f"{'ok   ' if ok else 'error'}  {destination.ljust(width)}  {message}", file=out)
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"{len(results) - failed} ok, {failed} failed", file=out)
    return 1 if failed else 0
