"""What schema/asyncio_internals.py relies on in asyncio, checked on the running Python: the
test that fails on the upgrade that changes it."""

from __future__ import annotations

import asyncio

import pytest

from schema.asyncio_internals import as_a_task_would


async def waiter(future: asyncio.Future) -> object:
    return await future


async def test_a_future_one_stepped_coroutine_awaits_refuses_a_second_await():
    """Why the executor needs the helper. If this starts failing, asyncio no longer refuses,
    and the helper (and this module) can go."""
    future = asyncio.get_running_loop().create_future()
    first, second = waiter(future), waiter(future)
    assert first.send(None) is future
    with pytest.raises(RuntimeError, match="await wasn't used with future"):
        second.send(None)
    first.close()


async def test_once_cleared_as_a_task_would_others_may_await_it_too():
    future = asyncio.get_running_loop().create_future()
    first, second = waiter(future), waiter(future)
    as_a_task_would(first.send(None))
    as_a_task_would(second.send(None))
    by_a_task = asyncio.ensure_future(waiter(future))
    await asyncio.sleep(0)
    future.set_result(42)
    for stepped in (first, second):
        with pytest.raises(StopIteration) as done:
            stepped.send(None)
        assert done.value.value == 42
    assert await by_a_task == 42


async def test_the_mark_is_the_attribute_the_helper_clears():
    future = asyncio.get_running_loop().create_future()
    stepped = waiter(future)
    stepped.send(None)
    assert future._asyncio_future_blocking is True  # noqa: SLF001 - what the helper relies on
    as_a_task_would(future)
    assert future._asyncio_future_blocking is False  # noqa: SLF001
    stepped.close()
