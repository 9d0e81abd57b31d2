"""The one place the gateway touches asyncio's private state, for a measured win.

The level executor (schema/execution.py) steps the resolvers' coroutines by hand instead
of making each one a task: on the dashboard, hundreds of tasks fewer per request, most of
what graphql-core's own execution spends. A hand-stepped coroutine skips what a Task does
with the future its coroutine yields, and this is that step. tests/test_asyncio_internals.py
fails on the Python upgrade that changes it.
"""

from __future__ import annotations

from typing import Any


def as_a_task_would(awaited: Any) -> None:
    """`await future` marks a pending future as awaited (`_asyncio_future_blocking`) before
    yielding it, and the C implementation refuses to let another coroutine `await` it while
    it is so marked; a Task clears the mark on receiving the future, and so does this."""
    awaited._asyncio_future_blocking = False
