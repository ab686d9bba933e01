"""Runs the real `gate-proxy serve` in a subprocess for end-to-end tests."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from upstreams import free_port

REPO = Path(__file__).resolve().parent.parent
TEST_ADMIN_KEY = "gate_sk_test-admin-key-0123456789abcdefghijklmnopqrstuv"
# The tests' upstreams live on loopback, which egress checks deny unless allowed.
LOOPBACK_EGRESS = 'egress_allow: ["127.0.0.1/32", "::1/128", localhost]\n'


@dataclass
class GateProcess:
    root: Path
    port: int
    proxy_port: int
    reverse_port: int
    admin_key: str | None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)
    # A PostgreSQL store (--database-url), with the key files a fleet mounts; None: SQLite.
    database_url: str | None = None
    key_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def policy_dir(self) -> Path:
        return self.root / "policies"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_key or (self.data_dir / "admin.key").read_text().strip())

    def register(self, name: str, role: str = "agent", **fields: Any) -> dict[str, Any]:
        with self.admin() as client:
            response = client.post(
                "/v1/agents/register", json={"name": name, "role": role, **fields}
            )
        assert response.status_code == 201, response.text
        return response.json()

    @property
    def clock_file(self) -> Path:
        return self.root / "clock-offset"

    def shift_clock(self, seconds: float) -> None:
        """Move the gate's wall clock forward (GATE_CLOCK_OFFSET_FILE); timers unaffected."""
        current = float(self.clock_file.read_text() or 0) if self.clock_file.exists() else 0.0
        staged = self.clock_file.with_suffix(".new")
        staged.write_text(str(current + seconds))
        staged.replace(self.clock_file)  # a new inode: the gate sees the change at once

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gate_proxy", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
            env={**os.environ, **self.key_env, **(env or {})},
        )

    def store_args(self) -> list[str]:
        """Where this gate's store is, for the CLI's ledger commands."""
        where = ["--database-url", self.database_url] if self.database_url else []
        return ["--data-dir", str(self.data_dir), *where]

    def stored_bytes(self) -> bytes:
        """Everything the store holds, as bytes: to prove what is never written."""
        if self.database_url is None:
            return b"".join(p.read_bytes() for p in self.data_dir.iterdir() if p.is_file())
        return asyncio.run(_postgres_dump(self.database_url))

    def start(self, *extra: str, env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.log_path = self.root / f"gate-{int(time.time() * 1000)}.log"
        environment = {**os.environ, **self.key_env, **(env or {})}
        environment.setdefault("GATE_CLOCK_OFFSET_FILE", str(self.clock_file))
        if self.database_url and "--database-url" not in extra:
            extra = ("--database-url", self.database_url, *extra)
        if self.admin_key:
            environment["GATE_ADMIN_KEY"] = self.admin_key
        else:
            environment.pop("GATE_ADMIN_KEY", None)
        command = [
            sys.executable,
            "-m",
            "gate_proxy",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--proxy-port",
            str(self.proxy_port),
            "--reverse-port",
            str(self.reverse_port),
            "--data-dir",
            str(self.data_dir),
            "--policy-dir",
            str(self.policy_dir),
            "--config-dir",
            str(self.config_dir),
            "--certs-dir",
            str(self.certs_dir),
            *extra,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=self.root
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"gate exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gate not ready after {timeout}s:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)


def prepare_root(root: Path, policies: dict[str, str] | None = None) -> None:
    """Lay out config: the repo's policies (or the given ones) and config files."""
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "gate.yaml").write_text(LOOPBACK_EGRESS)
    if policies is None:
        for path in (REPO / "policies").glob("*.yaml"):
            shutil.copy(path, root / "policies" / path.name)
    else:
        for name, text in policies.items():
            (root / "policies" / f"{name}.yaml").write_text(text)


async def _postgres_dump(url: str) -> bytes:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        chunks = []
        for (table,) in tables:
            rows = await conn.fetch(f'SELECT t::text FROM "{table}" t')
            chunks.extend(row[0].encode() for row in rows)
        return b"\n".join(chunks)
    finally:
        await conn.close()


def fleet_keys(directory: Path) -> dict[str, str]:
    """What deploy/make-secrets.sh gives a fleet: one signing key and one CA as files, for
    GATE_SIGNING_KEY_FILE and GATE_CA_FILE (with a shared database the gate makes none)."""
    from gate_proxy.keys import load_or_create_signer
    from gate_proxy.proxy.ca import CA_KEY_AND_CERT, ensure_ca

    directory.mkdir(parents=True, exist_ok=True)
    load_or_create_signer(directory)
    ensure_ca(directory / "ca")
    return {
        "GATE_SIGNING_KEY_FILE": str(directory / "signing.key"),
        "GATE_CA_FILE": str(directory / "ca" / CA_KEY_AND_CERT),
    }


@contextmanager
def running_gate(
    root: Path,
    *,
    policies: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
    admin_key: str | None = TEST_ADMIN_KEY,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Iterator[GateProcess]:
    prepare_root(root, policies)
    for name, text in (config or {}).items():
        if name == "gate.yaml" and "egress_" not in text:
            text = LOOPBACK_EGRESS + text
        (root / "config" / name).write_text(text)
    gate = GateProcess(root, free_port(), free_port(), free_port(), admin_key)
    if database_url is not None:
        gate.database_url = database_url
        gate.key_env = fleet_keys(root / "keys")
    gate.start(*extra, env=env)
    try:
        yield gate
    finally:
        gate.stop()
