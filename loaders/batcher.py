"""When loaders dispatch: together, once the request has stopped asking for keys.

A loader on its own dispatches one event-loop turn after its first load. Resolvers
reach the same loader at different await depths (a member's account, an allocation's
account), so one turn splits a relation into several batches, and how many depends on
how many items the lists hold. The batcher instead waits until a whole turn or two of
the event loop have passed without any loader of the request being asked for a new
key: every resolver of the request that could run has run and is waiting on a loader.
Then it dispatches every loader of the request at once, and the statement count depends
on the shape of the query, not on the size of the data.

Each turn runs every callback that was ready when it began, other requests' included,
so a quiet turn is one in which this request's runnable coroutines had their chance.
Measured on every operation of `operations/`, under both executors: one quiet turn
splits graphql-core's rounds (a finished list reaches the coroutine that asks for the
next level's keys through a gather, two turns later); two give the same statements and
rounds as waiting until the loop has no callback ready at all, which needs asyncio's
private ready queue and, under load, waited for every other request too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from datasources.instrumentation import count_loader_round

if TYPE_CHECKING:
    from loaders.dataloader import DataLoader

QUIET_TURNS = 2
# A request that asks for new keys on every turn still dispatches after this many.
MAX_TURNS = 32


class Batcher:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[DataLoader] = []

    def enqueue(self, loader: DataLoader) -> None:
        """`loader` has keys to send: it goes out with the request's next round."""
        if not self._pending:
            self._loop.call_soon(self._dispatch, MAX_TURNS, -1, 0)  # -1: the first turn is never quiet
        self._pending.append(loader)

    def _dispatch(self, turns_left: int, queued_before: int, quiet: int) -> None:
        queued = sum(loader.queued for loader in self._pending)
        quiet = quiet + 1 if queued == queued_before else 0
        if quiet < QUIET_TURNS and turns_left:
            self._loop.call_soon(self._dispatch, turns_left - 1, queued, quiet)
            return
        pending, self._pending = self._pending, []
        count_loader_round()
        for loader in pending:
            loader.dispatch()
