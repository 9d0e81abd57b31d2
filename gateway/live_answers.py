"""One execution per event for the subscribers whose answers must be equal.

The hub hands the same event to every subscriber of its organization, and without this each
one executed the operation for itself with loaders of its own: ten managers following one
organization read the same member and the same actor ten times. Subscribers whose answer key
is equal (the document, operation and variables, and the rights `resolvers.live.rights_for`
puts in its key) get one execution and one JSON text of the payload, which each `next`
message carries as it is, with the subscriber's own id around it.

An answer is shared only when nothing in it can differ between them: errors that the rights
decide (a field refused, an object not found) are the same for equal keys, but an outage
(DATABASE_UNAVAILABLE, PROVIDER_UNAVAILABLE) or an internal error (with the executing
connection's request id) is not; then each of the others executes for itself, as before.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

# The codes whose errors are equal for equal rights (`gateway.errors.format_error`).
RIGHTS_CODES = frozenset({"FORBIDDEN", "NOT_FOUND", "UNAUTHENTICATED"})

Execute = Callable[[], Awaitable[tuple[str, bool]]]


def shareable(errors: list[dict[str, Any]] | None) -> bool:
    """Whether a payload with these (formatted) errors is every equal key's answer."""
    return not errors or all(e.get("extensions", {}).get("code") in RIGHTS_CODES for e in errors)


class LiveAnswers:
    """The answers being made or made for the events still held by some subscriber: by the
    event object (the hub offers one object to all), then by answer key. An event's answers
    go when the event does (`weakref.finalize`): no timer, nothing kept for a slow reader that
    would not hold the event anyway."""

    __slots__ = ("_by_event", "reused")

    def __init__(self) -> None:
        self._by_event: dict[int, dict[Hashable, asyncio.Future[str | None]]] = {}
        self.reused = 0  # deliveries answered by another subscriber's execution

    def __len__(self) -> int:
        return len(self._by_event)

    async def answer(self, event: object, key: Hashable, execute: Execute) -> str:
        """The payload's JSON text for this key: made by `execute` for the first subscriber to
        ask, awaited by the others; made again by each of them when it cannot be shared."""
        answers = self._by_event.get(id(event))
        if answers is None:
            answers = self._by_event[id(event)] = {}
            weakref.finalize(event, self._by_event.pop, id(event), None)
        made = answers.get(key)
        if made is not None:
            # Most arrive once it is made; a waiter's cancellation must not cancel it for the others.
            text = made.result() if made.done() else await asyncio.shield(made)
            if text is not None:
                self.reused += 1
                return text
            return (await execute())[0]
        made = answers[key] = asyncio.get_running_loop().create_future()
        try:
            text, share = await execute()
        except BaseException:
            made.set_result(None)  # failed or cancelled: the others execute for themselves
            raise
        made.set_result(text if share else None)
        return text
