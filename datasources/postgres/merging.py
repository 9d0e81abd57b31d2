"""One statement per loader round: the reads a round issues travel together.

The request's loaders dispatch together (loaders/batcher.py), so their batch functions
all call `fetch` in the same turn of the event loop. `MergingReader` collects those calls
and sends them as a single statement whose columns are typed arrays of each query's rows,

    SELECT (SELECT array_agg(q) FROM (<query 1>) q) AS r0, (SELECT array_agg(q) FROM (<query 2>) q) AS r1

then hands each caller its own rows, with column names from the query's prepared
description (cached per query text). The values keep their PostgreSQL types, because
asyncpg decodes the anonymous records element by element.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from datasources.postgres.database import Database

_PARAMETER = re.compile(r"\$(\d+)")
_PARTS: dict[tuple[str, int, int], str] = {}
# A few per operation's round; as many as planning.compile keeps statements, so that a client
# sending ever new documents holds no more text here than there (cleared when full).
MAX_PARTS = 512


class Row(dict):
    """A fetched row as loaders use it: by column name, or expanded with **."""


class MergingReader:
    """The loaders' view of the database: `fetch` merges, everything else passes through."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future]] = []
        self._riders: list[tuple[str, tuple[Any, ...], asyncio.Future]] = []

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((query, args, future))
        if len(self._pending) == 1:
            # Two turns later: every batch function of the round has called fetch by then,
            # including those that first spawn a task per key (loaders.base.each_loader).
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._flush)
        return await future

    def ride_along(self, query: str, *args: Any) -> asyncio.Future:
        """A read that starts no statement of its own: its rows come with the next round's
        (the request's first), or alone once `send_riders` finds it still waiting. The
        session check of a request travels so (gateway/http.py)."""
        future = asyncio.get_running_loop().create_future()
        self._riders.append((query, args, future))
        return future

    async def send_riders(self) -> None:
        riders, self._riders = self._riders, []
        if riders:
            await self._run(riders)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self.db.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.db.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self.db.execute(query, *args)

    def _flush(self) -> None:
        pending, self._pending, self._riders = self._riders + self._pending, [], []
        asyncio.ensure_future(self._run(pending))

    async def _run(self, pending: list[tuple[str, tuple[Any, ...], asyncio.Future]]) -> None:
        try:
            if len(pending) == 1:
                query, args, _ = pending[0]
                results = [await self.db.fetch(query, *args)]
            else:
                results = await self._merged(pending)
        except Exception:
            # Let each caller see its own failure (or success): run them one by one.
            await asyncio.gather(*(self._alone(query, args, future) for query, args, future in pending))
            return
        for (_, _, future), rows in zip(pending, results):
            if not future.done():
                future.set_result(rows)

    async def _alone(self, query: str, args: tuple[Any, ...], future: asyncio.Future) -> None:
        try:
            rows = await self.db.fetch(query, *args)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(rows)

    async def _merged(self, pending: list[tuple[str, tuple[Any, ...], asyncio.Future]]) -> list[list[Row]]:
        parts, params = [], []
        for n, (query, args, _) in enumerate(pending):
            parts.append(_part(query, len(params), n))
            params.extend(args)
        async with self.db.connection() as conn:
            names = [await self.db.column_names(conn, query) for query, _, _ in pending]
            row = await conn.fetchrow("SELECT " + ", ".join(parts), *params)
        assert row is not None
        return [[Row(zip(columns, values)) for values in (row[n] or ())] for n, columns in enumerate(names)]


def _part(query: str, offset: int, n: int) -> str:
    """The merged statement's column `r{n}`: `query` with its parameters numbered from `offset`.
    Kept per (text, offset, column): the same rounds come back with every request, and the
    renumbering scanned each query's text (the dashboard's is 20 KB) every time."""
    key = (query, offset, n)
    part = _PARTS.get(key)
    if part is None:
        renumbered = _PARAMETER.sub(lambda m: f"${int(m.group(1)) + offset}", query)
        part = f"(SELECT array_agg(q) FROM ({renumbered}) AS q) AS r{n}"
        if len(_PARTS) >= MAX_PARTS:
            _PARTS.clear()
        _PARTS[key] = part
    return part
