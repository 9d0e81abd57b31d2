"""Relay connections: edges with opaque cursors, pageInfo and totalCount, paged by keyset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from strawberry import relay

from datasources.paging import Page, Slice

T = TypeVar("T")
R = TypeVar("R")

First = Annotated[int | None, strawberry.argument(description="Return the first n items (0 to 100).")]
After = Annotated[str | None, strawberry.argument(description="Start after this cursor.")]
Last = Annotated[int | None, strawberry.argument(description="Return the last n items (0 to 100).")]
Before = Annotated[str | None, strawberry.argument(description="End before this cursor.")]


def slice_of(first: int | None, after: str | None, last: int | None, before: str | None) -> Slice:
    """Validates the arguments (BAD_USER_INPUT) before any query runs."""
    return Slice.from_args(first, after, last, before)


@strawberry.type(description="An item of a connection with its cursor.")
class Edge(Generic[T]):
    @strawberry.field(description="Pass as `after` (or `before`) to page from this item.")
    def cursor(self) -> str:
        return self.page.cursor(self.index)

    node: T = strawberry.field(description="The item.")
    page: strawberry.Private[Page[Any]]
    index: strawberry.Private[int]


@strawberry.type(description="A page of a list that can grow, with what is needed to fetch the next one.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page, each with its cursor.")
    page_info: relay.PageInfo = strawberry.field(description="Whether there are more pages, and their cursors.")
    total_count: int = strawberry.field(description="How many items match, across all pages.")

    @strawberry.field(description="The items of this page, without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_page(cls, page: Page[R], convert: Callable[[R], T], slice: Slice) -> "Connection[T]":
        edges = [Edge(node=convert(r), page=page, index=i) for i, r in enumerate(page.rows)]
        more_before = page.has_more if page.backward else slice.after is not None
        more_after = slice.after is not None if page.backward else page.has_more
        return cls(edges=edges, total_count=page.total, page_info=relay.PageInfo(
            has_next_page=more_after, has_previous_page=more_before,
            start_cursor=page.cursor(0) if edges else None,
            end_cursor=page.cursor(len(edges) - 1) if edges else None))
