"""The load generator: N keep-alive HTTP/1.1 connections, each sending one request after another.

A minimal client on asyncio streams rather than httpx: the request bytes are built once and a
response costs a few reads, so the generator (which shares the 2 cores with the servers) spends
far less CPU per request than httpx would and caps neither server first.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class HttpError(Exception):
    pass


def build_request(url: str, payload: dict, token: str | None = None) -> bytes:
    parts = urlsplit(url)
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
               "Accept: application/json", f"Content-Length: {len(body)}"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                body += await self.reader.readexactly(size)
                await self.reader.readline()
            data = bytes(body)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            raise HttpError("response without length")
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failures: int = 0
    first_failure: str = ""

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def _send(conn: Connection, request: bytes, tally: Tally | None) -> None:
    """One request on `conn`, recorded into `tally` (None: a warm-up); a broken connection is
    closed, to be opened again by the next send."""
    t0 = time.perf_counter()
    try:
        status, body = await conn.send(request)
    except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
        await conn.close()
        if tally is not None:
            tally.failures += 1
            tally.first_failure = tally.first_failure or repr(exc)
        return
    elapsed = time.perf_counter() - t0
    if tally is not None:
        if status == 200:
            tally.latencies.append(elapsed)
        else:
            tally.failures += 1
            tally.first_failure = tally.first_failure or f"HTTP {status}: {body[:200]!r}"


async def drive(url: str, request: bytes, concurrency: int, seconds: float, tally: Tally | None) -> None:
    """Runs `concurrency` workers for `seconds`; records into `tally` (None: a warm-up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def worker() -> None:
        conn = Connection(url)
        try:
            while loop.time() < deadline:
                await _send(conn, request, tally)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if tally is not None:
        tally.seconds += time.perf_counter() - started


async def send_count(url: str, requests: list[bytes], concurrency: int, count: int, tally: Tally) -> None:
    """Sends exactly `count` requests, taking `requests` in turn, over `concurrency` connections."""
    turn = iter(range(count))

    async def worker() -> None:
        conn = Connection(url)
        try:
            for n in turn:
                await _send(conn, requests[n % len(requests)], tally)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.seconds += time.perf_counter() - started


async def one(url: str, request: bytes) -> tuple[int, bytes]:
    conn = Connection(url)
    try:
        return await conn.send(request)
    finally:
        await conn.close()
