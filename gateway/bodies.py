"""What the gateway reads from a client: a body within MAX_BODY_BYTES, JSON within a nesting depth.

`BodyLimit` counts the bytes of every request body as the route receives them: a declared
Content-Length over the limit is refused before a byte is read, a chunked body as soon as
the bytes received pass it, so no route ever holds more than the limit. Starlette's own
`max_body_size` does the same counting but answers every such request with its own
plain-text 413, replacing a response the route already made; here each route says it in its
own shape (a GraphQL error on /graphql). orjson parses without recursion in Python and
refuses past 1024 levels itself; anything deeper than `MAX_JSON_DEPTH` is refused too (400),
so that no later walk of the value (coercion, cost, the provider SDK) recurses on the
client's behalf.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# GraphQL variables and provider events nest a few levels; 64 leaves room and refuses abuse.
MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")


class InvalidJSON(Exception):
    """Not JSON, or JSON nested deeper than MAX_JSON_DEPTH; the message says which."""


class BodyLimit:
    """ASGI middleware: `receive` raises BodyTooLarge instead of passing on more than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        # isascii too: "²".isdigit() is true, and int() refuses it.
        declared = int(length) if length.isascii() and length.isdigit() else 0
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            if declared > self.max_bytes:  # refused before a byte is read
                raise BodyTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as exc:  # a route that does not answer it in its own shape
            if started:
                raise
            await JSONResponse({"error": str(exc)}, status_code=413)(scope, receive, send)


def load_json(raw: bytes | str, what: str) -> Any:
    """`raw` parsed; InvalidJSON names `what` ("The request body", "'variables'") when it is refused."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise InvalidJSON(_too_deep(what)) from None
        value = _lenient(raw, what)
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidJSON(_too_deep(what))
    return value


def _lenient(raw: bytes | str, what: str) -> Any:
    """What the standard library accepts and orjson does not (a lone surrogate escape, NaN): the
    values then meet the checks of the fields they are sent to, as they always did."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidJSON(_too_deep(what)) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidJSON(f"{what} is not valid JSON.") from None


def _too_deep(what: str) -> str:
    return f"{what} is nested more than {MAX_JSON_DEPTH} levels deep."


def _deeper_than(value: Any, limit: int) -> bool:
    """Iterative, so that checking the depth cannot itself recurse too deeply."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
