"""A WebSocket client that drives the app over ASGI in the test's own event loop (Starlette's
TestClient runs the app in a thread of its own, away from the loop the app's pool belongs to)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

SCOPE = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/graphql",
         "raw_path": b"/graphql", "root_path": "", "query_string": b"", "headers": [(b"host", b"gateway.test")],
         "client": ("127.0.0.1", 50000), "server": ("gateway.test", 80), "subprotocols": ["graphql-transport-ws"]}


class Socket:
    def __init__(self) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, message: dict[str, Any]) -> None:
        await self.to_app.put({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        """The next protocol message, or {"type": "websocket.close", "code": ..., "reason": ...}."""
        sent = await asyncio.wait_for(self.from_app.get(), timeout)
        return sent if sent["type"] == "websocket.close" else json.loads(sent["text"])


@contextlib.asynccontextmanager
async def connected(app: Any) -> AsyncIterator[Socket]:
    """The handshake done (the app accepted); disconnected at the end."""
    socket = Socket()
    running = asyncio.create_task(app(SCOPE, socket.to_app.get, socket.from_app.put))
    try:
        await socket.to_app.put({"type": "websocket.connect"})
        assert (await asyncio.wait_for(socket.from_app.get(), 10))["type"] == "websocket.accept"
        yield socket
    finally:
        await socket.to_app.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(running, 10)


async def first_answer(app: Any, token: str | None, query: str, variables: dict[str, Any]) -> tuple[str, Any]:
    """connection_init, subscribe, and the first answer: ("close", code), or the message's
    type ("next", "error") and payload."""
    async with connected(app) as socket:
        await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"} if token else {}})
        ack = await socket.receive()
        if ack["type"] == "websocket.close":
            return "close", ack["code"]
        assert ack["type"] == "connection_ack", ack
        await socket.send({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
        first = await socket.receive()
        return first["type"], first.get("payload", first.get("code"))
