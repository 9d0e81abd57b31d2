"""What PostgreSQL (and UTF-8) can hold: the checks for values that come from outside.

Every layer that takes a value from a client or the provider (request decoding, a cursor, a
global ID, a webhook) asks these before the value goes anywhere, so a value that cannot be
stored is refused where it enters instead of failing in the driver or in a serializer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# PostgreSQL text refuses U+0000; a lone UTF-16 surrogate (JSON's "\ud800") has no UTF-8 form, so
# asyncpg, orjson and argon2 all fail to encode it. Python keeps a valid pair as one code point,
# so any surrogate left in a str is a lone one.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
BIGINT = range(-(2**63), 2**63)
UNSTORABLE_TEXT = "the NUL character (U+0000) or a lone UTF-16 surrogate (U+D800 to U+DFFF)"


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def unstorable_paths(value: Any) -> Iterator[tuple[str | int, ...]]:
    """Where in a JSON value (keys included) a string holds what text cannot: the paths, never the text.

    A loop, not recursion: a value as deep as the JSON parser allows must not exhaust the stack here.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                yield path
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                if isinstance(key, str) and not storable(key):
                    yield path
                else:
                    stack.append(((*path, key), inner))
        elif isinstance(item, list):
            stack.extend(((*path, index), inner) for index, inner in reversed(list(enumerate(item))))


def bigint(raw: str) -> int | None:
    """A key of a bigint column written in decimal ASCII digits; None for anything else."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value in BIGINT else None


def replaced(value: Any) -> Any:
    """A JSON value with what text cannot hold replaced by U+FFFD, keys included: for a document
    that is kept as it came (a provider event), where refusing it would lose the event."""
    if isinstance(value, str):
        return value if storable(value) else _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {replaced(k): replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replaced(v) for v in value]
    return value
