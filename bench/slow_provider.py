"""A payment provider as slow as the real one: an HTTP proxy in front of localstripe that forwards
each request after a fixed delay (real Stripe answers in hundreds of milliseconds; the emulator on
localhost in about one). It counts what it forwards, so a bench can say how many provider calls
each request cost."""

from __future__ import annotations

import asyncio

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from bench.servers import free_port

# Hop-by-hop and length headers: httpx and uvicorn set their own.
_DROPPED = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class SlowProvider:
    def __init__(self, upstream: str, latency_seconds: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.latency = latency_seconds
        self.forwarded = 0
        self.url = ""
        self._client: httpx.AsyncClient | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def _forward(self, request: Request) -> Response:
        await asyncio.sleep(self.latency)
        assert self._client is not None
        try:
            body = await request.body()
        except ClientDisconnect:  # the caller gave up (its time box): nothing to forward
            return Response(status_code=499)
        self.forwarded += 1
        answer = await self._client.request(
            request.method, self.upstream + request.url.path, params=request.url.query or None, content=body,
            headers={k: v for k, v in request.headers.items() if k.lower() not in _DROPPED})
        return Response(answer.content, answer.status_code,
                        headers={k: v for k, v in answer.headers.items()
                                 if k.lower() not in _DROPPED | {"content-encoding"}})

    async def start(self) -> str:
        self._client = httpx.AsyncClient(timeout=30)
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "DELETE"])])
        port = free_port()
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                     lifespan="off", access_log=False))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it did not start
            await asyncio.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._client is not None:
            await self._client.aclose()
