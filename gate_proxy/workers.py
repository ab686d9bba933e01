"""`gate-proxy serve --workers N`: N gate processes on one box, on the same ports.

The parent does what must happen once (generate missing keys and the CA, migrate the
store), then starts N copies of the same command, each a full gate that binds the proxy,
reverse and API ports with SO_REUSEPORT (the kernel spreads connections over them) and
shares the store: the SQLite writer reads the chain head under the write lock, the ledger
feed carries approvals between processes, one sweeper holds the lease
(usecases/fleet.py). The parent restarts a worker that dies, gives up when workers
cannot start at all (bad config: exit 2), and on SIGTERM/SIGINT asks every worker to
stop (each drains what is already upstream) and waits for them.
"""

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from gate_proxy import key_material
from gate_proxy.loaders.live import StartupError, load_live_config
from gate_proxy.metrics import GateMetrics
from gate_proxy.proxy.ca import ensure_ca
from gate_proxy.settings import Settings
from gate_proxy.store.open import open_store

WORKER_FLAG = "--worker-index"
START_FAILURES_BEFORE_GIVING_UP = 3
EARLY_EXIT_S = 10.0  # a worker that exits sooner than this did not really start
MAX_BACKOFF_S = 30.0
POLL_S = 0.1


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # consecutive early exits
    restart_at: float = 0.0


@dataclass
class Supervisor:
    command: list[str]
    count: int
    stop_timeout_s: float = 30.0
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        self.workers = [Worker(index) for index in range(self.count)]
        for worker in self.workers:
            self._start(worker)
        code = 0
        while not self.stopping:
            time.sleep(POLL_S)
            for worker in self.workers:
                if self._check(worker):
                    self.stopping, code = True, 2
        self._stop_all()
        return code

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen([*self.command, WORKER_FLAG, str(worker.index)])
        worker.started = time.monotonic()
        _say(f"worker {worker.index} started (pid {worker.process.pid})")

    def _check(self, worker: Worker) -> bool:
        """Restart a worker that exited; True when it cannot start at all."""
        process = worker.process
        if process is None:
            if time.monotonic() >= worker.restart_at:
                self._start(worker)
            return False
        code = process.poll()
        if code is None:
            if time.monotonic() - worker.started > EARLY_EXIT_S:
                worker.failures = 0
            return False
        early = time.monotonic() - worker.started < EARLY_EXIT_S
        worker.failures = worker.failures + 1 if early else 0
        worker.process = None
        if code == 2 and worker.failures >= START_FAILURES_BEFORE_GIVING_UP:
            _say(f"worker {worker.index} cannot start (exit 2, {worker.failures} times): stopping")
            return True
        delay = min(MAX_BACKOFF_S, 0.5 * 2**worker.failures) if early else 0.0
        worker.restart_at = time.monotonic() + delay
        _say(f"worker {worker.index} (pid {process.pid}) exited with {code}; restarting")
        return False

    def _stop_all(self) -> None:
        running = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"worker pid {process.pid} did not stop in time: killing it")
                process.kill()
                process.wait()


def _say(message: str) -> None:
    print(f"gate-proxy: {message}", file=sys.stderr, flush=True)


async def prepare(settings: Settings) -> None:
    """What must happen once, before the workers start: keys, the CA, the schema."""
    for name, port in (
        ("--port", settings.port),
        ("--proxy-port", settings.proxy_port),
        ("--reverse-port", settings.reverse_port),
    ):
        if port == 0:
            raise StartupError(f"{name} 0: --workers needs fixed ports (they share them)")
    load_live_config(settings, GateMetrics())  # a broken policy or registry: say so once
    shared = settings.database_url is not None
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        admin = key_material.admin_key(data_dir, shared=shared)
        signer = key_material.signer(data_dir, shared=shared)
        if settings.enable_proxy:
            key_material.install_ca(settings.certs_dir, shared=shared)
            ensure_ca(settings.certs_dir)
    except key_material.KeyMaterialError as exc:
        raise StartupError(str(exc)) from None
    if admin.created:
        print(
            f"gate-proxy: generated an admin key in {data_dir / 'admin.key'} (mode 0600):\n"
            f"  {admin.value}\n  It is shown only this once.",
            file=sys.stderr,
            flush=True,
        )
    store = open_store(
        data_dir, signer, database_url=settings.database_url, durability=settings.durability
    )
    await store.open()  # migrations run once, here
    await store.close()


def supervise(settings: Settings, argv: list[str]) -> int:
    try:
        asyncio.run(prepare(settings))
    except StartupError as exc:
        print(f"gate-proxy: cannot start: {exc}", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "gate_proxy", *argv]
    _say(f"starting {settings.workers} workers")
    return Supervisor(command, settings.workers).run()
