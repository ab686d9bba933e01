"""A real PostgreSQL server for the test session, started by the harness itself.

Debian's server binaries live under /usr/lib/postgresql/<version>/bin (deploy/postgres.sh
installs them). initdb refuses to run as root, so as root the cluster directory is
created under /tmp, given to the ``postgres`` user, and initdb and postgres run through
``runuser -u postgres``; as any other user they run directly. The server listens on
127.0.0.1 on a free port with a socket directory of its own and trusts local
connections (a test cluster that lives as long as the session). With
GATE_TEST_DATABASE_URL set, that server is used instead (its role needs CREATEDB).

Each test gets a database of its own (CREATE DATABASE ... TEMPLATE template0), so tests
stay independent; see ``fresh_database``.
"""

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

TEST_URL_ENV = "GATE_TEST_DATABASE_URL"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# A throwaway cluster: durability buys nothing and costs every CREATE DATABASE a sync.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresUnavailable(RuntimeError):
    """The harness cannot start PostgreSQL (the reason says why): tests fail, not skip."""


def find_bin_dir() -> Path:
    """The newest Debian PostgreSQL server's bin directory."""
    candidates = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        if (path.parent / "initdb").exists()
    ]
    if not candidates:
        raise PostgresUnavailable(
            "no PostgreSQL server under /usr/lib/postgresql/*/bin: run deploy/postgres.sh "
            f"(or set {TEST_URL_ENV} to a server whose role may CREATE DATABASE)"
        )
    return max(candidates, key=lambda path: _version_key(path.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalPostgres:
    """A cluster in a temporary directory, run as ``postgres`` when we are root."""

    bin_dir: Path
    settings: dict[str, str]
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _command(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        # Under /tmp (world-traversable), not pytest's 0700 basetemp: the postgres user
        # must be able to reach its data directory.
        self.root = Path(tempfile.mkdtemp(prefix="gate-pg-"))
        (self.root / "socket").mkdir()
        if self.as_root:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "no 'postgres' user to run initdb as (initdb refuses root): "
                    "run deploy/postgres.sh, which installs the server package and the user"
                ) from None
            for path in (self.root, self.root / "socket"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._initdb()
        last_error = ""
        for _ in range(3):  # a free port can be taken between probe and bind: retry
            self.port = _free_port()
            try:
                self._start_server()
                return
            except PostgresUnavailable as exc:
                last_error = str(exc)
                self._stop_process()
        raise PostgresUnavailable(last_error)

    def _initdb(self) -> None:
        result = subprocess.run(
            self._command(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.root / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def _start_server(self) -> None:
        assert self.root is not None
        argv = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.root / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.root / "socket"),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            self._command(*argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited: {self.log_tail()}")
            if self._accepts_connections():
                return
            time.sleep(0.1)
        raise PostgresUnavailable(f"postgres not ready after {START_TIMEOUT_S}s: {self.log_tail()}")

    def _accepts_connections(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    def log_tail(self) -> str:
        if self.root is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        self._stop_process()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _stop_process(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None and self.root is not None:
            # pg_ctl signals the postmaster itself (runuser need not forward signals).
            subprocess.run(
                self._command(
                    str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.root / "data"),
                    "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_S)),
                ),
                capture_output=True,
                timeout=STOP_TIMEOUT_S + 10,
                check=False,
            )  # fmt: skip
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None


@contextlib.contextmanager
def postgres_server(settings: dict[str, str] | None = None) -> Iterator[str]:
    """The admin URL of a server for this session: GATE_TEST_DATABASE_URL, or one we
    start (and stop and delete afterwards)."""
    configured = os.environ.get(TEST_URL_ENV)
    if configured:
        yield configured
        return
    server = LocalPostgres(find_bin_dir(), dict(TEST_SETTINGS if settings is None else settings))
    try:
        server.start()
        yield server.admin_url
    finally:
        server.stop()


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` (same host, role and options)."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def with_user(url: str, user: str) -> str:
    """``url`` connecting as ``user`` (no password: the test server trusts 127.0.0.1)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def create_database(admin_url: str, options: str = "ENCODING 'UTF8'") -> str:
    """A new, empty database (from template0); its URL. ``options`` are CREATE DATABASE's
    (encoding, locale provider...)."""
    name = "gate_test_" + secrets.token_hex(6)
    admin = await asyncpg.connect(admin_url, timeout=30)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 {options}')
    finally:
        await admin.close()
    return database_url(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url, timeout=30)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, options: str = "ENCODING 'UTF8'") -> AsyncIterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    url = await create_database(admin_url, options)
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


def _run_async(coroutine: Any) -> Any:
    """Run a coroutine to completion from synchronous code, even when the calling thread
    already runs an event loop (a fresh loop in a worker thread)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=120)


@contextlib.contextmanager
def fresh_database_sync(admin_url: str, options: str = "ENCODING 'UTF8'") -> Iterator[str]:
    """``fresh_database`` for synchronous fixtures (e.g. a module's gate replicas)."""
    url = _run_async(create_database(admin_url, options))
    try:
        yield url
    finally:
        _run_async(drop_database(admin_url, url))
