"""Which store a gate (or the CLI) opens: SQLite in the data dir, or PostgreSQL by URL."""

from pathlib import Path

from gate_proxy.keys import Signer
from gate_proxy.store.base import Store


def open_store(
    data_dir: Path, signer: Signer, *, database_url: str | None, durability: str = "normal"
) -> Store:
    """An unopened store: call ``await store.open()``."""
    if database_url:
        from gate_proxy.store.postgres import PostgresStore  # asyncpg only when used

        return PostgresStore(database_url, signer)
    from gate_proxy.store.sqlite import SqliteStore

    return SqliteStore(data_dir, signer, synchronous="FULL" if durability == "full" else "NORMAL")


def describe(database_url: str | None, data_dir: Path) -> str:
    """Where the store is, for logs: a PostgreSQL URL without its password."""
    if not database_url:
        return str(data_dir / "gate.db")
    from urllib.parse import urlsplit

    parts = urlsplit(database_url)
    host = parts.hostname or "localhost"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"
