"""RABBITMQ_URL naming every node of a cluster (issue 15): connections move between the nodes; one URL
behaves as before."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import UnderlayConnection
from yarl import URL

from service_runtime import broker_nodes
from service_runtime.messaging import make_broker
from service_runtime.settings import RuntimeSettings

NODES = "amqp://guest:guest@127.0.0.1:5631/, amqp://guest:guest@127.0.0.1:5632/,amqp://guest:guest@127.0.0.1:5633/"


class FakeAmqp:
    def __init__(self) -> None:
        self.is_closed = False

    async def close(self, exc: Any = None) -> None:
        self.is_closed = True


class FakeTransport:
    def __init__(self) -> None:
        self.connection = FakeAmqp()

    async def close(self, exc: Any = None) -> None:
        self.connection.is_closed = True


class Broker:
    """Nodes that answer or refuse, by port; every attempt recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down: set[int] = set()
        self.tried: list[int] = []
        self.transports: list[FakeTransport] = []

        async def connect(url: URL, close_callback: Any, timeout: Any = None, **kwargs: Any) -> FakeTransport:
            assert url.port is not None
            self.tried.append(url.port)
            if url.port in self.down:
                raise ConnectionRefusedError(f"node {url.port} is down")
            self.transports.append(FakeTransport())
            return self.transports[-1]

        monkeypatch.setattr(UnderlayConnection, "connect", connect)


def test_every_node_is_named_in_order() -> None:
    assert [URL(u).port for u in broker_nodes.node_urls(NODES)] == [5631, 5632, 5633]


def test_a_single_url_connects_as_before() -> None:
    url = "amqp://guest:guest@127.0.0.1:5672/"
    assert broker_nodes.robust_connection_kwargs(url) == {"url": url}
    assert "connection_class" not in make_broker(RuntimeSettings(rabbitmq_url=url))._connection_kwargs


def test_the_services_broker_is_given_every_node() -> None:
    kwargs = make_broker(RuntimeSettings(rabbitmq_url=NODES))._connection_kwargs
    assert issubclass(kwargs["connection_class"], broker_nodes.FailoverConnection)
    assert [u.port for u in kwargs["connection_class"].nodes] == [5631, 5632, 5633]


async def test_a_lost_connection_moves_to_the_next_node(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(monkeypatch)
    nodes = NODES.replace("/,", "/?n=lost,")  # a list of its own: its cursor starts at the first node
    connection = await broker_nodes.connect_robust(nodes, reconnect_interval=0.01)
    try:
        assert broker.tried == [5631]
        # Node 1 stops: the connection is lost, and node 2 takes it at once.
        broker.down.add(5631)
        broker.transports[-1].connection.is_closed = True
        connection.connected.clear()
        connection._request_recovery()  # type: ignore[attr-defined]
        async with asyncio.timeout(5):
            await connection.connected.wait()
        assert broker.tried == [5631, 5632]
    finally:
        await connection.close()


async def test_refused_attempts_go_round_the_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(monkeypatch)
    nodes = NODES.replace("/,", "/?n=refused,")
    broker.down |= {5631, 5632}
    # fail_fast (the services' first connect, retried by until_up): each new try starts at the next node.
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            await broker_nodes.connect_robust(nodes, reconnect_interval=0.01)
    connection = await broker_nodes.connect_robust(nodes, reconnect_interval=0.01)
    try:
        assert broker.tried == [5631, 5632, 5633]
    finally:
        await connection.close()


async def test_a_plain_connection_takes_the_first_node_that_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[int] = []

    async def connect(url: str, **kwargs: Any) -> str:
        tried.append(URL(url).port or 0)
        if URL(url).port == 5631:
            raise ConnectionRefusedError("down")
        return url

    monkeypatch.setattr(aio_pika, "connect", connect)
    assert URL(str(await broker_nodes.connect(NODES))).port == 5632
    assert tried == [5631, 5632]


def test_tls_files_reach_every_node() -> None:
    nodes = "amqps://u:p@r1:5671/,amqps://u:p@r2:5671/"
    settings = RuntimeSettings(rabbitmq_url=nodes, rabbitmq_tls_ca_file="/ca.pem")
    assert [URL(u).query["cafile"] for u in broker_nodes.node_urls(settings.rabbitmq_url)] == ["/ca.pem"] * 2
    with pytest.raises(ValueError, match="amqps"):
        RuntimeSettings(
            rabbitmq_url="amqps://u:p@r1:5671/,amqp://u:p@r2:5672/", rabbitmq_tls_ca_file="/ca.pem"
        )
