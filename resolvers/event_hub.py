"""The process's fan-out of the event log to its live subscribers (one Hub per process).

One dedicated connection LISTENs on the log's channel (datasources/postgres/listener.py). A
notification says only "something was committed": the hub then reads every event past its
high-water mark once, on that same connection (never waiting for the pool), and puts each into the bounded queue of every subscriber it concerns
(by organization for organizationEvents, by account for viewerEvents). After a lost
connection it reconnects and reads what it missed the same way, so nothing is lost; ids are
handed out in commit order (migration 0010), so reading past the mark never skips one.

Every process runs its own hub on the same log: an event committed through any process
reaches subscribers connected to every other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, AsyncContextManager
from uuid import UUID

from datasources.postgres import events
from datasources.postgres.database import Executor
from datasources.postgres.listener import Listener, ListenerLost

log = logging.getLogger("gateway.events")

# Events a subscriber may have waiting; past that it is too slow and is dropped (it resumes
# with `after`), rather than the process buffering without bound.
QUEUE_SIZE = 1000
# A quiet listener checks its connection this often (seconds).
KEEPALIVE_SECONDS = 15.0
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
PAGE = 500  # events read at once


@dataclass(frozen=True, slots=True)
class Key:
    """Whose events a subscriber receives: an organization's, or an account's own."""

    organization_id: UUID | None = None
    account_id: UUID | None = None


class Overflowed(Exception):
    """The subscriber fell more than QUEUE_SIZE events behind."""


class Subscriber:
    """One registration: its key, the kinds it wants, and the events waiting for it.

    A thousand idle subscriptions hold a thousand of these, so it is kept small: no
    asyncio.Queue (four deques and an Event, about 2.5 KB even when empty), a deque made when
    the first event waits, and one future while the subscriber waits. `on_event`, when given,
    is called with each event instead of queueing it (a watcher that needs no task)."""

    __slots__ = ("key", "kinds", "overflowed", "_waiting", "_wake", "_on_event")

    def __init__(self, key: Key, kinds: frozenset[str],
                 on_event: Callable[[events.Event], None] | None = None) -> None:
        self.key = key
        self.kinds = kinds
        self.overflowed = False
        self._waiting: deque[events.Event] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._on_event = on_event

    @property
    def waiting(self) -> int:
        return len(self._waiting) if self._waiting else 0

    def offer(self, event: events.Event) -> None:
        if self.overflowed or event.type not in self.kinds:
            return
        if self._on_event is not None:
            self._on_event(event)
            return
        if self._waiting is None:
            self._waiting = deque()
        if len(self._waiting) >= QUEUE_SIZE:
            self.overflowed = True  # the subscriber ends; what waits is of no use any more
            self._waiting = None
        else:
            self._waiting.append(event)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def next(self) -> events.Event:
        """The next event; Overflowed once more than QUEUE_SIZE waited."""
        while not self._waiting and not self.overflowed:
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None
        if self.overflowed:
            raise Overflowed(f"fell more than {QUEUE_SIZE} events behind")
        assert self._waiting is not None
        event = self._waiting.popleft()
        if not self._waiting:
            self._waiting = None  # an idle subscriber holds no deque
        return event


ListenerFactory = Callable[[], AsyncContextManager[Listener]]


class Hub:
    def __init__(self, listen: ListenerFactory, *, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self._listen = listen
        self._keepalive = keepalive
        self._subscribers: dict[Key, set[Subscriber]] = defaultdict(set)
        self.high_water: int | None = None  # None until the first read of the log

    # Registration -------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribed(self, key: Key, kinds: frozenset[str]) -> Any:
        """Registers for the body's duration; events committed after this point are offered
        (the caller reads its backlog after registering, so there is no gap)."""
        subscriber = self.watch(key, kinds)
        try:
            yield subscriber
        finally:
            self.unwatch(subscriber)

    def watch(self, key: Key, kinds: frozenset[str], on_event: Callable[[events.Event], None] | None = None
              ) -> Subscriber:
        """Registers until `unwatch`; with `on_event`, each event is handed to it as it is
        read (it must not block) rather than queued."""
        subscriber = Subscriber(key, kinds, on_event)
        self._subscribers[key].add(subscriber)
        return subscriber

    def unwatch(self, subscriber: Subscriber) -> None:
        found = self._subscribers.get(subscriber.key)
        if found is not None:
            found.discard(subscriber)
            if not found:
                del self._subscribers[subscriber.key]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def _fan_out(self, event: events.Event) -> None:
        keys = []
        if event.organization_id is not None:
            keys.append(Key(organization_id=event.organization_id))
        if event.account_id is not None:
            keys.append(Key(account_id=event.account_id))
        for key in keys:
            for subscriber in tuple(self._subscribers.get(key, ())):
                subscriber.offer(event)

    # The listening loop ---------------------------------------------------------------------

    async def _catch_up(self, db: Executor) -> None:
        assert self.high_water is not None
        while True:
            found = await events.after(db, self.high_water, limit=PAGE)
            for event in found:
                self._fan_out(event)
                self.high_water = event.id
            if len(found) < PAGE:
                return

    async def run(self) -> None:
        """Listens until cancelled; reconnects after a lost connection and reads what it missed."""
        failures = 0
        while True:
            try:
                async with self._listen() as listener:
                    # LISTEN first, then read: an event committed in between is read here or notified.
                    if self.high_water is None:
                        self.high_water = await events.last_id(listener.connection)
                    await self._catch_up(listener.connection)
                    failures = 0
                    while True:
                        await listener.wait(self._keepalive)
                        await self._catch_up(listener.connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the hub must outlive any outage
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                expected = isinstance(exc, ListenerLost)  # the listener translates connection failures
                log.log(logging.WARNING if expected else logging.ERROR, "event listener: %s: %s; reconnecting in %.1fs",
                        type(exc).__name__, exc, delay, exc_info=not expected)
                await asyncio.sleep(delay)
