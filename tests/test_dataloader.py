"""The request's DataLoader: one batch per round, key order, a per-request cache in which a
failure stays a failure, and one round for every loader of the request."""

from __future__ import annotations

import asyncio

import pytest

from loaders.batcher import Batcher
from loaders.dataloader import DataLoader


class Recorded:
    """A batch function that keeps the keys of every call and fails on the keys it is told to."""

    def __init__(self, failing: frozenset = frozenset(), raising: bool = False) -> None:
        self.calls: list[list] = []
        self.failing, self.raising = failing, raising

    async def __call__(self, keys: list) -> list:
        self.calls.append(list(keys))
        if self.raising:
            raise LookupError("the source is down")
        return [KeyError(k) if k in self.failing else k * 10 for k in keys]


async def test_keys_asked_together_go_in_one_batch_in_their_order():
    batch = Recorded()
    loader = DataLoader(batch)
    assert await asyncio.gather(loader.load(2), loader.load(1), loader.load(2)) == [20, 10, 20]
    assert await loader.load_all([3, 1, 2]) == [30, 10, 20]
    assert await loader.load_many([1]) == [10]
    assert batch.calls == [[2, 1], [3]]


async def test_a_failed_batch_is_not_asked_again_in_the_same_request():
    batch = Recorded(raising=True)
    loader = DataLoader(batch)
    for _ in range(2):
        with pytest.raises(LookupError):
            await loader.load(1)
        with pytest.raises(LookupError):
            await loader.load_all([1, 2])
    assert batch.calls == [[1], [2]]
    loader.clear_all()  # after a write: read again
    with pytest.raises(LookupError):
        await loader.load(1)
    assert batch.calls[-1] == [1]


async def test_a_failed_key_fails_alone_and_the_wrong_count_fails_every_key():
    loader = DataLoader(Recorded(failing=frozenset({2})))
    one, two = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert one == 10 and isinstance(two, KeyError)

    async def short(keys: list) -> list:
        return keys[1:]

    miscounted = DataLoader(short)
    results = await asyncio.gather(miscounted.load(1), miscounted.load(2), return_exceptions=True)
    assert all(isinstance(r, TypeError) for r in results)


async def test_primed_values_are_served_without_a_batch_and_never_replace_a_load():
    batch = Recorded()
    loader = DataLoader(batch)
    assert await loader.load(1) == 10
    loader.prime(1, "primed").prime(2, "primed").prime(3, ValueError("primed failure"))
    assert await loader.load_all([1, 2]) == [10, "primed"]
    with pytest.raises(ValueError):
        await loader.load(3)
    with pytest.raises(TypeError):
        loader.load(None)
    assert batch.calls == [[1]]


async def test_loaders_of_a_request_asked_at_different_depths_dispatch_in_one_round():
    """A key asked for after a few awaits still joins the round of the keys asked at once."""
    batcher = Batcher(asyncio.get_running_loop())
    accounts_batch, licenses_batch = Recorded(), Recorded()
    accounts, licenses = DataLoader(accounts_batch), DataLoader(licenses_batch)
    accounts.batcher = licenses.batcher = batcher

    async def deeper(key: int, depth: int) -> int:
        for _ in range(depth):
            await asyncio.sleep(0)
        return await licenses.load(key)

    results = await asyncio.gather(accounts.load(1), deeper(2, 1), deeper(3, 3))
    assert results == [10, 20, 30]
    assert accounts_batch.calls == [[1]] and licenses_batch.calls == [[2, 3]]


async def test_keep_only_forgets_what_was_loaded_after_a_mark_and_keeps_what_was_primed():
    batch = Recorded()
    loader = DataLoader(batch)
    loader.prime(7, "primed")
    mark = loader.cached_keys()
    assert await loader.load_all([1, 7]) == [10, "primed"]
    loader.keep_only(mark)
    assert await loader.load_all([1, 7]) == [10, "primed"]
    assert batch.calls == [[1], [1]]  # 1 was read again; 7 never was
