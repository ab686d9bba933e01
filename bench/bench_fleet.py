"""Fleet benchmark: one gate process vs `--workers 2` on SQLite, and replicas on PostgreSQL,
with the same client in the same run (rounds interleave the modes).

    .venv/bin/python bench/bench_fleet.py              # 3 rounds x 6 s per mode
    .venv/bin/python bench/bench_fleet.py --quick      # 1 round x 3 s

Modes, all on 127.0.0.1 (the PostgreSQL server is a real one, started here the way the
tests start it: tests/pg_server.py):
- sqlite-1:  `gate-proxy serve` (one process, SQLite in its data dir)
- sqlite-2w: `gate-proxy serve --workers 2` (two processes on the same ports, one file)
- pg-1:      one `gate-proxy serve --database-url ...`
- pg-2r:     two replicas on one database, each with its own ports; the client splits
             its connections between them (as a load balancer would)

Load: wrk (`-t1`, 32 keep-alive connections in total, POST of a 59-byte JSON body through
the forward proxy, auto-approved: every request is decided, recorded with its write-ahead
`execution_requested`, forwarded, and its outcome recorded). CPU ms per request is the CPU
time of the gate processes (a supervisor and its workers included) over the requests
answered; PostgreSQL's own CPU is reported separately. Every ledger is verified at the end.
Every loop is bounded; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import REPO, fmt, header, md_table, median
from pg_server import fresh_database_sync, postgres_server

LOOPBACK = "127.0.0.1"
BODY = b'{"ticket":4711,"to":"customer@example.com","message":"shipped"}'
ADMIN_KEY = "gate_sk_bench-admin-key-0123456789abcdefghijklmnopqrstuvw"
CONNECTIONS = 32
POLICY = "id: auto\nauto_approve_under: 1\n"
MODES = ("sqlite-1", "sqlite-2w", "pg-1", "pg-2r")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {deadline_s}s")


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        path = Path(f"/proc/{current}/task/{current}/children")
        if path.exists():
            todo.extend(int(child) for child in path.read_text().split())
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- the upstream: keep-alive HTTP/1.1, a small JSON 200 for everything ----------------------

UPSTREAM = """
import asyncio, sys
RESPONSE = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
            b"Content-Length: 15\\r\\n\\r\\n{\\"status\\":\\"ok\\"}")
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.b = t, bytearray()
    def data_received(self, d):
        self.b += d
        while True:
            end = self.b.find(b"\\r\\n\\r\\n")
            if end < 0: return
            head = bytes(self.b[:end]).lower(); n = 0
            at = head.find(b"\\r\\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\\r\\n", at + 2)
                n = int(head[at + 17: stop if stop >= 0 else None])
            if len(self.b) < end + 4 + n: return
            del self.b[: end + 4 + n]
            self.t.write(RESPONSE)
async def main():
    await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await asyncio.Event().wait()
asyncio.run(main())
"""


# -- gates -------------------------------------------------------------------------------------


@dataclass
class Gate:
    process: subprocess.Popen[bytes]
    api: int
    proxy: int
    log: Path

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Mode:
    name: str
    gates: list[Gate]
    verify: list[str]
    env: dict[str, str] = field(default_factory=dict)
    auth: str = ""


def layout(root: Path, upstream: int) -> None:
    for sub in ("policies", "config"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "policies" / "auto.yaml").write_text(POLICY)
    (root / "config" / "destinations.yaml").write_text(
        f'default:\n  action: block\n"{LOOPBACK}:{upstream}":\n'
        "  paths:\n    /v1/replies: {method: POST, destination: ops.reply, policy: auto}\n"
    )
    (root / "config" / "gate.yaml").write_text("egress_allow: [127.0.0.1/32]\n")


def start_gate(root: Path, extra: list[str], env: dict[str, str]) -> Gate:
    api, proxy, reverse = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "gate_proxy", "serve", "--host", LOOPBACK,
        "--port", str(api), "--proxy-port", str(proxy), "--reverse-port", str(reverse),
        "--data-dir", str(root / "data"), "--policy-dir", str(root / "policies"),
        "--config-dir", str(root / "config"), "--certs-dir", str(root / "certs"), *extra,
    ]  # fmt: skip
    log = root / f"gate-{api}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={**os.environ, "GATE_ADMIN_KEY": ADMIN_KEY, "PYTHONPATH": str(REPO), **env},
        )
    gate = Gate(process, api, proxy, log)
    try:
        wait_port(api)
        wait_port(proxy)
    except RuntimeError:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        gate.stop()
        raise
    return gate


def api_call(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def shared_keys(directory: Path) -> dict[str, str]:
    from gate_proxy.keys import load_or_create_signer
    from gate_proxy.proxy.ca import CA_KEY_AND_CERT, ensure_ca

    load_or_create_signer(directory)
    ensure_ca(directory / "ca")
    return {
        "GATE_SIGNING_KEY_FILE": str(directory / "signing.key"),
        "GATE_CA_FILE": str(directory / "ca" / CA_KEY_AND_CERT),
    }


def start_mode(name: str, root: Path, upstream: int, stack: ExitStack, admin_url: str) -> Mode:
    root.mkdir(parents=True)
    if name.startswith("sqlite"):
        layout(root, upstream)
        extra = ["--workers", "2"] if name == "sqlite-2w" else []
        gate = start_gate(root, extra, {})
        mode = Mode(name, [gate], ["--data-dir", str(root / "data")])
    else:
        url = stack.enter_context(fresh_database_sync(admin_url))
        env = shared_keys(root / "keys")
        gates = []
        for index in range(2 if name == "pg-2r" else 1):
            layout(root / f"r{index}", upstream)
            gate = start_gate(root / f"r{index}", ["--database-url", url], env)
            stack.callback(gate.stop)
            gates.append(gate)
        mode = Mode(name, gates, ["--database-url", url, "--data-dir", str(root)], env)
    if name.startswith("sqlite"):
        stack.callback(mode.gates[0].stop)
    agent = api_call(mode.gates[0].api, "/v1/agents/register", {"name": f"bench-{name}"})
    creds = base64.b64encode(f"{agent['agentId']}:{agent['apiKey']}".encode()).decode()
    mode.auth = f"Basic {creds}"
    return mode


# -- load --------------------------------------------------------------------------------------


def wrk(port: int, upstream: int, auth: str, connections: int, seconds: int, root: Path) -> str:
    script = root / f"wrk-{port}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.path = "http://{LOOPBACK}:{upstream}/v1/replies"\n'
        f"wrk.body = '{BODY.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Proxy-Authorization"] = "{auth}"\n'
        f'wrk.headers["Host"] = "{LOOPBACK}:{upstream}"\n'
    )
    return (
        f"wrk -t1 -c{connections} -d{seconds}s --timeout 5s -s {script} http://{LOOPBACK}:{port}/"
    )


@dataclass
class Result:
    rate: float
    bad: int
    cpu_ms: float
    pg_cpu_ms: float


def measure(mode: Mode, upstream: int, seconds: int, root: Path) -> Result:
    share = CONNECTIONS // len(mode.gates)
    commands = [wrk(g.proxy, upstream, mode.auth, share, seconds, root) for g in mode.gates]
    pids = [pid for gate in mode.gates for pid in gate.pids()]
    pg = postgres_pids() if mode.name.startswith("pg") else []
    cpu0, pg0 = cpu_seconds(pids), cpu_seconds(pg)
    runs = [
        subprocess.Popen(command.split(), stdout=subprocess.PIPE, text=True) for command in commands
    ]
    outputs = [run.communicate(timeout=seconds + 60)[0] for run in runs]
    cpu1, pg1 = cpu_seconds(pids), cpu_seconds(pg)
    rate = total = bad = 0.0
    for out in outputs:
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        count = re.search(r"(\d+) requests in", out)
        if not found or not count:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        rate += float(found.group(1))
        total += int(count.group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        bad += int(non_2xx.group(1)) if non_2xx else 0
    per = 1000 / total if total else 0.0
    return Result(rate, int(bad), (cpu1 - cpu0) * per, (pg1 - pg0) * per)


def verify(mode: Mode) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gate_proxy", "ledger", "verify", *mode.verify],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **mode.env},
        check=False,
    )
    return (result.stdout or result.stderr).strip()


@contextmanager
def upstream_server(root: Path) -> Iterator[int]:
    port = free_port()
    script = root / "upstream.py"
    script.write_text(UPSTREAM)
    process = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        wait_port(port)
        yield port
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=int)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (3 if args.quick else 6)
    if shutil.which("wrk") is None:
        raise SystemExit("bench_fleet needs wrk (Debian: apt-get install wrk)")
    results: dict[str, list[Result]] = {name: [] for name in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        admin_url = stack.enter_context(postgres_server())
        upstream = stack.enter_context(upstream_server(root))
        modes = [start_mode(n, root / n, upstream, stack, admin_url) for n in MODES]
        for mode in modes:  # warm-up: first connections, caches, the JIT of nothing
            measure(mode, upstream, 1, root)
        for round_no in range(rounds):
            for mode in modes:
                result = measure(mode, upstream, seconds, root)
                results[mode.name].append(result)
                print(
                    f"  round {round_no + 1} {mode.name:9s} {result.rate:8,.0f} req/s "
                    f"{result.bad} non-2xx, gate CPU {result.cpu_ms:.2f} ms/req, "
                    f"postgres CPU {result.pg_cpu_ms:.2f} ms/req",
                    file=sys.stderr,
                )
        verdicts = {mode.name: verify(mode) for mode in modes}
    print(header("Fleet (bench/bench_fleet.py)"))
    print(
        f"- load: wrk -t1, {CONNECTIONS} keep-alive connections in total, {seconds} s per "
        f"run, {rounds} interleaved round(s); POST of a {len(BODY)}-byte JSON body through "
        "the forward proxy, auto-approved\n"
    )
    base = median(r.rate for r in results["sqlite-1"])
    rows = []
    for name in MODES:
        runs = results[name]
        rate = median(r.rate for r in runs)
        rows.append(
            [
                name,
                fmt(rate),
                f"{fmt(min(r.rate for r in runs))}–{fmt(max(r.rate for r in runs))}",
                f"**{rate / base:.2f}×**",
                fmt(median(r.cpu_ms for r in runs)),
                fmt(median(r.pg_cpu_ms for r in runs)) if name.startswith("pg") else "-",
                sum(r.bad for r in runs),
                verdicts[name],
            ]
        )
    print(
        md_table(
            [
                "mode",
                "req/s",
                "min–max",
                "vs sqlite-1",
                "gate CPU ms/req",
                "postgres CPU ms/req",
                "non-2xx",
                "ledger verify",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
