"""Start the five services as processes, wait until the gateway says all are healthy, supervise them.

Used by `make run` (python -m service_runtime.launcher), by the end-to-end tests and by the benchmark.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from pymongo import AsyncMongoClient

from contracts import topology

# Back-end services first, so the gateway finds their RPC queues when it starts answering.
SERVICES = ("inventory_service", "payment_service", "order_service", "prescription_service", "user_service")
DATABASES = {
    "inventory_service": "inventory",
    "payment_service": "payments",
    "order_service": "orders",
    "prescription_service": "prescriptions",
    "user_service": "users",
}


class Platform:
    """The running platform: one process per service, sharing a broker namespace and a database prefix."""

    def __init__(
        self,
        *,
        port: int = 8000,
        namespace: str = "pharmacy",
        database_prefix: str = "pharmacy",
        log_dir: Path = Path(".run/logs"),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.namespace = namespace
        self.database_prefix = database_prefix
        self.log_dir = log_dir
        self.base_env = dict(os.environ if env is None else env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def database(self, service: str) -> str:
        return f"{self.database_prefix}_{DATABASES[service]}"

    def env_for(self, service: str) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            {
                "BROKER_NAMESPACE": self.namespace,
                "MONGODB_DATABASE": self.database(service),
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start_service(self, service: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{service}.log").open("ab")
        self.processes[service] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", service], env=self.env_for(service), stdout=log, stderr=subprocess.STDOUT
        )

    def stop_service(self, service: str, timeout: float = 15.0) -> None:
        """Stop one service gracefully (SIGTERM); its queue keeps its messages until it is back."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def start(self, timeout: float = 60.0) -> None:
        for service in SERVICES:
            self.start_service(service)
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

    def log_tail(self, service: str, lines: int = 30) -> str:
        path = self.log_dir / f"{service}.log"
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


async def delete_namespace(rabbitmq_url: str, namespace: str) -> None:
    """Remove every queue and exchange a namespace declared: test and benchmark runs leave no trace."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        for service in (*topology.SUBSCRIPTIONS, *topology.COMMANDS):
            queue = topology.event_queue(namespace, service)
            for name in (queue, topology.dead_letter_queue(queue), topology.rpc_queue(namespace, service)):
                channel = await connection.channel()
                await channel.queue_delete(name)
                await channel.close()
        channel = await connection.channel()
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
    parser = argparse.ArgumentParser(description="Run the five pharmacy services until interrupted.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--log-dir", type=Path, default=Path(".run/logs"))
    args = parser.parse_args()
    platform = Platform(port=args.port, log_dir=args.log_dir)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        platform.start()
        print(
            f"The pharmacy is up: {platform.url}/api/v1  (API docs: {platform.url}/api/v1/docs)", flush=True
        )
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
