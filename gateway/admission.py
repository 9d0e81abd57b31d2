"""What is checked before a request may run, without any I/O of its own: size, cost, budget.

The document is parsed here (bounded by a token count, cached by its text, and the same
document then runs), its cost calculated against the schema, and the viewer's budget charged
with it. The viewer is known from the signed token alone; the session lookup that follows is
the first I/O of the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, GraphQLSchema, StringValueNode, Visitor, visit

from auth.viewer import Credentials
from gateway.cost import query_cost
from gateway.limits import Limiter
from schema.documents import MAX_TOKENS, parse_document


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    code: str
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    viewer_key: str
    requested: int
    available: float  # budget left once `requested` is charged


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


# Keyed by the text, not the document: a document hashes by walking all of its nodes.
@lru_cache(maxsize=512)
def _literals_have_nul(query: str) -> bool:
    found = False

    class Finder(Visitor):
        def enter_string_value(self, node: StringValueNode, *_args: object) -> None:
            nonlocal found
            found = found or "\x00" in node.value

    visit(parse_document(query), Finder())
    return found


def viewer_key(presented: Credentials, address: str) -> str:
    claims = presented.claims
    return f"account:{claims.account_id}" if claims else f"address:{address}"


async def admit(schema: GraphQLSchema, limiter: Limiter, *, query: str, operation_name: str | None,
                variables: dict[str, Any] | None, key: str) -> Admission | Refusal | None:
    """None: let execution report the document's own errors (it does not parse)."""
    try:
        parse_document(query)
    except GraphQLError as error:
        if "tokens" in error.message:
            return Refusal(400, f"The query is too large: more than {MAX_TOKENS} tokens.", "QUERY_TOO_COMPLEX")
        return None
    if _has_nul(variables) or _literals_have_nul(query):
        # PostgreSQL text cannot hold U+0000: refuse it here, clearly, rather than fail in SQL.
        return Refusal(400, "Text must not contain the NUL character (U+0000).", "BAD_USER_INPUT")
    requested = query_cost(schema, query, operation_name, variables)
    limit = limiter.settings.max_query_cost
    if requested > limit:
        return Refusal(400, f"The query's calculated cost {requested} is over the limit of {limit}: ask for "
                            "smaller pages (`first`/`last`) or fewer nested lists.", "QUERY_TOO_COMPLEX",
                       {"cost": {"requested": requested, "limit": limit}})
    decision = await limiter.charge_query(key, requested)
    if not decision.allowed:
        retry = max(1, round(decision.retry_after + 0.5))
        return Refusal(429, f"Query budget used up: {requested} points asked, {int(decision.available)} "
                            f"available; try again in {retry} s.", "RATE_LIMITED",
                       {"retryAfter": retry, "cost": {"requested": requested, "available": int(decision.available)}},
                       {"Retry-After": str(retry)})
    return Admission(key, requested, decision.available)
