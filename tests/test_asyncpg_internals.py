"""What datasources/postgres/database.py relies on in asyncpg (pinned in pyproject.toml), checked
on the installed version: the test that fails on the upgrade that changes it.

A pooled connection whose statement has answered is given back as `Pool.release` gives it back,
without the task `Pool.release` runs the release in (`_release(..., settled=True)`)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from datasources.postgres.database import Database


@pytest.fixture
async def db(database_url: str):
    database = await Database.connect(database_url, max_size=2)
    try:
        yield database
    finally:
        await database.close()


def counting_tasks() -> list[asyncio.Task]:
    made: list[asyncio.Task] = []
    loop = asyncio.get_running_loop()

    def factory(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    loop.set_task_factory(factory)
    return made


async def test_a_settled_connection_goes_back_to_the_pool_without_a_task(db: Database):
    async with db.connection() as conn:
        first = conn._con
        assert await conn.fetchval("SELECT 1") == 1
        made = counting_tasks()
    try:
        assert made == []  # the release ran in the caller's task
    finally:
        asyncio.get_running_loop().set_task_factory(None)
    with pytest.raises(asyncpg.InterfaceError, match="released back to the pool"):
        await conn.fetchval("SELECT 1")  # the proxy let go of it, as after Pool.release
    assert db.pool.get_idle_size() == 1
    async with db.connection() as again:
        assert again._con is first  # the same connection, taken again
        assert await again.fetchval("SELECT 2") == 2


async def test_a_body_that_failed_is_released_by_the_pool_and_the_pool_still_serves(db: Database):
    with pytest.raises(asyncpg.PostgresError):
        async with db.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SELECT 1/0")
    for _ in range(5):  # more than the pool's size: nothing was left checked out
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT 3") == 3


async def test_a_transaction_left_open_is_rolled_back_on_the_settled_path_too(db: Database):
    """The body ended without error yet left a transaction open (a bug): the release that now
    has to wait still rolls it back, as Pool.release's does, and the connection serves again."""
    async with db.connection() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE left_open (n int)")
    async with db.connection() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open') IS NULL")
