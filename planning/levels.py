"""Resolvers that also answer for a whole level of objects in one call.

The level executor (`schema.execution`) resolves a field for every object of a level
together. For most fields it calls the resolver once per object, which for a relation
means one loader call, one future and one coroutine per object: on the dashboard, the
larger part of a request's time. A resolver marked here also has a level form, taking
every source of the level at once and returning one value per source, in order.
graphql-core, which answers whatever the level executor hands back, still calls the
per-object resolver; that resolver is written as the level form over one source, so the
two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
LevelResolver = Callable[[Sequence[Any], Any], Awaitable[list[Any]]]

_ATTRIBUTE = "__level_resolver__"


def level_resolver(level: LevelResolver) -> Callable[[F], F]:
    """Marks a strawberry resolver (without arguments) with its level form `level(sources, info)`."""

    def mark(resolver: F) -> F:
        setattr(resolver, _ATTRIBUTE, level)
        return resolver

    return mark


def level_resolver_of(function: Any) -> LevelResolver | None:
    return getattr(function, _ATTRIBUTE, None)


async def one(level: LevelResolver, source: Any, info: Any) -> Any:
    """The per-object resolver: the level form over a level of one."""
    [value] = await level([source], info)
    return value
