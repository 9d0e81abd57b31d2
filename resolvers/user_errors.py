"""Expected failures returned in a payload's `userErrors`, independent of GraphQL types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: tuple[str, ...]
    message: str
    code: str  # a UserErrorCode value
