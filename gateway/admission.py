"""What is checked before a request may run, without any I/O of its own: size, cost, budget.

It takes the request's parsed document (schema/documents.py: bounded by a token count, and
the same document then runs), calculates its cost against the schema, and charges the
viewer's budget with it. The viewer is known from the signed token alone; the session lookup that follows is
the first I/O of the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLSchema, StringValueNode, Visitor, visit

from auth.viewer import Credentials
from datasources.values import UNSTORABLE_TEXT, storable, unstorable_paths
from gateway.cost import query_cost
from gateway.limits import Limiter
from schema.documents import MAX_TOKENS, Document


MAX_REPORTED_COST = 2**53  # the largest integer every JSON reader holds exactly


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


def unstorable_text(document: Document, operation_name: str | None, variables: dict[str, Any] | None) -> str | None:
    """Why the request's text cannot be used, naming where it is and never repeating it; None if it can.

    Checked for every string the request carries before anything runs: anywhere else, such a
    string fails in the driver, in password hashing or in the JSON of the answer that echoes it.
    """
    if operation_name is not None and not storable(operation_name):
        return f"The operation name holds {UNSTORABLE_TEXT}."
    for name, value in (variables or {}).items():
        if not storable(name):
            return f"A variable's name holds {UNSTORABLE_TEXT}."
        for path in unstorable_paths(value):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
            where = f" at {_shortened(where)}" if where else ""
            return f"Variable '${_shortened(name)}'{where} holds {UNSTORABLE_TEXT}."
    if document.derived(_literals_unstorable):
        return f"A string in the query holds {UNSTORABLE_TEXT}."
    return None


def _shortened(name: str, limit: int = 100) -> str:
    """A name the client chose, as long as a message needs (it may be 100,000 characters)."""
    return name if len(name) <= limit else name[:limit] + "…"


def _literals_unstorable(document: Document) -> bool:
    found = False

    class Finder(Visitor):
        def enter_string_value(self, node: StringValueNode, *_args: object) -> None:
            nonlocal found
            found = found or not storable(node.value)

    assert document.node is not None
    visit(document.node, Finder())
    return found


def viewer_key(presented: Credentials, address: str) -> str:
    claims = presented.claims
    return f"account:{claims.account_id}" if claims else f"address:{address}"


async def admit(schema: GraphQLSchema, limiter: Limiter, *, document: Document, operation_name: str | None,
                variables: dict[str, Any] | None, key: str) -> Admission | Refusal | None:
    """None: let execution report the document's own errors (it does not parse)."""
    if document.error is not None:
        if "tokens" in document.error.message:
            return Refusal(400, f"The query is too large: more than {MAX_TOKENS} tokens.", "QUERY_TOO_COMPLEX")
        return None
    if (why := unstorable_text(document, operation_name, variables)) is not None:
        return Refusal(400, why, "BAD_USER_INPUT")
    # Page sizes past GraphQL's Int (refused later, by validation) multiply into costs that no JSON
    # number holds; any cost past the limit is refused alike, so the figure reported is capped.
    requested = min(query_cost(schema, document, operation_name, variables), MAX_REPORTED_COST)
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
