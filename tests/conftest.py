from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gate_process import GateProcess, running_gate
from pg_server import fresh_database, fresh_database_sync, postgres_server
from store_backends import BACKENDS, StoreBackend

from gate_proxy.keys import load_or_create_signer


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateProcess]:
    """A real gate with the repository's example policies."""
    with running_gate(tmp_path) as process:
        yield process


# -- PostgreSQL (tests/pg_server.py) ----------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (started on first use, stopped at the end),
    or GATE_TEST_DATABASE_URL. Never skips: a missing server fails with the reason."""
    with postgres_server() as url:
        yield url


@pytest.fixture
async def pg_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty database of that server for one test (dropped afterwards)."""
    async with fresh_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database shared by one test module (e.g. gate replicas started once per
    module); synchronous, so module-scoped synchronous fixtures can use it."""
    with fresh_database_sync(pg_admin_url) as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def store_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreBackend]:
    """One database of each backend in turn (tests/store_backends.py): SQLite in tmp_path,
    a fresh PostgreSQL database."""
    signer = load_or_create_signer(tmp_path)
    if request.param == "sqlite":
        yield StoreBackend("sqlite", tmp_path, signer)
        return
    async with fresh_database(request.getfixturevalue("pg_admin_url")) as url:
        yield StoreBackend("postgres", tmp_path, signer, url)
