"""Every file the gate writes is private to the user running it: 0600 files, 0700 directories.

End to end: the real ``gate-proxy serve`` writes its database (with SQLite's -wal and -shm
files, which SQLite creates with the process umask), keys, CA and trust bundle, through
real traffic (API intents, proxied plain and intercepted TLS requests, an approval). Then
another local user must be unable to read any of it, while the gate runs and after.
"""

import os
import ssl
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

POLICIES = {
    "finance-high-risk": "id: finance-high-risk\nrequire_approval: always\nexpiry_minutes: 15\n",
    "open": "id: open\nrequire_approval: never\n",
}


def _destinations(plain: int, tls: int) -> str:
    return f"""
"127.0.0.1:{plain}":
  paths:
    /v1/refunds: {{method: POST, destination: stripe.refund, policy: finance-high-risk}}
    /v1/notes: {{method: POST, destination: notes.write, policy: open}}
"localhost:{tls}":
  paths:
    /v1/notes: {{method: POST, destination: notes.write, policy: open}}
"""


def loose_entries(root: Path) -> list[str]:
    """Every file under ``root`` not 0600, every directory not 0700 (root included)."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


@dataclass
class Run:
    gate: GateProcess
    wal_while_running: bool
    data_while_running: list[str]
    certs_while_running: list[str]


def _make_traffic(gate: GateProcess, plain: Upstream, tls: Upstream) -> None:
    agent = gate.register(f"files-{time.monotonic_ns()}")
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    ca = ssl.create_default_context(cafile=gate.certs_dir / "mitmproxy-ca-cert.pem")
    with httpx.Client(proxy=proxy, verify=ca, timeout=30) as client:
        assert client.post(f"{plain.url}/v1/notes", json={"n": 1}).status_code == 200
        assert client.post(f"{tls.url_localhost}/v1/notes", json={"n": 2}).status_code == 200
        pending = client.post(f"{plain.url}/v1/refunds", json={"charge": "ch_1"})
        assert pending.status_code == 202
    with gate.admin() as admin:
        intent = pending.headers["X-Gate-Intent-Id"]
        assert admin.post(f"/v1/intents/{intent}/approve", json={}).status_code == 200
    with gate.client(agent["apiKey"]) as api:
        created = api.post(
            "/v1/intents",
            json={"destination": "notes.write", "policy": "open", "payload": "{}"},
        )
        assert created.status_code in (200, 201), created.text
    assert plain.requests and tls.requests


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("files")
    old_umask = os.umask(0o022)  # the usual default: the gate must not rely on the caller's
    try:
        with Upstream() as plain, Upstream(tls=True) as tls:
            config = {
                "destinations.yaml": _destinations(plain.port, tls.port),
                "gate.yaml": f"upstream_ca_bundle: {tls.ca_cert_path}\n",
            }
            with running_gate(root, policies=POLICIES, config=config, admin_key=None) as gate:
                _make_traffic(gate, plain, tls)
                yield Run(
                    gate,
                    (gate.data_dir / "gate.db-wal").exists(),
                    loose_entries(gate.data_dir),
                    loose_entries(gate.certs_dir),
                )
    finally:
        os.umask(old_umask)


def test_the_test_saw_the_files_that_matter(run: Run) -> None:
    assert run.wal_while_running  # SQLite's WAL existed, so its mode was really checked
    data = {p.name for p in run.gate.data_dir.iterdir()}
    assert {"gate.db", "admin.key", "signing.pub"} <= data
    assert (run.gate.certs_dir / "mitmproxy-ca.pem").exists()


def test_data_dir_is_private_while_running_and_after(run: Run) -> None:
    assert run.data_while_running == []
    assert loose_entries(run.gate.data_dir) == []


def test_certs_dir_is_private_while_running_and_after(run: Run) -> None:
    assert run.certs_while_running == []
    assert loose_entries(run.gate.certs_dir) == []


def test_loose_files_left_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    with running_gate(tmp_path) as gate, gate.admin() as admin:
        assert admin.get("/v1/agents").status_code == 200
    # An older gate ran with the default umask: its WAL, shared-memory and public key were
    # world-readable. (SQLite accepts empty -wal and -shm files.)
    for name in ("gate.db-wal", "gate.db-shm", "signing.pub"):
        path = gate.data_dir / name
        path.touch()
        path.chmod(0o644)
    gate.start()
    try:
        with gate.admin() as admin:
            assert admin.get("/v1/agents").status_code == 200
        assert loose_entries(gate.data_dir) == []
    finally:
        gate.stop()
