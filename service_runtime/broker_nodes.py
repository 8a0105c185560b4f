"""The broker's nodes: RABBITMQ_URL may name every node of a cluster, comma-separated.

aio-pika's robust connection reconnects to the one URL it was given, so a process whose node stops
would wait for that node to come back. Given several, each (re)connect attempt tries the next in turn:
a lost connection moves to another node at once, and a refused attempt to the one after. A single URL
behaves exactly as before.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection, UnderlayConnection
from aio_pika.robust_connection import RobustConnection
from yarl import URL


def node_urls(rabbitmq_url: str) -> list[str]:
    """Each node's URL, in the order given."""
    urls = [url.strip() for url in rabbitmq_url.split(",") if url.strip()]
    if not urls:
        raise ValueError("RABBITMQ_URL names no broker")
    return urls


class FailoverConnection(RobustConnection):
    """A robust connection that moves to the next node on every attempt after its first."""

    # Set on the subclass failover_connection() makes for one list: attempts of every connection of the
    # process to that list share the cursor, so a new connection does not start at a node found down.
    nodes: tuple[URL, ...] = ()
    cursor: int = 0

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        self._attempting = False
        super().__init__(url, loop, **kwargs)
        # From here on, each cleared transport is an attempt: the first takes the cursor's node.
        self._attempting = True

    @classmethod
    def _take_node(cls) -> URL:
        node = cls.nodes[cls.cursor % len(cls.nodes)]
        cls.cursor += 1
        return node

    # aio-pika has no hook per attempt; each one starts by clearing the transport, so that is where the
    # next node is chosen (before Connection.connect reads self.url).
    @property
    def transport(self) -> UnderlayConnection | None:
        return self._transport

    @transport.setter
    def transport(self, value: UnderlayConnection | None) -> None:
        if value is None and self._attempting and not self._close_called:
            self.url = self._take_node()
        self._transport = value


@functools.cache
def failover_connection(urls: tuple[str, ...]) -> type[FailoverConnection]:
    """The connection class for these nodes (one per list, so its attempts share one cursor)."""
    nodes = tuple(URL(url) for url in urls)
    return type("FailoverConnection", (FailoverConnection,), {"nodes": nodes, "cursor": 0})


def robust_connection_kwargs(rabbitmq_url: str) -> dict[str, Any]:
    """What aio_pika.connect_robust takes to reach these nodes: the first's URL, and failover if several."""
    urls = node_urls(rabbitmq_url)
    if len(urls) == 1:
        return {"url": urls[0]}
    return {"url": urls[0], "connection_class": failover_connection(tuple(urls))}


async def connect_robust(rabbitmq_url: str, **kwargs: Any) -> AbstractRobustConnection:
    """A robust connection to the broker, moving between its nodes when one is lost."""
    connection: AbstractRobustConnection = await aio_pika.connect_robust(
        **robust_connection_kwargs(rabbitmq_url), **kwargs
    )
    return connection


async def connect(rabbitmq_url: str, **kwargs: Any) -> AbstractConnection:
    """A plain connection to the first node that answers, trying each in turn."""
    urls = node_urls(rabbitmq_url)
    for url in urls[:-1]:
        try:
            connection: AbstractConnection = await aio_pika.connect(url, **kwargs)
            return connection
        except (ConnectionError, OSError, aio_pika.exceptions.AMQPConnectionError):
            continue
    last: AbstractConnection = await aio_pika.connect(urls[-1], **kwargs)
    return last
