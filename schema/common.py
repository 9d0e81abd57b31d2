"""Types shared by every domain: user errors and the info type resolvers receive."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum
from typing import TypeAlias, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info as _Info

from resolvers.context import Context
from resolvers.user_errors import Problem

Info: TypeAlias = _Info[Context, None]


@strawberry.enum(description="Why a mutation refused its input; stable, for clients to branch on.")
class UserErrorCode(Enum):
    INVALID = strawberry.enum_value("INVALID", description="A value is malformed or out of range.")


@strawberry.type(description="An expected failure of a mutation, tied to the input field that caused it.")
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path to the input field at fault, e.g. [\"input\", \"email\"]; null when no single field is.")
    message: str = strawberry.field(description="A sentence to show to the person using the client.")
    code: UserErrorCode = strawberry.field(description="Machine-readable reason.")

    @classmethod
    def from_problem(cls, problem: Problem) -> "UserError":
        return cls(field=list(problem.field) or None, message=problem.message,
                   code=UserErrorCode(problem.code))


def user_errors(problems: list[Problem]) -> list[UserError]:
    return [UserError.from_problem(p) for p in problems]


R = TypeVar("R")
N = TypeVar("N")


async def resolve_visible(find: Callable[[Context, str], Awaitable[R | None]], convert: Callable[[R], N],
                          info: Info, node_ids: Iterable[str]) -> list[N | None]:
    """For `resolve_nodes`: one visibility check per id, run together so the loaders batch them.

    `find` returns None for an id the viewer may not see, exactly as for one that does not exist.
    """
    found = await asyncio.gather(*(find(info.context, raw) for raw in node_ids))
    return [convert(r) if r is not None else None for r in found]


def parse_uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


def by_uuid(find: Callable[[Context, UUID], Awaitable[R | None]]) -> Callable[[Context, str], Awaitable[R | None]]:
    """Adapts a finder by UUID to raw node ids, where a malformed id finds nothing."""

    async def by_raw(ctx: Context, raw: str) -> R | None:
        uuid = parse_uuid(raw)
        return await find(ctx, uuid) if uuid else None

    return by_raw
