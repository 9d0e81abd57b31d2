"""The two places the gateway reads asyncio's private state, each for a measured win.

Everything here is checked by tests/test_asyncio_internals.py, which fails on the Python
upgrade that changes it; nothing else in the gateway touches asyncio's internals.
"""

from __future__ import annotations

import asyncio
from typing import Any


def nothing_ready(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the loop has no callback waiting to run: every coroutine that could run has
    run, and what is left waits on I/O or on a future.

    `_ready` is the loop's queue of callbacks (CPython's `BaseEventLoop`). Without it (another
    loop implementation) this says True, and loaders dispatch on the next turn: correct
    answers, in more rounds. Measured against waiting a fixed number of turns instead: see
    `loaders.batcher`.
    """
    return not getattr(loop, "_ready", None)


def as_a_task_would(awaited: Any) -> None:
    """What a Task does with the future its coroutine yields, for the level executor, which
    steps coroutines by hand instead of making each one a task (schema/execution.py).

    `await future` marks the future as being awaited (`_asyncio_future_blocking`) before it
    yields it, and the C implementation refuses a second `await` of a pending future so
    marked; a Task clears the mark on receiving it, so that others may await it too.
    """
    awaited._asyncio_future_blocking = False
