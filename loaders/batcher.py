"""When loaders dispatch: together, once a request has nothing else left to run.

A loader on its own dispatches one event-loop turn after its first load. Resolvers
reach the same loader at different await depths (a member's account, an allocation's
account), so one turn splits a relation into several batches, and how many depends on
how many items the lists hold. The batcher instead waits until the event loop has no
callback ready to run, i.e. every resolver that can run has run and is waiting on a
loader, and then dispatches every loader of the request at once. The statement count
then depends on the shape of the query, not on the size of the data.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from datasources.instrumentation import count_loader_round
from loaders.asyncio_internals import nothing_ready

if TYPE_CHECKING:
    from loaders.dataloader import DataLoader

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
        if turns_left and not nothing_ready(self._loop):
            self._loop.call_soon(self._dispatch, turns_left - 1)
            return
        pending, self._pending = self._pending, []
        count_loader_round()
        for loader in pending:
            loader.dispatch()
