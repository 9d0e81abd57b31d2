"""GraphQL documents, parsed once per text; one `Document` travels with each request.

The HTTP layer parses a request's text once (`document_of`) and hands the same `Document`
to the request log, admission, cost and execution. What those steps learn about a text
(its validation errors, its cost's page variables, whether its strings can be stored) is
kept on its `Document` (`derived`), so the same text sent again costs one lookup here and
none anywhere else: a `str` keeps its hash, and a `Document` hashes by identity, never by
walking its nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from graphql import DocumentNode, GraphQLError, parse

MAX_TOKENS = 5_000
T = TypeVar("T")


class Document:
    """A query text and its parsed form, or why it does not parse."""

    __slots__ = ("text", "node", "error", "_derived")

    def __init__(self, text: str, node: DocumentNode | None, error: GraphQLError | None = None) -> None:
        self.text = text
        self.node = node
        self.error = error  # a syntax error, or too many tokens
        self._derived: dict[Callable[[Document], Any], Any] = {}

    def derived(self, compute: Callable[[Document], T]) -> T:
        """`compute(self)`, computed once for this text: `compute` is the key, so it must be a
        function (or a bound method) that depends on nothing but the document."""
        try:
            return self._derived[compute]  # type: ignore[no-any-return]
        except KeyError:
            value = self._derived[compute] = compute(self)
            return value


def document_of(query: str) -> Document:
    """The request's one parse. A text that parses is cached; one that does not is parsed
    again when sent again, so a stream of unique bad texts cannot fill the cache."""
    try:
        return _parsed(query)
    except GraphQLError as error:
        return Document(query, None, error)


@lru_cache(maxsize=512)
def _parsed(query: str) -> Document:
    return Document(query, parse(query, max_tokens=MAX_TOKENS))


# The parse step's counters (hits, misses): how many parses the requests have cost.
parse_cache_info = _parsed.cache_info
