"""Types shared by every domain: user errors and the info type resolvers receive."""

from __future__ import annotations

from enum import Enum
from typing import TypeAlias

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
