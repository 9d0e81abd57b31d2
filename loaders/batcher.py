"""When loaders dispatch: together, once a request has nothing else left to run.

aiodataloader dispatches a loader one event-loop turn after its first load. Resolvers
reach the same loader at different await depths (a member's account, an allocation's
account), so one turn splits a relation into several batches, and how many depends on
how many items the lists hold. The batcher instead waits until the loop's ready queue is
empty, i.e. every resolver that can run has run and is waiting on a loader, and then
dispatches every loader of the request at once. The statement count then depends on the
shape of the query, not on the size of the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from aiodataloader import DataLoader, Loader, dispatch_queue

from datasources.instrumentation import count_loader_round, loader_batch

# Under load other requests keep the ready queue busy: never wait more turns than this.
MAX_TURNS = 32


class Batcher:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[DataLoader] = []

    def enqueue(self, loader: DataLoader) -> None:
        if not self._pending:
            self._loop.call_soon(self._dispatch, MAX_TURNS)
        self._pending.append(loader)

    def _dispatch(self, turns_left: int) -> None:
        # `_ready` is asyncio's own queue of callbacks; loops without it dispatch on the next turn.
        ready = getattr(self._loop, "_ready", None)
        if turns_left and ready:
            self._loop.call_soon(self._dispatch, turns_left - 1)
            return
        pending, self._pending = self._pending, []
        count_loader_round()
        for loader in pending:
            dispatch_queue(loader)


class BatchLoader(DataLoader):
    """A DataLoader that lets the request's Batcher decide when to dispatch."""

    batcher: Batcher | None = None

    def __init__(self, batch_load_fn: Any, **options: Any) -> None:
        async def remembering_failures(keys: list[Any]) -> list[Any]:
            # aiodataloader forgets the keys of a batch that raised, so asking again would read
            # (or call the provider) again within the same request; a failure stays a failure
            # for the rest of the request, as a value does.
            try:
                # Inside the try, so that the batch's span (when tracing) records the failure.
                with loader_batch(batch_load_fn, len(keys)):
                    return await batch_load_fn(keys)
            except Exception as exc:  # noqa: BLE001 - handed to every key's future
                return [exc] * len(keys)

        super().__init__(remembering_failures, **options)

    def load(self, key: Any) -> "asyncio.Future[Any]":
        """The key's value. Many fields may wait on one cached future; graphql-core cancels a
        field whose parent an error nulled, and cancelling a task cancels the future it awaits.
        So each waiter gets its own shield: a cancelled field stops waiting, the load goes on
        for the others."""
        future = super().load(key)
        return future if future.done() else asyncio.shield(future)

    def load_all(self, keys: Sequence[Any]) -> Awaitable[list[Any]]:
        """Every key's value, in order, from one wait rather than one await per key (a level
        resolver asks for a whole level's keys at once). The keys are queued now, before the
        caller awaits, so loads started together go out in the same round."""
        load = super().load  # `_values` shields its one wait; a shield per key would be waste
        return _values([load(key) for key in keys])

    def do_resolve_reject(self, key: Any, future: "asyncio.Future[Any]") -> None:
        if self.batcher is None:
            super().do_resolve_reject(key, future)
            return
        self._queue.append(Loader(key=key, future=future))
        if len(self._queue) == 1:
            self.batcher.enqueue(self)


async def _values(futures: list["asyncio.Future[Any]"]) -> list[Any]:
    for future in futures:
        if not future.done():
            # A batch settles all its keys at once: this one wait usually covers the rest, where
            # waiting on each would schedule a callback per key. Shielded, as in `load`.
            await asyncio.shield(future)
    return [future.result() for future in futures]  # a failed batch raises here, as `load` would
