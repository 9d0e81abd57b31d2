"""The subscribers of `python -m bench.events`: a process of its own, so that its CPU is not the server's.

Many WebSocket connections speaking graphql-transport-ws (the `websockets` library), each signed in
with its own bearer token in `connection_init` and holding one subscription. The driver talks to
this process over stdin/stdout, one JSON object per line:

  stdin, first line: {"url": "ws://…/graphql", "query": "subscription …", "compression": true,
                      "subscribers": [{"token": "…", "group": 3}, …]}
  then the commands: "warm" (one subscriber, the first, connects; the reply comes once it received
                     an event), "connect" (all of them; the reply comes once each is acknowledged
                     and subscribed), "idle" (wait until every subscriber received one event:
                     proof that every subscription is live), "report" (the receipts, once none
                     has come for QUIET_SECONDS), "stop".
  stdout: {"ok": "<command>", …} after each command; {"error": "…"} and exit 1 on a failure.

A receipt is (subscriber index, event cursor, wall-clock time of receipt): the driver, on the same
machine's clock, matches cursors to the times it committed the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")
HANDSHAKES_AT_ONCE = 50  # more at once only fills the server's accept queue
QUIET_SECONDS = 5.0


@dataclass
class Subscriber:
    index: int
    token: str
    group: int
    socket: ClientConnection | None = None
    received: int = 0
    first: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None  # close code and reason, or the protocol error, once it ended
    compressed: bool = False
    leaving: bool = False  # closed by this side: its end is no error


class Client:
    def __init__(self, url: str, query: str, compression: bool) -> None:
        self.url, self.query, self.compression = url, query, compression
        self.receipts: list[tuple[int, str, float]] = []
        self.errors: list[str] = []  # subscriptions that ended, sockets that closed
        self.partial = 0  # events delivered with errors beside their data
        self.first_partial = ""
        self.tasks: list[asyncio.Task] = []

    async def open(self, sub: Subscriber, gate: asyncio.Semaphore) -> None:
        """Handshake, connection_init, its ack, then subscribe; returns once subscribed."""
        async with gate:
            sub.socket = await connect(self.url, subprotocols=[PROTOCOL], open_timeout=60, close_timeout=5,
                                       compression="deflate" if self.compression else None,
                                       # Browsers send no WebSocket pings; graphql-ws answers the
                                       # protocol's own ping messages, as below.
                                       ping_interval=None, max_queue=None)
            sub.compressed = "permessage-deflate" in (sub.socket.response.headers.get(
                "Sec-WebSocket-Extensions") or "")
            await sub.socket.send(orjson.dumps({"type": "connection_init",
                                                "payload": {"authorization": f"Bearer {sub.token}"}}).decode())
            while True:
                message = orjson.loads(await asyncio.wait_for(sub.socket.recv(), 60))
                if message.get("type") == "connection_ack":
                    break
                if message.get("type") == "ping":
                    await sub.socket.send('{"type":"pong"}')
            await sub.socket.send(orjson.dumps({"id": "1", "type": "subscribe",
                                                "payload": {"query": self.query}}).decode())
        self.tasks.append(asyncio.create_task(self.listen(sub)))

    async def listen(self, sub: Subscriber) -> None:
        assert sub.socket is not None
        receipts, now = self.receipts, time.time
        try:
            async for raw in sub.socket:
                at = now()  # first, before any parsing: the receipt time
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    payload = message.get("payload") or {}
                    if payload.get("errors"):  # delivered, but some fields could not be resolved
                        self.partial += 1
                        self.first_partial = self.first_partial or json.dumps(payload["errors"])[:300]
                    event = (payload.get("data") or {}).get("organizationEvents") or {}
                    receipts.append((sub.index, event.get("cursor") or "", at))
                    sub.received += 1
                    sub.first.set()
                elif kind == "ping":
                    await sub.socket.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    sub.closed = f"{kind}: {json.dumps(message)[:300]}"
                    self.errors.append(f"subscriber {sub.index} got {sub.closed}")
                    return
        except ConnectionClosed as exc:
            sub.closed = f"closed {exc.rcvd.code if exc.rcvd else '?'} {exc.rcvd.reason if exc.rcvd else ''}"
        if sub.closed is None:
            sub.closed = "closed by the server"
        if not sub.leaving:
            self.errors.append(f"subscriber {sub.index} {sub.closed}")

    async def close(self, subs: list[Subscriber]) -> None:
        for sub in subs:
            sub.leaving = True
        await asyncio.gather(*(s.socket.close() for s in subs if s.socket is not None), return_exceptions=True)
        for task in self.tasks:
            task.cancel()


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _wait_first(subs: list[Subscriber], client: Client, timeout: float) -> None:
    """Until each of `subs` received an event; a subscriber's error ends the wait at once."""
    waiting = asyncio.ensure_future(asyncio.gather(*(s.first.wait() for s in subs)))
    deadline = time.monotonic() + timeout
    while not waiting.done():
        if client.errors or time.monotonic() > deadline:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            missing = [s.index for s in subs if not s.first.is_set()]
            raise RuntimeError(f"{len(missing)} subscribers received nothing (e.g. {missing[:5]}); "
                               f"errors: {client.errors[:3]}")
        await asyncio.wait([waiting], timeout=0.2)


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)  # the first line holds every token
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    client = Client(config["url"], config["query"], config.get("compression", True))
    subs = [Subscriber(i, s["token"], s["group"]) for i, s in enumerate(config["subscribers"])]
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    try:
        while line := (await reader.readline()).decode().strip():
            if line == "warm":
                await client.open(subs[0], gate)
                await _wait_first(subs[:1], client, 60)
                await client.close(subs[:1])
                subs[0] = Subscriber(0, subs[0].token, subs[0].group)
                client.receipts.clear()
                _say(ok="warm")
            elif line == "connect":
                started = time.monotonic()
                await asyncio.gather(*(client.open(s, gate) for s in subs))
                _say(ok="connect", seconds=time.monotonic() - started,
                     compressed=sum(s.compressed for s in subs), errors=client.errors[:5])
            elif line == "idle":
                await _wait_first(subs, client, 60)
                # This process's own collections would show up as delivery latency: none while measuring.
                gc.collect()
                gc.freeze()
                gc.disable()
                client.receipts.clear()
                client.partial, client.first_partial = 0, ""
                _say(ok="idle", cpu=time.process_time())
            elif line == "report":
                # Until nothing has arrived for QUIET_SECONDS: a server behind its load is still delivering.
                while client.receipts and time.time() - client.receipts[-1][2] < QUIET_SECONDS:
                    await asyncio.sleep(0.2)
                _say(ok="report", receipts=client.receipts, errors=client.errors[:20],
                     error_count=len(client.errors), partial=client.partial, first_partial=client.first_partial,
                     closed=sum(s.closed is not None for s in subs),
                     cpu=time.process_time())
            elif line == "stop":
                break
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the run
        _say(error=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
    finally:
        await client.close(subs)
    _say(ok="stop")


if __name__ == "__main__":
    asyncio.run(main())
