"""Start the six services as processes, wait until the gateway says all are healthy, supervise them.

Used by `make run` (python -m service_runtime.launcher), by the end-to-end tests and by the benchmark.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from contracts import topology
from service_runtime import broker_nodes
from service_runtime.crypto import new_key

# Back-end services first, so the gateway finds their RPC queues when it starts answering.
SERVICES = (
    "inventory_service",
    "payment_service",
    "order_service",
    "prescription_service",
    "delivery_service",
    "user_service",
)
# Besides the services: the archiver of the event journal (operations/journal.py), started first.
ARCHIVER = "journal"
MODULES = {ARCHIVER: "operations.journal"}
DATABASES = {
    ARCHIVER: "journal",
    "inventory_service": "inventory",
    "payment_service": "payments",
    "order_service": "orders",
    "prescription_service": "prescriptions",
    "delivery_service": "deliveries",
    "user_service": "users",
}


def database_name(service: str, prefix: str = "pharmacy") -> str:
    """The database a service (or the journal) keeps its data in, on a platform of this prefix."""
    return f"{prefix}_{DATABASES[service]}"


class Platform:
    """The running platform: processes of each service, sharing a broker namespace and a database prefix.

    `replicas` runs more than one process of a back-end service: the broker gives each service's event
    queue (events and writes) to one replica at a time and fails over to another; reads go to all.
    Processes are named `service` for the first replica and `service.2`, `service.3`... for the others.
    """

    def __init__(
        self,
        *,
        port: int = 8000,
        namespace: str = "pharmacy",
        database_prefix: str = "pharmacy",
        log_dir: Path = Path(".run/logs"),
        env: Mapping[str, str] | None = None,
        replicas: Mapping[str, int] | None = None,
        metrics_base_port: int | None = 0,
    ) -> None:
        self.port = port
        # Each back-end process serves /metrics and /health on a port of its own:
        # base, base + 1, ... in start order; 0 picks free ones (tests, benchmarks); None serves none.
        self.metrics_base_port = metrics_base_port
        self.metrics_ports: dict[str, int] = {}
        self.replicas = {service: (replicas or {}).get(service, 1) for service in SERVICES}
        if self.replicas["user_service"] != 1:
            raise ValueError("the gateway listens on one port: run one replica of user_service")
        self.namespace = namespace
        self.database_prefix = database_prefix
        self.log_dir = log_dir
        self.base_env = dict(os.environ if env is None else env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def database(self, service: str) -> str:
        return database_name(service, self.database_prefix)

    def env_for(self, service: str) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            {
                "BROKER_NAMESPACE": self.namespace,
                "MONGODB_DATABASE": self.database(service),
                "JOURNAL_DATABASE": self.database(ARCHIVER),
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def process_names(self) -> list[str]:
        """Every process of the platform by name, in start order."""
        return [ARCHIVER] + [
            service if n == 1 else f"{service}.{n}"
            for service in SERVICES
            for n in range(1, self.replicas[service] + 1)
        ]

    def start_service(self, name: str) -> None:
        """Start a process by name: a service, or one replica of it (`order_service.2`)."""
        service = name.split(".")[0]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        module = MODULES.get(service, service)
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", module],
            env=self.env_for(service) | self._metrics_env(name) | self._replica_env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _replica_env(self, name: str) -> dict[str, str]:
        # Each replica takes its share of the service's partitions first (service.Service.partitions).
        service, _, n = name.partition(".")
        if service not in self.replicas or service == "user_service":
            return {}
        return {"REPLICA_INDEX": str(int(n or 1) - 1), "REPLICA_COUNT": str(self.replicas[service])}

    def _metrics_env(self, name: str) -> dict[str, str]:
        # The gateway serves /metrics on its own port; the archiver serves none. A restarted process
        # keeps the port it had.
        if self.metrics_base_port is None or name in ("user_service", ARCHIVER):
            return {}
        if name not in self.metrics_ports:
            base = self.metrics_base_port
            self.metrics_ports[name] = free_port() if base == 0 else base + len(self.metrics_ports)
        return {"METRICS_PORT": str(self.metrics_ports[name])}

    def metrics_url(self, name: str) -> str:
        """Where a process (`order_service`, `order_service.2`, `user_service`) serves /metrics."""
        if name == "user_service":
            return f"{self.url}/metrics"
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def health_url(self, name: str, probe: str = "ready") -> str:
        """A process's liveness (`live`) or readiness (`ready`) endpoint."""
        if name == "user_service":
            return f"{self.url}/api/v1/health/{probe}"
        return f"http://127.0.0.1:{self.metrics_ports[name]}/health/{probe}"

    def stop_service(self, name: str, timeout: float = 15.0) -> None:
        """Stop one process gracefully (SIGTERM); its queue keeps its messages until it is back."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill_service(self, name: str) -> None:
        """Kill one process with SIGKILL, as a crash would: no clean-up of any kind."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def start(self, timeout: float = 60.0) -> None:
        for name in self.process_names():
            self.start_service(name)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            try:
                answer = httpx.get(f"{self.url}/api/v1/health", timeout=5)
                if answer.status_code == 200:
                    return
                last = answer.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise TimeoutError(f"the platform was not healthy within {timeout} s: {last}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def throwaway_keys(kid: str) -> dict[str, str]:
    """Fresh keys to seal patients' data with outside development (tests, benchmarks), by variable.

    ENVIRONMENT=test refuses the development keys; these live for one run. One field key: the current
    one. The gateway's SECRET_KEY is not among them: each platform is given its own.
    """
    return {
        "FIELD_ENCRYPTION_KEYS": new_key(kid),
        "EMAIL_INDEX_KEY": secrets.token_urlsafe(32),
    }


def free_port() -> int:
    """A port nothing listens on now, for a server started next, below the ephemeral range.

    A port the kernel hands out for bind(0) is an ephemeral one: by the time the server binds it, a
    client socket of this machine may hold it (seen: a gateway exiting with "address already in
    use"). Client sockets never take a port below the ephemeral range, so one is picked from there.
    """
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randint(max(1024, low - 12_000), low - 1)
        # Not one handed out before: the server it went to may not be listening yet. Not one of the
        # stores' (27017, 27018 in CI, 27027 for the fault suite): a store stopped on purpose must find
        # its port again.
        if port in _handed_out or port in _STORE_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found below {low}")


_handed_out: set[int] = set()
_STORE_PORTS = range(27000, 27100)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


async def delete_namespace(rabbitmq_url: str, namespace: str, partitions: int = 64) -> None:
    """Remove every queue and exchange a namespace declared: test and benchmark runs leave no trace.

    `partitions`: how many partition queues each service may have had (EVENT_PARTITIONS at most 64).
    """
    connection = await broker_nodes.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for service in (*topology.SUBSCRIPTIONS, *topology.COMMANDS):
            queue = topology.event_queue(namespace, service)
            for name in (
                *(topology.partition_queue(namespace, service, k) for k in range(partitions)),
                topology.dead_letter_queue(queue),
                topology.timer_queue(namespace, service),
                topology.legacy_timer_queue(namespace, service),
                topology.rpc_queue(namespace, service),
            ):
                # Deleting a queue that is not there is no error.
                await channel.queue_delete(name)
            await channel.exchange_delete(topology.partition_exchange(namespace, service))
        await channel.queue_delete(topology.journal_queue(namespace))
        await channel.queue_delete(topology.rpc_queue(namespace, topology.JOURNAL))
        for exchange in (topology.EVENTS_EXCHANGE, topology.DEAD_LETTER_EXCHANGE):
            await channel.exchange_delete(f"{namespace}.{exchange}")


async def drop_databases(mongodb_url: str, prefix: str) -> None:
    """Drop every database whose name starts with `prefix`."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        for name in await client.list_database_names():
            if name.startswith(prefix):
                await client.drop_database(name)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the six pharmacy services until interrupted.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--log-dir", type=Path, default=Path(".run/logs"))
    parser.add_argument(
        "--replicas",
        type=int,
        default=int(os.environ.get("REPLICAS", "1")),
        help="processes per back-end service",
    )
    parser.add_argument(
        "--metrics-base-port",
        type=int,
        default=int(os.environ.get("METRICS_BASE_PORT", "9100")),
        help="first port of the processes' /metrics and /health endpoints (0: any free ones)",
    )
    args = parser.parse_args()
    backends = {service: args.replicas for service in SERVICES if service != "user_service"}
    platform = Platform(
        port=args.port, log_dir=args.log_dir, replicas=backends, metrics_base_port=args.metrics_base_port
    )
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        platform.start()
        print(
            f"The pharmacy is up: {platform.url}/ in a browser, the API at {platform.url}/api/v1"
            f"  (API docs: {platform.url}/api/v1/docs)",
            flush=True,
        )
        ports = ", ".join(f"{name} :{port}" for name, port in platform.metrics_ports.items())
        print(f"Metrics and health (/metrics, /health/live, /health/ready): {ports}", flush=True)
        print(f"Logs: {args.log_dir}/<service>.log. Ctrl-C stops everything.", flush=True)
        while not stop:
            for name, process in platform.processes.items():
                if process.poll() is not None:
                    print(
                        f"{name} exited with {process.returncode}; stopping.\n{platform.log_tail(name)}",
                        flush=True,
                    )
                    stop = True
            time.sleep(0.5)
    finally:
        platform.stop()


if __name__ == "__main__":
    main()
