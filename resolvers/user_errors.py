"""Expected failures returned in a payload's `userErrors`, independent of GraphQL types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: tuple[str, ...]
    message: str
    code: str  # a UserErrorCode value


class Refused(Exception):
    """Raised inside a mutation's transaction to roll it back and answer with user errors."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__(problems)
        self.problems = list(problems)
