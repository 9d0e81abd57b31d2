"""Building blocks for loaders: one batched call per relation, results in key order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from loaders.dataloader import DataLoader

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def loader(batch: Callable[[Sequence[K]], Awaitable[list[V]]]) -> DataLoader:
    """`batch` takes the keys gathered in one tick and returns one value per key, in order."""
    return DataLoader(batch)


def grouped_loader(fetch: Callable[[Sequence[K]], Awaitable[Sequence[V]]],
                   key_of: Callable[[V], K], value_of: Callable[[V], Any] = lambda row: row) -> DataLoader:
    """A one-to-many relation: `fetch` returns the rows of all keys; each key gets its list."""

    async def batch(keys: Sequence[K]) -> list[list[Any]]:
        groups: dict[K, list[Any]] = defaultdict(list)
        for row in await fetch(keys):
            groups[key_of(row)].append(value_of(row))
        return [groups.get(key, []) for key in keys]

    return DataLoader(batch)


def each_loader(fetch_one: Callable[[K], Awaitable[V]]) -> DataLoader:
    """For keys that cannot share a statement (a page of one parent with its own arguments):
    still cached and de-duplicated per request, so each distinct key costs one call."""

    async def batch(keys: Sequence[K]) -> list[Any]:
        return list(await asyncio.gather(*(fetch_one(key) for key in keys), return_exceptions=True))

    return DataLoader(batch)
