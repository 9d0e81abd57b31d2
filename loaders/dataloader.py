"""The per-request DataLoader: one batched call per round, results in key order, cached.

aiodataloader's public API (`load`, `load_many`, `prime`, `clear_all`) is kept, but not its
class: it dispatches one event-loop turn after the first load, which it offers no public way
to change, and it forgets the keys of a batch that raised. The gateway needs the request's
`Batcher` to choose the moment (every loader of the request in one round) and a failure
to stay a failure for the rest of the request, as a value does; subclassing for either
meant its private queue and dispatch functions, which only an exact pin kept working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from datasources.instrumentation import loader_batch

if TYPE_CHECKING:
    from loaders.batcher import Batcher

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
BatchFunction = Callable[[list[K]], Awaitable[Sequence[V]]]


class DataLoader(Generic[K, V]):
    """`batch_load_fn(keys)` returns one value per key, in order; an exception among them is
    that key's failure. Made per request (it caches for the whole request)."""

    # Set when the loader joins a request's loaders (loaders.Loaders); alone, it dispatches
    # one turn after its first load, as aiodataloader does.
    batcher: Batcher | None = None

    def __init__(self, batch_load_fn: BatchFunction[K, V]) -> None:
        self.batch_load_fn = batch_load_fn
        self._cache: dict[K, asyncio.Future[V]] = {}
        self._keys: list[K] = []
        self._futures: list[asyncio.Future[V]] = []

    def load(self, key: K) -> Awaitable[V]:
        """The key's value. Many fields may wait on one cached future; graphql-core cancels a
        field whose parent an error nulled, and cancelling a task cancels the future it awaits.
        So each waiter gets its own shield: a cancelled field stops waiting, the load goes on
        for the others."""
        future = self._future(key)
        return future if future.done() else asyncio.shield(future)

    def load_all(self, keys: Iterable[K]) -> Awaitable[list[V]]:
        """Every key's value, in order, from one wait rather than one await per key (a level
        resolver asks for a whole level's keys at once). The keys are queued now, before the
        caller awaits, so loads started together go out in the same round."""
        return _values([self._future(key) for key in keys])

    load_many = load_all  # aiodataloader's name

    def prime(self, key: K, value: V | Exception) -> DataLoader[K, V]:
        """Caches `value` for `key` unless the key is already loaded or on its way."""
        if key not in self._cache:
            future = self._cache[key] = asyncio.get_running_loop().create_future()
            _settle(future, value)
        return self

    def clear_all(self) -> DataLoader[K, V]:
        """Forgets every cached key: after a write, the next load reads again."""
        self._cache.clear()
        return self

    def cached_keys(self) -> frozenset[K]:
        return frozenset(self._cache)

    def keep_only(self, keys: frozenset[K]) -> DataLoader[K, V]:
        """Forgets every cached key but `keys`."""
        if len(self._cache) != len(keys):
            self._cache = {key: future for key, future in self._cache.items() if key in keys}
        return self

    @property
    def queued(self) -> int:
        """Keys asked for and not yet sent."""
        return len(self._keys)

    def dispatch(self) -> None:
        """Sends the keys queued so far as one batch (the batcher calls this)."""
        if not self._keys:
            return
        keys, futures = self._keys, self._futures
        self._keys, self._futures = [], []
        asyncio.ensure_future(self._run(keys, futures))

    def _future(self, key: K) -> asyncio.Future[V]:
        future = self._cache.get(key)
        if future is not None:
            return future
        if key is None:
            raise TypeError("a DataLoader key cannot be None")
        future = self._cache[key] = asyncio.get_running_loop().create_future()
        self._keys.append(key)
        self._futures.append(future)
        if len(self._keys) == 1:
            if self.batcher is not None:
                self.batcher.enqueue(self)
            else:
                future.get_loop().call_soon(self.dispatch)
        return future

    async def _run(self, keys: list[K], futures: list[asyncio.Future[V]]) -> None:
        values: Sequence[Any]
        try:
            # Inside the try, so that the batch's span (when tracing) records the failure.
            with loader_batch(self.batch_load_fn, len(keys)):
                values = await self.batch_load_fn(keys)
            if len(values) != len(keys):
                raise TypeError(f"a batch function returned {len(values)} values for {len(keys)} keys")
        except Exception as exc:  # noqa: BLE001 - every key of the batch fails with it, and stays failed
            values = [exc] * len(keys)
        for future, value in zip(futures, values):
            if not future.done():
                _settle(future, value)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if isinstance(value, Exception):
        future.set_exception(value)
    else:
        future.set_result(value)


async def _values(futures: list[asyncio.Future[Any]]) -> list[Any]:
    for future in futures:
        if not future.done():
            # A batch settles all its keys at once: this one wait usually covers the rest, where
            # waiting on each would schedule a callback per key. Shielded, as in `load`.
            await asyncio.shield(future)
    return [future.result() for future in futures]  # a failed batch raises here, as `load` would
